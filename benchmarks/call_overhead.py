"""Call overhead of a small gradient called one point at a time from Python.

Run: python benchmarks/call_overhead.py
"""
import math
import timeit

import numba

import tracegrad as tg


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)


def by_hand(x, y):
    a = x * y + math.sin(x)
    t = math.tanh(a)
    e = math.exp(-y * y / 2)
    da = (1 - t * t) * e
    return da * (y + math.cos(x)) + 2 * x / (1 + x * x), da * x - t * e * y


def one(x):
    return tg.tanh(x) * tg.sin(x)


def one_by_hand(x):  # d/dx tanh(x) sin(x)
    t = math.tanh(x)
    return (1 - t * t) * math.sin(x) + t * math.cos(x)


def ten(a, b, c, d, e, f, g, h, i, j):
    return a * b + c, d * e - f / (1 + g * g), h * i + j


def per_call(fn, number=200_000, args=(0.3, 0.7)):
    fn(*args)
    return min(timeit.repeat(lambda: fn(*args), number=number, repeat=3)) / number * 1e6


def shapes():
    """The default backend against the numba floor for a 1-argument gradient and a
    10-argument function of 3 outputs, one point per call."""
    args10 = tuple(0.1 * k + 0.05 for k in range(10))
    rows = [("1 argument: grad", per_call(numba.njit(one_by_hand), args=(0.3,)),
             per_call(tg.jit(tg.grad(one)), args=(0.3,))),
            ("10 arguments, 3 outputs", per_call(numba.njit(ten), args=args10),
             per_call(tg.jit(ten), args=args10))]
    print(f"\n{'function':26} {'numba us':>9} {'tg us':>9} {'x floor':>8}")
    for name, floor, ours in rows:
        print(f"{name:26} {floor:9.3f} {ours:9.3f} {ours / floor:8.2f}")


def main():
    results = {
        "numba by hand (floor)": per_call(numba.njit(by_hand)),
        "python by hand": per_call(by_hand),
    }
    for backend in ("default", "python", "llvm", "numba"):
        results[f"tg.jit(grad) {backend}"] = per_call(
            tg.jit(tg.grad(f, argnums=(0, 1)), backend=None if backend == "default" else backend))
    results["tg numba .kernel (dispatcher)"] = per_call(tg.jit(tg.grad(f, argnums=(0, 1)), backend="numba").kernel)
    results["tg llvm Kernel object"] = per_call(tg.backends.compile(tg.grad(f, argnums=(0, 1)).graph, "llvm"))
    import sympy as sp
    x, y = sp.symbols("x y")
    expr = sp.tanh(x * y + sp.sin(x)) * sp.exp(-y * y / 2) + sp.log(1 + x * x)
    results["sympy lambdify"] = per_call(sp.lambdify((x, y), [sp.diff(expr, x), sp.diff(expr, y)]))
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jf = jax.jit(jax.grad(lambda x, y: jax.numpy.tanh(x * y + jax.numpy.sin(x)) * jax.numpy.exp(-y * y / 2)
                              + jax.numpy.log(1 + x * x), argnums=(0, 1)))
        results["jax.jit(jax.grad)"] = per_call(jf, number=5000)
    except ImportError:
        pass
    floor = results["numba by hand (floor)"]
    print(f"{'kernel':32} {'us/call':>9} {'x floor':>8}")
    for name, t in results.items():
        print(f"{name:32} {t:9.3f} {t / floor:8.2f}")
    shapes()


if __name__ == "__main__":
    main()
