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
    "llvm": {10: 0.018, 100: 0.076, 1000: 0.120, 10000: 1.647},
    "python": {10: 0.002, 100: 0.017, 1000: 0.118, 10000: 1.362},
    "numba": {10: 0.525, 100: 1.239, 1000: 14.533},
    "jax.jit(grad)": {10: 0.157, 100: 0.827},
    "sympy diff + lambdify": {10: 0.243},
}
# benchmarks/call_overhead.py: microseconds per call of a small gradient
CALL = {
    "numba by hand (floor)": 0.215, "Python by hand": 0.400, "tg.jit(grad) default": 0.991,
    "tg.jit(grad) python": 0.993, "tg.jit(grad) llvm": 1.613, "tg.jit(grad) numba": 0.316,
    "tg numba .kernel": 0.219, "tg llvm kernel (ctypes)": 1.337, "sympy lambdify": 2.261,
    "jax.jit(jax.grad)": 8.555,
}
# benchmarks/moons.py: median seconds per training step of micrograd's moons demo
MOONS = {
    "micrograd": 1.0006, "tracegrad eager Value": 0.1070, "tracegrad Trainer (llvm)": 6.1e-6,
    "PyTorch eager": 357.4e-6, "JAX jit(step)": 79.7e-6, "JAX fori_loop (100 steps)": 12.3e-6,
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
