"""The micrograd moons demo in every peer and in tracegrad, side by side in one process.

    python benchmarks/moons.py [--micrograd-steps 3] [--torch-compile] [--only Trainer fori_loop]

Prints seconds per training step (median and best), one-time compile time, final
training accuracy, and each runner's ratio to tracegrad's compiled Trainer. The
arithmetic floor is about 230,000 flops a step (forward and backward of 337 weights
over 100 samples).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moons_peers as peers  # noqa: E402

import tracegrad as tg  # noqa: E402
from tracegrad.backends import llvm  # noqa: E402

FLOPS_PER_STEP = 230_000
GHZ = 3.0
LANES = llvm.lanes()
PEAK_GFLOPS = 2 * LANES * GHZ  # two vector adds or multiplies a cycle, no FMA (IEEE order kept)


def _model(layers):
    model = tg.nn.MLP(2, [16, 16, 1], seed=0)
    flat = [v for W, b in layers for row, bias in zip(W, b) for v in list(row) + [bias]]
    model.load_state_dict(flat)
    return model


def run_trainer(X, y, layers, steps, rounds=30):
    model = _model(layers)
    t0 = time.perf_counter()
    trainer = tg.nn.Trainer(model, loss="hinge", l2=1e-4, optimizer=tg.nn.SGD(lr=lambda k: peers.lr_at(k, steps)))
    trainer.fit(X, y, epochs=steps, progress=False)
    first = time.perf_counter() - t0  # trace + compile + all the steps, as a user's first fit
    accuracy = float(np.mean((model.predict(X) > 0) == (y > 0)))
    start = [v for W, b in layers for row, bias in zip(W, b) for v in list(row) + [bias]]
    times = []
    for _ in range(rounds):  # the same training again from the start, for timing only
        model.load_state_dict(start)
        trainer.step = 0
        t0 = time.perf_counter()
        trainer.fit(X, y, epochs=steps, progress=False)
        times.append((time.perf_counter() - t0) / steps)
    return {"times": times, "compile": first, "accuracy": accuracy}


def run_eager(X, y, layers, steps):
    model = _model(layers)
    times = []
    for k in range(steps):
        t0 = time.perf_counter()
        scores = [model(list(map(tg.Value, row))) for row in X]
        losses = [(1 + -yi * s).relu() for yi, s in zip(y, scores)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= peers.lr_at(k) * p.grad
        times.append(time.perf_counter() - t0)
    acc = float(np.mean([(yi > 0) == (model(list(row)) > 0) for row, yi in zip(X, y)]))
    return {"times": times, "compile": 0.0, "accuracy": acc}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrograd-steps", type=int, default=3, help="micrograd is slow: steps to time")
    parser.add_argument("--eager-steps", type=int, default=100)
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--only", nargs="+", metavar="WORD",
                        help="run only the runners whose name contains one of these words (the Trainer always runs)")
    args = parser.parse_args(argv)
    X, y = peers.moons_data()
    layers = peers.initial_parameters()
    runners = [
        ("tracegrad Trainer (llvm)", lambda: run_trainer(X, y, layers, 100)),
        ("tracegrad eager Value", lambda: run_eager(X, y, layers, args.eager_steps)),
        (f"micrograd 0.1.0 ({args.micrograd_steps} steps)", lambda: peers.run_micrograd(X, y, layers, args.micrograd_steps)),
        ("PyTorch eager", lambda: peers.run_torch(X, y, layers, 100)),
        ("JAX jit(step)", lambda: peers.run_jax(X, y, layers, 100)),
        ("JAX jit(fori_loop 100 steps)", lambda: peers.run_jax(X, y, layers, 100, whole_loop=True)),
    ]
    if args.torch_compile:
        runners.append(("torch.compile", lambda: peers.run_torch(X, y, layers, 100, compiled=True)))
    if args.only:
        runners = runners[:1] + [(name, run) for name, run in runners[1:] if any(w in name for w in args.only)]
    floor = FLOPS_PER_STEP / (PEAK_GFLOPS * 1e9)
    rows = []
    for name, run in runners:
        try:
            r = run()
        except ImportError as e:
            print(f"skipping {name}: {e}")
            continue
        rows.append((name, statistics.median(r["times"]), min(r["times"]), r["compile"], r["accuracy"]))
    ours = rows[0][1]
    print(f"\n{'runner':34} {'median/step':>12} {'best/step':>12} {'compile s':>10} {'accuracy':>9} "
          f"{'x Trainer':>10} {'GFLOP/s':>8} {'x floor':>8}")
    for name, median, best, compile_s, acc in rows:
        print(f"{name:34} {median * 1e6:10.1f}us {best * 1e6:10.1f}us {compile_s:10.3f} {acc:9.2f} "
              f"{median / ours:10.1f} {FLOPS_PER_STEP / median / 1e9:8.2f} {median / floor:8.0f}")
    print(f"\nfloor: {FLOPS_PER_STEP:,} flops a step at {PEAK_GFLOPS} GFLOP/s (one core, {LANES} "
          f"float64 lanes, two vector ops a cycle at {GHZ} GHz) = {floor * 1e6:.1f} us. The Trainer's compile "
          "column is its first fit: trace + compile + all 100 steps.")


if __name__ == "__main__":
    main()
