"""Dense layers as loops against the straight-line code, in one process (an empty disk cache).

    python benchmarks/dense.py

1. The Trainer: first fit (trace, compile, one epoch) and CPU time per epoch (Adam, hinge
   loss) as dense loops (``llvm_dense``) and as the straight-line kernel of the traced
   sample, for MLPs around ``tg.nn.trainer.DENSE_FROM`` parameters.
2. ``model.predict`` of an MLP 64-128-10 on 12,500 rows: the dense forward loops against
   the row map of the straight-line forward graph.
3. ``tg.jit(tg.grad(f))`` for the cross-entropy of an MLP 64-128-10: trace + compile and
   time per call, with each ``Layer`` traced as a map and traced straight-line.
"""
import os
import tempfile
import time

os.environ["TRACEGRAD_CACHE_DIR"] = tempfile.mkdtemp()

import numpy as np  # noqa: E402

import tracegrad as tg  # noqa: E402
from tracegrad.nn import trainer as trainer_module  # noqa: E402
from tracegrad.nn.module import straight_layers  # noqa: E402


def straight(dense):
    """Force the dense path (even below ``DENSE_FROM``), or the straight-line one."""
    trainer_module.DENSE_FROM = 0 if dense else 10 ** 12


def training(models, epochs=300):
    print("Trainer: first fit s / CPU us per epoch (Adam, hinge)")
    print(f"{'model':28s} {'parameters':>10s} {'dense loops':>22s} {'straight-line':>22s}")
    rng = np.random.default_rng(0)
    for nin, sizes, n, batch in models:
        X, y = rng.normal(size=(n, nin)), np.sign(rng.normal(size=n))
        cells = []
        for dense in (True, False):
            straight(dense)
            model = tg.nn.MLP(nin, sizes, seed=1)
            trainer = tg.nn.Trainer(model, loss="hinge", optimizer=tg.nn.Adam(lr=0.01))
            t0 = time.perf_counter()
            trainer.fit(X, y, epochs=1, batch_size=batch, progress=False)
            first = time.perf_counter() - t0
            c0 = time.process_time()
            trainer.fit(X, y, epochs=epochs, batch_size=batch, progress=False)
            cells.append(f"{first:.2f} s / {(time.process_time() - c0) / epochs * 1e6:.1f} us")
        name = f"MLP {nin}-{'-'.join(map(str, sizes))}, {n} x {batch or 'all'}"
        print(f"{name:28s} {len(model.parameters()):10d} {cells[0]:>22s} {cells[1]:>22s}")


def predicting(rows=12_500):
    X = np.random.default_rng(1).normal(size=(rows, 64))
    print(f"\npredict, MLP 64-128-10, {rows} rows: first call s / CPU ms per call")
    for dense in (True, False):
        straight(dense)
        model = tg.nn.MLP(64, [128, 10], seed=2)
        t0 = time.perf_counter()
        model.predict(X[:8])
        first = time.perf_counter() - t0
        c0 = time.process_time()
        out = model.predict(X)
        print(f"{'dense loops' if dense else 'straight-line row map':24s} {first:8.3f} s "
              f"{(time.process_time() - c0) * 1e3:10.1f} ms")
    return out


def gradient(calls=50):
    model = tg.nn.MLP(64, [128, 10], seed=3)
    params = [p.data for p in model.parameters()]
    x = list(np.linspace(0.0, 1.0, 64))

    def f(ps):
        return tg.nn.cross_entropy(model.apply(ps, x), 3)
    print("\ntg.jit(tg.grad(cross-entropy of MLP 64-128-10)): trace + compile s / ms per call")
    results = []
    for name, unrolled in (("Layer as a map", False), ("Layer straight-line", True)):
        def run():
            g = tg.jit(tg.grad(f))
            t0 = time.perf_counter()
            results.append(g(params))
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(calls):
                g(params)
            return first, (time.perf_counter() - t0) / calls
        if unrolled:
            with straight_layers():
                first, per_call = run()
        else:
            first, per_call = run()
        print(f"{name:24s} {first:8.3f} s {per_call * 1e3:10.2f} ms")
    print(f"largest difference between the two gradients: {np.max(np.abs(np.subtract(*results))):.1e}")


def main():
    saved = trainer_module.DENSE_FROM
    try:
        training([(2, [16, 16, 1], 100, None), (8, [32, 1], 200, 32), (16, [48, 1], 200, 32),
                  (2, [32, 32, 1], 100, None)])
        predicting()
    finally:
        trainer_module.DENSE_FROM = saved
    gradient()


if __name__ == "__main__":
    main()
