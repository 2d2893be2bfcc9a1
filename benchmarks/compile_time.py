"""Compile time against graph size: extended Rosenbrock gradient, trace + transform + compile per backend.

Run: python benchmarks/compile_time.py [--numba-max N]
"""
import argparse
import tempfile
import time

import tracegrad as tg


def rosen(xs):
    return sum(100.0 * (xs[2 * i + 1] - xs[2 * i] ** 2) ** 2 + (1.0 - xs[2 * i]) ** 2 for i in range(len(xs) // 2))


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--numba-max", type=int, default=1000)
    parser.add_argument("--sympy-max", type=int, default=100)
    parser.add_argument("--jax-max", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    for n in (10, 100, 1000, 10000):
        x0 = [0.5] * n
        row = {"N": n}
        for backend in ("llvm", "python", "numba"):
            if backend == "numba" and n > args.numba_max:
                continue
            with tempfile.TemporaryDirectory() as d:  # a cold disk cache
                f = tg.jit(tg.grad(rosen), backend=backend, cache_dir=d)
                row[backend] = timed(lambda: f(x0))
        try:
            if n > args.jax_max:
                raise ImportError
            import jax
            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp
            g = jax.jit(jax.grad(lambda xs: rosen([xs[i] for i in range(n)])))
            row["jax"] = timed(lambda: g(jnp.array(x0)).block_until_ready())
        except ImportError:
            pass
        if n <= args.sympy_max:
            import sympy as sp
            xs = sp.symbols(f"x0:{n}")
            row["sympy"] = timed(lambda: sp.lambdify([xs], [sp.diff(rosen(xs), x) for x in xs])(x0))
        rows.append(row)
    cols = ["llvm", "python", "numba", "jax", "sympy"]
    print(f"{'N':>6} " + " ".join(f"{c + ' s':>10}" for c in cols) + "  " + " ".join(f"{c + '/llvm':>11}" for c in cols[1:]))
    for r in rows:
        cells = " ".join(f"{r[c]:10.3f}" if c in r else f"{'skipped':>10}" for c in cols)
        ratios = " ".join(f"{r[c] / r['llvm']:11.1f}" if c in r else f"{'-':>11}" for c in cols[1:])
        print(f"{r['N']:>6} {cells}  {ratios}")
    print(f"skipped: numba above N={args.numba_max}, sympy above N={args.sympy_max}, "
          f"jax above N={args.jax_max} (minutes each)")


if __name__ == "__main__":
    main()
