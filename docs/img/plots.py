"""Draw the benchmark plots of docs/benchmarks.md from the numbers measured there.

The numbers are pasted from the output of the benchmark scripts (see the page for the
commands and the machine); run ``python docs/img/plots.py`` to redraw the PNGs.
"""
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# benchmarks/compile_time.py: seconds to trace + differentiate + compile the Rosenbrock gradient
COMPILE = {
    "llvm": {10: 0.184, 100: 0.386, 1000: 0.751, 10000: 6.108},
    "python": {10: 0.023, 100: 0.070, 1000: 0.637, 10000: 3.714},
    "numba": {10: 3.890, 100: 3.510, 1000: 30.699},
    "jax.jit(grad)": {10: 0.472, 100: 2.035, 1000: 18.415},
    "sympy diff + lambdify": {10: 0.419, 100: 2.006},
}
# benchmarks/call_overhead.py: microseconds per call of a small gradient
CALL = {
    "numba by hand (floor)": 0.219, "Python by hand": 0.643, "tg.jit(grad) default": 6.125,
    "tg.jit(grad) python": 8.728, "tg.jit(grad) llvm": 10.180, "tg.jit(grad) numba": 8.924,
    "tg numba .kernel": 0.411, "tg llvm kernel (ctypes)": 4.312, "sympy lambdify": 3.702,
    "jax.jit(jax.grad)": 11.371,
}
# benchmarks/moons.py: median seconds per training step of micrograd's moons demo
MOONS = {
    "micrograd": 5.463, "tracegrad eager Value": 0.7269, "tracegrad Trainer (llvm)": 636.9e-6,
    "PyTorch eager": 359.5e-6, "JAX jit(step)": 80.3e-6, "JAX fori_loop (100 steps)": 21.9e-6,
}


def compile_time(path):
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, points in COMPILE.items():
        ax.loglog(list(points), list(points.values()), "o-", label=name)
    ax.set_xlabel("N (inputs of the Rosenbrock function)")
    ax.set_ylabel("seconds to first result")
    ax.set_title("compile time of a gradient")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def bars(data, path, xlabel, title, log=False):
    names = list(data)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    colors = ["C1" if "tg" in n or "tracegrad" in n else "C0" for n in names]
    ax.barh(names, [data[n] for n in names], color=colors)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    compile_time(os.path.join(HERE, "compile_time.png"))
    bars(CALL, os.path.join(HERE, "call_overhead.png"), "microseconds per call", "one-point calls of a small gradient")
    bars(MOONS, os.path.join(HERE, "moons_step.png"), "seconds per training step (log scale)",
         "micrograd's moons demo, one SGD step", log=True)


if __name__ == "__main__":
    main()
