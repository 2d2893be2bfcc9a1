"""micrograd's moons demo step (MLP 2-16-16-1, 100 samples, hinge loss + L2), eager.

The step is the loop of micrograd's ``demo.ipynb`` as written there (``loss()``
returns the loss and the accuracy; the previous graph is dropped when the next
``loss()`` result is assigned). It runs on micrograd 0.1.0 (``pip install
micrograd==0.1.0``) and on tracegrad's Value / nn, each in a fresh process that
imports only its own library; both start from the same weights
(``random.seed(1337)``), so the losses must agree. A third run pauses Python's
cyclic garbage collector around each tracegrad step, as a reference for what the
collector costs. The runs alternate, ``--rounds`` times, since the machine may be
shared; the table gives, over rounds, the median of each run's median and mean step
time (the mean counts the collector's rare full collections), in wall-clock and in
process (CPU) time, and the median of the per-round ratios to micrograd.

    python benchmarks/eager_moons.py [--steps 20] [--rounds 3] [--baseline DIR]
"""
import argparse
import json
import os
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

    times, cpu_times, losses = [], [], []
    for k in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
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
        cpu_times.append(time.process_time() - cpu_start)
        losses.append(total_loss.data)
    return {"median": statistics.median(times), "mean": statistics.mean(times),
            "cpu median": statistics.median(cpu_times), "cpu mean": statistics.mean(cpu_times), "losses": losses}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the tracegrad package found in DIR (an older version, say)")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.steps)))
        return
    runs = [(name, label, None) for name, label in RUNS.items()]
    if args.baseline:
        runs.insert(2, ("tracegrad", f"tracegrad in {os.path.basename(os.path.abspath(args.baseline))}",
                        os.path.abspath(args.baseline)))
    results = {label: [] for _, label, _ in runs}
    for _ in range(args.rounds):
        for name, label, path in runs:
            env = dict(os.environ)
            if path:
                env["PYTHONPATH"] = os.pathsep.join([path] + [p for p in [env.get("PYTHONPATH")] if p])
            out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", name],
                                 capture_output=True, text=True, check=True, env=env).stdout
            results[label].append(json.loads(out))
    base = results[RUNS["micrograd"]]
    stats = ("median", "mean", "cpu median", "cpu mean")
    print(f"{args.rounds} rounds of {args.steps} steps; x: the median over rounds of the ratio to "
          "micrograd in the same round; cpu: process time, steadier on a shared machine")
    print(f"{'ms per step':34s}" + "".join(f"{stat:>12s} {'x':>5s}" for stat in stats))
    for name, rounds in results.items():
        worst = max(abs(a - b) for r, b in zip(rounds, base) for a, b in zip(r["losses"], b["losses"]))
        cells = "".join(f"{statistics.median(r[stat] for r in rounds) * 1e3:12.1f} "
                        f"{statistics.median(b[stat] / r[stat] for b, r in zip(base, rounds)):5.1f}"
                        for stat in stats)
        print(f"{name:34s}{cells}  " + ("same losses" if worst == 0 else f"losses differ by {worst:.1e}"))
    print("median step per round (ms): " + "; ".join(
        f"{name} " + " ".join(f"{r['median'] * 1e3:.0f}" for r in rounds) for name, rounds in results.items()))


if __name__ == "__main__":
    main()
