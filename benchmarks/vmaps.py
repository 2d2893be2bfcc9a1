"""Maps in SIMD lanes (llvm's scalar kernel): time per call of the compiled kernel of three functions.

    python benchmarks/vmaps.py [--rounds 300]

A map over 10,000 rows, ``sum(tg.map(lambda r: act(r[0] * x + r[1]), w))`` with ``act``
``tg.tanh`` (a C function: one call per lane) or ``tg.relu`` (instructions), and the
gradient of an MLP 64-128-10 (``tg.nn.MLP``, whose layers trace as maps over their
neurons; the gradient's reverse loops carry sums and stay scalar) at one sample. The
kernel is called through ctypes on arrays: ``tg.jit``'s own call adds the flattening of
its arguments (about 15 ms for the map's 20,000 floats). Prints the best and the median
time. Compare two versions of tracegrad by running it under each (``PYTHONPATH``).
"""
import argparse
import ctypes
import statistics
import time

import numpy as np

import tracegrad as tg
from tracegrad.backends import llvm


def timed(graph, inputs, rounds):
    kernel = llvm.compile(graph)
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(kernel.address)
    x, y = np.array(inputs, dtype=float), np.zeros(len(graph.outputs))
    times = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        run(x.ctypes.data, y.ctypes.data)
        times.append(time.perf_counter() - t0)
    return min(times[1:]), statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10_000, 2))
    model = tg.nn.MLP(64, [128, 10], seed=0)
    params, x = [p.data for p in model.parameters()], list(rng.uniform(size=64))
    cases = [(f"map of {act.__name__}, 10,000 rows",
              tg.trace(lambda w, x: sum(tg.map(lambda r: act(r[0] * x + r[1]), w)), w, 0.7), [*w.ravel(), 0.7])
             for act in (tg.tanh, tg.relu)]
    cases.append(("MLP 64-128-10 gradient", tg.trace(tg.grad(lambda ps, x: sum(o * o for o in model.apply(ps, x))),
                                                     params, x), params + x))
    for name, graph, inputs in cases:
        best, median = timed(graph, inputs, rounds)
        print(f"{name:26s} best {best * 1e6:8.1f} us   median {median * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
