"""The micrograd moons demo, trained by tracegrad's compiled Trainer.

MLP 2-16-16-1 (ReLU hidden, linear output), hinge loss with 1e-4 L2, 100 full-batch SGD
steps with lr = 1.0 - 0.9 k / 100, as in micrograd's demo notebook, on scikit-learn's
``make_moons`` data (``pip install "tracegrad[demo]"``). Prints progress and the final
accuracy, and saves moons_decision_boundary.png and moons_loss.png.

    python examples/moons.py [--epochs 100] [--no-plots] [--outdir .]
"""
import argparse
import os
import time

import numpy as np
from sklearn.datasets import make_moons

import tracegrad as tg


def make_data(n_samples=100, noise=0.1, seed=0):
    """scikit-learn's two interleaving half circles, with labels -1 / +1 for the hinge loss."""
    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return X, 2.0 * y - 1.0


def train(X, y, epochs=100, progress=True):
    model = tg.nn.MLP(2, [16, 16, 1], seed=1337)
    trainer = tg.nn.Trainer(model, loss="hinge", l2=1e-4,
                            optimizer=tg.nn.SGD(lr=lambda k: 1.0 - 0.9 * k / epochs))
    start = time.perf_counter()
    history = trainer.fit(X, y, epochs=epochs, progress=progress)
    return model, history, time.perf_counter() - start


def plot(model, X, y, history, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h = 0.05
    xx, yy = np.meshgrid(np.arange(X[:, 0].min() - 1, X[:, 0].max() + 1, h),
                         np.arange(X[:, 1].min() - 1, X[:, 1].max() + 1, h))
    scores = model.predict(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(xx, yy, scores > 0, cmap=plt.cm.Spectral, alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap=plt.cm.Spectral, edgecolors="k")
    ax.set_title("tracegrad: moons decision boundary")
    boundary = os.path.join(outdir, "moons_decision_boundary.png")
    fig.savefig(boundary, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["loss"], label="loss")
    ax.plot(history["accuracy"], label="accuracy")
    ax.set_xlabel("epoch")
    ax.legend()
    ax.set_title("tracegrad: training")
    curve = os.path.join(outdir, "moons_loss.png")
    fig.savefig(curve, dpi=100)
    plt.close(fig)
    return boundary, curve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--outdir", default=".")
    args = parser.parse_args(argv)
    X, y = make_data()
    model, history, seconds = train(X, y, args.epochs, progress=not args.no_progress)
    accuracy = float(np.mean((model.predict(X) > 0) == (y > 0)))
    print(f"trained {args.epochs} epochs in {seconds:.3f} s (trace + compile + training); "
          f"final loss {history['loss'][-1]:.4f}, training accuracy {accuracy:.0%}")
    if not args.no_plots:
        for path in plot(model, X, y, history, args.outdir):
            print("saved", path)
    return accuracy


if __name__ == "__main__":
    main()
