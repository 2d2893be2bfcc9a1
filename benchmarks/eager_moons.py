"""micrograd's moons demo step (MLP 2-16-16-1, 100 samples, hinge loss + L2), eager.

The step is the loop of micrograd's ``demo.ipynb`` as written there (``loss()``
returns the loss and the accuracy; the previous graph is dropped when the next
``loss()`` result is assigned). It runs on micrograd 0.1.0 (``pip install
micrograd==0.1.0``) and on tracegrad's Value / nn, each in a fresh process that
imports only its own library; both start from the same weights
(``random.seed(1337)``), so the losses must agree. A third run pauses Python's
cyclic garbage collector around each tracegrad step, as a reference for what the
collector costs. The runs alternate, ``--rounds`` times, since the machine may be
shared; the table gives, over rounds, the median of each run's median step time and
of its mean step time (which counts the collector's rare full collections), and the
median of the per-round ratios to micrograd.

    python benchmarks/eager_moons.py [--steps 20] [--rounds 3]
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import time

RUNS = {"micrograd": "micrograd 0.1.0",
        "tracegrad": "tracegrad",
        "tracegrad-paused": "tracegrad (gc paused in the step)"}


def run(name, steps):
    import gc

    import numpy as np
    from sklearn.datasets import make_moons
    if name == "micrograd":
        from micrograd.engine import Value
        from micrograd.nn import MLP
    else:
        from tracegrad import Value
        from tracegrad.nn import MLP

    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    y = y * 2 - 1
    model = MLP(2, [16, 16, 1])

    def loss():  # micrograd's demo, as written (full batch)
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum((p * p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    times, losses = [], []
    for k in range(steps):
        start = time.perf_counter()
        if name == "tracegrad-paused":
            gc.disable()
        total_loss, acc = loss()
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        gc.enable()
        times.append(time.perf_counter() - start)
        losses.append(total_loss.data)
    return {"median": statistics.median(times), "mean": statistics.mean(times), "losses": losses}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.steps)))
        return
    results = {name: [] for name in RUNS}
    for _ in range(args.rounds):
        for name in RUNS:
            out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", name],
                                 capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out))
    base = results["micrograd"]
    print(f"{args.rounds} rounds of {args.steps} steps; ratios to micrograd in the same round")
    print(f"{'':34s} {'median step':>12s} {'x':>6s} {'mean step':>12s} {'x':>6s}  per round (median step, x)")
    for name, rounds in results.items():
        worst = max(abs(a - b) for r, b in zip(rounds, base) for a, b in zip(r["losses"], b["losses"]))
        same = "same losses" if worst == 0 else f"max loss difference {worst:.2e}"
        cells = []
        for stat in ("median", "mean"):
            ratios = [b[stat] / r[stat] for b, r in zip(base, rounds)]
            cells.append(f"{statistics.median(r[stat] for r in rounds) * 1e3:9.1f} ms x{statistics.median(ratios):5.1f}")
        each = "  ".join(f"{r['median'] * 1e3:.0f} ms x{b['median'] / r['median']:.1f}" for r, b in zip(rounds, base))
        print(f"{RUNS[name]:34s} {cells[0]} {cells[1]}  ({each})  {same}")

if __name__ == "__main__":
    main()
