"""Handwritten digits: a 10-class MLP trained with loss="cross_entropy", beside PyTorch.

scikit-learn's ``load_digits`` (1,797 8x8 images, pixels scaled to [0, 1]), split 75/25
(stratified); an MLP 64-32-10 (ReLU hidden, linear logits) trained by the compiled Trainer
with Adam (lr 0.01), minibatches of 32 shuffled each epoch. PyTorch trains the same network
from the same initial weights on the same batches in float64. Prints both test accuracies,
saves the model (``tg.nn.save``) and checks that the file predicts the same, and saves
digits_confusion.png and digits_misclassified.png (``pip install "tracegrad[demo]"``).

    python examples/digits.py [--epochs 30] [--fast] [--no-plots] [--outdir .]
"""
import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tracegrad as tg

HIDDEN, LR, BATCH, SEED = 32, 0.01, 32, 0


def make_data():
    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def train(X, y, epochs, progress=True):
    """The model, its initial parameters, and the seconds to trace and compile, and to train."""
    model = tg.nn.MLP(X.shape[1], [HIDDEN, 10], seed=SEED)
    start_params = [p.data for p in model.parameters()]
    trainer = tg.nn.Trainer(model, loss="cross_entropy", optimizer=tg.nn.Adam(lr=LR))
    start = time.perf_counter()
    trainer.fit(X, y, epochs=0, progress=False)  # traces and compiles the training run (or finds it cached)
    compiled = time.perf_counter()
    trainer.fit(X, y, epochs=epochs, batch_size=BATCH, shuffle=True, seed=SEED, progress=progress)
    return model, start_params, (compiled - start, time.perf_counter() - compiled)


def train_torch(X, y, start_params, epochs):
    """The same MLP in PyTorch float64 from the same weights, on the Trainer's batches
    (one ``np.random.default_rng(SEED)`` permutation per epoch); returns a predict function."""
    import torch
    flat, layers = list(start_params), []
    for nin, nout in ((X.shape[1], HIDDEN), (HIDDEN, 10)):  # per neuron: its weights, then its bias
        block = torch.tensor(flat[:(nin + 1) * nout], dtype=torch.float64).reshape(nout, nin + 1)
        flat = flat[(nin + 1) * nout:]
        layer = torch.nn.Linear(nin, nout, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(block[:, :nin])
            layer.bias.copy_(block[:, nin])
        layers.append(layer)
    net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1])
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    Xt, yt = torch.tensor(X), torch.tensor(y, dtype=torch.long)
    rng = np.random.default_rng(SEED)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these matrices are small: more threads only wait on each other
    try:
        start = time.perf_counter()
        for _ in range(epochs):
            order = rng.permutation(len(X))
            for i in range(0, len(X), BATCH):
                batch = torch.from_numpy(order[i:i + BATCH])
                loss = torch.nn.functional.cross_entropy(net(Xt[batch]), yt[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return (lambda X: net(torch.tensor(X)).detach().numpy()), seconds


def confusion(y, predicted):
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (y, predicted), 1)
    return matrix


def plot(X, y, predicted, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matrix = confusion(y, predicted)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, count, ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"tracegrad: digits, test accuracy {np.mean(predicted == y):.1%}")
    matrix_path = os.path.join(outdir, "digits_confusion.png")
    fig.savefig(matrix_path, dpi=100)
    plt.close(fig)
    wrong = np.flatnonzero(predicted != y)[:12]
    fig, axes = plt.subplots(2, 6, figsize=(9, 3.6))
    for ax, i in zip(axes.flat, list(wrong) + [None] * 12):
        ax.axis("off")
        if i is not None:
            ax.imshow(X[i].reshape(8, 8), cmap="gray_r")
            ax.set_title(f"true {y[i]}, said {predicted[i]}", fontsize=9)
    fig.suptitle("misclassified test digits")
    wrong_path = os.path.join(outdir, "digits_misclassified.png")
    fig.savefig(wrong_path, dpi=100)
    plt.close(fig)
    return matrix_path, wrong_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fast", action="store_true", help="3 epochs (the test suite's run)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--outdir", default=".")
    args = parser.parse_args(argv)
    epochs = 3 if args.fast else args.epochs
    X_train, X_test, y_train, y_test = make_data()
    model, start_params, (compile_seconds, seconds) = train(X_train, y_train, epochs,
                                                            progress=not (args.no_progress or args.fast))
    logits = model.predict(X_test)  # the logits; the class is the largest
    predicted = logits.argmax(axis=1)
    results = {"epochs": epochs, "compile_seconds": compile_seconds, "seconds": seconds,
               "accuracy": float(np.mean(predicted == y_test)), "test_loss": tg.nn.cross_entropy(logits, y_test)}
    print(f"tracegrad: {epochs} epochs in {seconds:.2f} s (after {compile_seconds:.2f} s to trace and compile), "
          f"test accuracy {results['accuracy']:.2%}, test loss {results['test_loss']:.4f}")
    if not args.no_torch:
        torch_predict, torch_seconds = train_torch(X_train, y_train, start_params, epochs)
        torch_logits = torch_predict(X_test)
        torch_predicted = torch_logits.argmax(axis=1)
        results.update(torch_seconds=torch_seconds, torch_accuracy=float(np.mean(torch_predicted == y_test)),
                       torch_test_loss=tg.nn.cross_entropy(torch_logits, y_test),
                       same_class=float(np.mean(torch_predicted == predicted)))
        print(f"PyTorch:   {epochs} epochs in {torch_seconds:.2f} s (eager, float64, 1 thread), test accuracy "
              f"{results['torch_accuracy']:.2%}, test loss {results['torch_test_loss']:.4f}; the two models "
              f"predict the same class for {results['same_class']:.1%} of the test digits")
    path = os.path.join(args.outdir, "digits_mlp.npz")
    tg.nn.save(model, path)
    results["reloaded_equal"] = bool(np.array_equal(tg.nn.load(path).predict(X_test), logits))
    print(f"saved the model to {path}; loaded back, it predicts the same: {results['reloaded_equal']}")
    if not args.no_plots:
        results["plots"] = plot(X_test, y_test, predicted, args.outdir)
        for plot_path in results["plots"]:
            print("saved", plot_path)
    return results


if __name__ == "__main__":
    main()
