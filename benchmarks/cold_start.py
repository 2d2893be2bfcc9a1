"""Cold start: a fresh process that imports tracegrad, or imports it and makes the first call of
``tg.jit(tg.grad(f))(0.3, 0.7)``, against ``python -c pass`` (best of several runs each).

"warm cache": the compiled kernel is on disk already (a run before filled it); "cold cache":
each run gets an empty ``TRACEGRAD_CACHE_DIR``. Also the first moons ``fit`` of a fresh
process (the micrograd demo's MLP(2, [16, 16, 1]) on 100 points, 100 full-batch SGD steps:
trace + compile + the steps), timed inside the process after ``import numpy, tracegrad``,
with the disk cache cold and warm. Uses this interpreter (``sys.executable``),
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
FIT = """
import time
import numpy as np
import tracegrad as tg
rng = np.random.default_rng(0)  # two interleaved half circles with noise, as sklearn's make_moons
t = rng.uniform(0, np.pi, 100)
X = np.where(np.arange(100)[:, None] < 50, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
X = X + rng.normal(0, 0.1, X.shape)
y = np.where(np.arange(100) < 50, -1.0, 1.0)
t0 = time.perf_counter()
model = tg.nn.MLP(2, [16, 16, 1], seed=0)
trainer = tg.nn.Trainer(model, loss="hinge", l2=1e-4, optimizer=tg.nn.SGD(lr=lambda k: 1.0 - 0.9 * k / 100))
trainer.fit(X, y, epochs=100, progress=False)
print(time.perf_counter() - t0)
"""
HEAVY = ("llvmlite", "numba", "sympy", "matplotlib", "torch", "jax")


def run(code, cache_dir, inner=False):
    """Seconds the process took (``inner``: the seconds it printed)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TRACEGRAD_CACHE_DIR=cache_dir,
               PYTHONPYCACHEPREFIX=os.path.join(os.path.dirname(cache_dir), "pyc"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT, capture_output=inner, text=True)
    return float(out.stdout) if inner else time.perf_counter() - t


def main(runs=7):
    with tempfile.TemporaryDirectory() as base:
        warm = os.path.join(base, "warm")
        run(FIRST_CALL, warm)  # fill the warm cache and the bytecode cache
        run(FIT, warm, inner=True)
        cases = {"python -c pass": lambda: run("pass", warm),
                 "import numpy": lambda: run("import numpy", warm),
                 "import tracegrad": lambda: run("import tracegrad", warm),
                 "import tracegrad, llvmlite": lambda: run("import tracegrad, llvmlite.binding", warm),
                 "first call, warm cache": lambda: run(FIRST_CALL, warm),
                 "first call, cold cache": lambda: run(FIRST_CALL, tempfile.mkdtemp(dir=base))}
        fits = {"first moons fit, warm cache": lambda: run(FIT, warm, inner=True),
                "first moons fit, cold cache": lambda: run(FIT, tempfile.mkdtemp(dir=base), inner=True)}
        times = {name: float("inf") for name in {**cases, **fits}}
        for _ in range(runs):  # interleaved: load on the machine hits all alike
            for name, case in {**cases, **fits}.items():
                times[name] = min(times[name], case())
    loaded = subprocess.run([sys.executable, "-c", "import sys, tracegrad; print(' '.join(m for m in "
                             f"{HEAVY!r} if m in sys.modules))"], env=dict(os.environ, PYTHONPATH=ROOT),
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    base_time = times["python -c pass"]
    print(f"{'process (best of ' + str(runs) + ')':28} {'ms':>8} {'ms beyond pass':>15}")
    for name in cases:
        print(f"{name:28} {times[name] * 1e3:8.1f} {(times[name] - base_time) * 1e3:15.1f}")
    for name in fits:
        print(f"{name:28} {times[name] * 1e3:8.1f}   (in the process, after import)")
    print(f"heavy modules loaded by import tracegrad: {loaded or 'none'}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
