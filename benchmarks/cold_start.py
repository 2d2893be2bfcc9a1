"""Cold start: a fresh process that imports tracegrad, or imports it and makes the first call of
``tg.jit(tg.grad(f))(0.3, 0.7)``, against ``python -c pass`` (best of several runs each).

"warm cache": the compiled kernel is on disk already (a run before filled it); "cold cache":
each run gets an empty ``TRACEGRAD_CACHE_DIR``. Uses this interpreter (``sys.executable``),
not a shim, and the tracegrad of this checkout, with its bytecode cached as an installed
package has it (``PYTHONPYCACHEPREFIX`` in a temporary directory, even where the
environment sets ``PYTHONDONTWRITEBYTECODE``: compiling tracegrad's sources costs ~50 ms
a process).

Run: python benchmarks/cold_start.py [runs]
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST_CALL = """
import tracegrad as tg
def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)
tg.jit(tg.grad(f, argnums=(0, 1)))(0.3, 0.7)
"""
HEAVY = ("llvmlite", "numba", "sympy", "matplotlib", "torch", "jax")


def run(code, cache_dir):
    env = dict(os.environ, PYTHONPATH=ROOT, TRACEGRAD_CACHE_DIR=cache_dir,
               PYTHONPYCACHEPREFIX=os.path.join(os.path.dirname(cache_dir), "pyc"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    return time.perf_counter() - t


def main(runs=7):
    with tempfile.TemporaryDirectory() as base:
        warm = os.path.join(base, "warm")
        run(FIRST_CALL, warm)  # fill the warm cache and the bytecode cache
        cases = {"python -c pass": lambda: run("pass", warm),
                 "import numpy": lambda: run("import numpy", warm),
                 "import tracegrad": lambda: run("import tracegrad", warm),
                 "import tracegrad, llvmlite": lambda: run("import tracegrad, llvmlite.binding", warm),
                 "first call, warm cache": lambda: run(FIRST_CALL, warm),
                 "first call, cold cache": lambda: run(FIRST_CALL, tempfile.mkdtemp(dir=base))}
        times = {name: float("inf") for name in cases}
        for _ in range(runs):  # interleaved: load on the machine hits all alike
            for name, case in cases.items():
                times[name] = min(times[name], case())
    loaded = subprocess.run([sys.executable, "-c", "import sys, tracegrad; print(' '.join(m for m in "
                             f"{HEAVY!r} if m in sys.modules))"], env=dict(os.environ, PYTHONPATH=ROOT),
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    base_time = times["python -c pass"]
    print(f"{'process (best of ' + str(runs) + ')':28} {'ms':>8} {'ms beyond pass':>15}")
    for name, t in times.items():
        print(f"{name:28} {t * 1e3:8.1f} {(t - base_time) * 1e3:15.1f}")
    print(f"heavy modules loaded by import tracegrad: {loaded or 'none'}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
