"""Fit a decaying oscillation to noisy data by Newton's method, with tg.grad and tg.hessian.

Model  y = a * exp(-b t) * cos(w t) + c,  four parameters. The loss (mean squared
residual) is traced once; its gradient and its exact 4 x 4 Hessian are compiled, and
each step solves  (H + lambda I) d = -g  (a damped Newton step: lambda shrinks when a
step lowers the loss and grows when it does not, so the method converges from a rough
start and then quadratically). Prints the iterations and the fitted parameters.

    python examples/curve_fit_newton.py [--fast] [--samples 200] [--plot fit.png]
"""
import argparse

import numpy as np

import tracegrad as tg

TRUE = [2.0, 0.6, 3.0, 0.5]       # a, b, w, c
START = [1.5, 0.4, 2.8, 0.2]


def model(params, t):
    a, b, w, c = params
    return a * tg.exp(-b * t) * tg.cos(w * t) + c


def make_data(samples, seed=0):
    t = np.linspace(0.0, 6.0, samples)
    y = np.array([model(TRUE, ti) for ti in t]) + np.random.default_rng(seed).normal(0.0, 0.05, samples)
    return t, y


def fit(t, y, start=START, iterations=50, tol=1e-12, verbose=True):
    """Damped Newton iterations on the mean squared residual; returns (params, losses)."""
    def loss(params):
        return sum((model(params, ti) - yi) ** 2 for ti, yi in zip(t, y)) / len(t)

    value_and_grad = tg.value_and_grad(loss)
    hessian = tg.hessian(loss)
    params, damping, losses = np.array(start, dtype=float), 1e-3, []
    value, grad = value_and_grad(list(params))
    for k in range(iterations):
        H = np.array(hessian(list(params)))
        step = np.linalg.solve(H + damping * np.eye(len(params)), -np.array(grad))
        new_value, new_grad = value_and_grad(list(params + step))
        if new_value < value:                     # accept, trust the quadratic model more
            params, value, grad, damping = params + step, new_value, new_grad, damping / 10
        else:                                     # reject, fall back towards gradient descent
            damping *= 10
        losses.append(value)
        if verbose:
            print(f"iteration {k:2d}: loss {value:.10f}  |grad| {np.linalg.norm(grad):.2e}  damping {damping:.0e}")
        if np.linalg.norm(grad) < tol:
            break
    return params, losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer samples (for the test suite)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--plot", default=None, help="save a plot of the data and the fit to this file")
    args = parser.parse_args(argv)
    t, y = make_data(40 if args.fast else args.samples)
    params, losses = fit(t, y)
    print("fitted a, b, w, c =", np.round(params, 4), " true:", TRUE)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(t, y, ".", label="data")
        ax.plot(t, [model(list(params), ti) for ti in t], label="Newton fit")
        ax.legend()
        fig.savefig(args.plot, dpi=80)
        plt.close(fig)
        print("saved", args.plot)
    return t, y, params, losses


if __name__ == "__main__":
    main()
