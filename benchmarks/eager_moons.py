"""micrograd's moons demo step (MLP 2-16-16-1, 100 samples, hinge loss + L2), eager.

The same step code runs on micrograd 0.1.0 (``pip install micrograd==0.1.0``) and on
tracegrad's Value / nn, each in a fresh process; both start from the same weights
(``random.seed(1337)``), so the losses must agree. Prints the median and best time
of a step and the ratio.

    python benchmarks/eager_moons.py [--steps 20]
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import time


def run(library, steps, paused):
    import numpy as np
    from sklearn.datasets import make_moons
    if library == "micrograd":
        from micrograd.engine import Value
        from micrograd.nn import MLP
    else:
        from tracegrad import Value
        from tracegrad.nn import MLP
    from contextlib import nullcontext
    from tracegrad.value import gc_paused

    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    y = y * 2 - 1
    model = MLP(2, [16, 16, 1])

    def loss():  # micrograd's demo, as written
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
        return data_loss + reg_loss

    times, losses = [], []
    for k in range(steps):
        start = time.perf_counter()
        with gc_paused() if paused else nullcontext():
            total_loss = loss()
            model.zero_grad()
            total_loss.backward()
            learning_rate = 1.0 - 0.9 * k / 100
            for p in model.parameters():
                p.data -= learning_rate * p.grad
            losses.append(total_loss.data)
            del total_loss
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "best": min(times), "losses": losses}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        library, paused = args.child
        print(json.dumps(run(library, args.steps, paused == "1")))
        return
    results = {}
    for library, paused in (("micrograd", "0"), ("tracegrad", "0"), ("tracegrad", "1")):
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", library, paused],
                             capture_output=True, text=True, check=True).stdout
        results[library, paused] = json.loads(out)
    base = results["micrograd", "0"]
    for (library, paused), r in results.items():
        same = "same losses" if r["losses"] == base["losses"] else \
            f"max loss difference {max(abs(a - b) for a, b in zip(r['losses'], base['losses'])):.2e}"
        label = library + (" (gc paused in the step)" if paused == "1" else "")
        print(f"{label:38s} step median {r['median'] * 1e3:8.1f} ms  best {r['best'] * 1e3:8.1f} ms  "
              f"x{base['median'] / r['median']:5.1f}  {same}")


if __name__ == "__main__":
    main()
