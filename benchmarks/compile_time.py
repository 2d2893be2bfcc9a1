"""Compile time against graph size: extended Rosenbrock gradient, trace + transform + compile per backend.

Run: python benchmarks/compile_time.py [--sizes 10 100 1000 10000] [--numba-max N] [--rounds R]

Every backend's column is a cold disk cache (an empty cache directory; trace + adjoint +
compile + first call). "llvm warm" is the first call in a fresh process whose disk cache
already holds the object code (trace + adjoint + load). With ``--rounds R`` each llvm
number is the best of R.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import tracegrad as tg


def rosen(xs):
    return sum(100.0 * (xs[2 * i + 1] - xs[2 * i] ** 2) ** 2 + (1.0 - xs[2 * i]) ** 2 for i in range(len(xs) // 2))


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def first_call(n, cache_dir):
    """Seconds to the first result of the gradient for N = n with this disk cache."""
    x0 = [0.5] * n
    f = tg.jit(tg.grad(rosen), backend="llvm", cache_dir=cache_dir)
    return timed(lambda: f(x0))


def fresh_process(n, cache_dir):
    """``first_call`` in a new process (nothing compiled in memory; import not counted)."""
    out = subprocess.run([sys.executable, __file__, "--first-call", str(n), cache_dir], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [os.path.dirname(os.path.dirname(tg.__file__)), os.environ.get("PYTHONPATH", "")])})
    return float(out.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=1, help="llvm: the best of this many (each cold and warm)")
    parser.add_argument("--numba-max", type=int, default=1000)
    parser.add_argument("--sympy-max", type=int, default=100)
    parser.add_argument("--jax-max", type=int, default=1000)
    parser.add_argument("--first-call", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_call:
        print(first_call(int(args.first_call[0]), args.first_call[1]))
        return
    rows = []
    for n in args.sizes:
        x0 = [0.5] * n
        row = {"N": n}
        cold, warm = [], []
        for _ in range(args.rounds):  # each in a fresh process: a cold cache, then the same cache warm
            with tempfile.TemporaryDirectory() as d:
                cold.append(fresh_process(n, d))
                warm.append(fresh_process(n, d))
        row["llvm"], row["llvm warm"] = min(cold), min(warm)
        for backend in ("python", "numba"):
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
    cols = ["llvm", "llvm warm", "python", "numba", "jax", "sympy"]
    print(f"{'N':>6} " + " ".join(f"{c + ' s':>12}" for c in cols) + "  "
          + " ".join(f"{c + '/llvm':>11}" for c in cols[2:]))
    for r in rows:
        cells = " ".join(f"{r[c]:12.3f}" if c in r else f"{'skipped':>12}" for c in cols)
        ratios = " ".join(f"{r[c] / r['llvm']:11.1f}" if c in r else f"{'-':>11}" for c in cols[2:])
        print(f"{r['N']:>6} {cells}  {ratios}")
    print("llvm: a fresh process and an empty disk cache (cold), then a fresh process on that cache (warm)"
          + (f", best of {args.rounds}" if args.rounds > 1 else "") + "; the other backends: cold disk cache")
    print(f"skipped: numba above N={args.numba_max}, sympy above N={args.sympy_max}, "
          f"jax above N={args.jax_max} (minutes each)")


if __name__ == "__main__":
    main()
