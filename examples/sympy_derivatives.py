"""Print derivatives as mathematics: tracegrad's gradient graphs exported to sympy.

For a few functions, prints the function, its gradient and (for the small ones) its
Hessian as sympy expressions built from tracegrad's graphs (no sympy.diff), checks each
against sympy's own differentiation, and shows the common-subexpression form that keeps
the size of a large derivative proportional to its graph.

    python examples/sympy_derivatives.py [--fast]
"""
import argparse

import sympy as sp

import tracegrad as tg


def gaussian_bump(x, y):
    return tg.exp(-(x * x + y * y) / 2) * tg.sin(x * y)


def softplus_ratio(x, y):
    return tg.softplus(x) / (1 + y * y)


def rosenbrock(x, y):
    return 100.0 * (y - x * x) ** 2 + (1.0 - x) ** 2


def mlp_unit(w0, w1, b, a0, a1):
    return tg.tanh(w0 * a0 + w1 * a1 + b)


FUNCTIONS = [gaussian_bump, softplus_ratio, rosenbrock, mlp_unit]


def check_against_sympy(fn, expr, gradient):
    """sympy's own diff of the exported function equals the exported gradient."""
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    by_name = {s.name: s for s in symbols}
    for name, g in zip(names, gradient):
        assert sp.simplify(sp.diff(expr, by_name[name]) - g) == 0, (fn.__name__, name)


def show(fn, hessian=True):
    n = fn.__code__.co_argcount
    argnums = tuple(range(n))
    expr = tg.export_sympy(fn)
    gradient = list(tg.export_sympy(tg.grad(fn, argnums=argnums)))
    print(f"\n{fn.__name__} = {expr}")
    for name, g in zip(fn.__code__.co_varnames, gradient):
        print(f"  d/d{name} = {g}")
    check_against_sympy(fn, expr, gradient)
    if hessian:
        H = tg.export_sympy(tg.hessian(fn, argnums=argnums))
        print("  Hessian =", sp.Matrix(n, n, list(H)))
    return expr, gradient


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="skip the Hessians (for the test suite)")
    args = parser.parse_args(argv)
    results = {fn.__name__: show(fn, hessian=not args.fast and fn.__code__.co_argcount <= 2) for fn in FUNCTIONS}
    replacements, exprs = tg.export_sympy(tg.grad(mlp_unit, argnums=(0, 1, 2)), cse=True)
    print("\nthe gradient of mlp_unit with common subexpressions:")
    for sym, sub in replacements:
        print(f"  {sym} = {sub}")
    print("  gradient =", list(exprs))
    print("\neach derivative agrees with sympy.diff of the exported function")
    return results


if __name__ == "__main__":
    main()
