"""Scale: long graphs build, differentiate and run without recursion, in memory linear in their size.

The default run uses ``TRACEGRAD_SCALE_NODES`` nodes (default 20,000: far past any recursion
limit); ``pytest -m bench tests/test_scale.py -s`` runs 1,000,000 and prints the figures
that docs/robustness.md states.
"""
import gc
import math
import os
import resource
import time
import tracemalloc

import pytest

import tracegrad as tg
from tracegrad import backends
from tracegrad.ir import evaluate
from tracegrad.transforms import vjp_graph

NODES = int(os.environ.get("TRACEGRAD_SCALE_NODES", "20000"))


def chain(n):
    """A function of about ``n`` nodes (4 per step), each step feeding the next."""
    def fn(x, y):
        for _ in range(n // 4):
            x = tg.sin(x * y + 0.5) + x
        return x
    return fn


def reference(n, x, y):
    """Value and gradient of ``chain(n)`` by plain forward-mode floats."""
    v, dvx, dvy = x, 1.0, 0.0
    for _ in range(n // 4):
        u = v * y + 0.5
        du_x, du_y = dvx * y, dvy * y + v
        v, dvx, dvy = math.sin(u) + v, math.cos(u) * du_x + dvx, math.cos(u) * du_y + dvy
    return v, dvx, dvy


def build(n):
    """Trace and differentiate; the bytes per node that the two graphs hold (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        graph = tg.trace(chain(n), 0.3, 0.7)
        gradient = vjp_graph(graph, [0, 1], seed=1.0)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return graph, gradient, held / (len(graph.nodes) + len(gradient.nodes))


@pytest.fixture(scope="module")
def built():
    return build(NODES)


def test_long_traced_graph_builds_differentiates_and_runs(built):
    graph, gradient, per_node = built
    assert len(graph.nodes) >= NODES
    assert per_node < 1000  # linear: a few hundred bytes per node (measured: ~150)
    value, dx, dy = evaluate(gradient, [0.3, 0.7])
    for got, want in zip((value, dx, dy), reference(NODES, 0.3, 0.7)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert tg.Graph.from_json(gradient.to_json()) == gradient  # JSON walks it without recursion


def test_memory_per_node_does_not_grow_with_size(built):
    assert built[2] < 1.5 * build(NODES // 4)[2]


def test_long_eager_value_chain_backpropagates():
    x, y = tg.Value(0.3), tg.Value(0.7)
    z = x
    for _ in range(NODES // 4):
        z = (z * y + 0.5).sin() + z
    z.backward()
    want = reference(NODES, 0.3, 0.7)
    assert (z.data, x.grad, y.grad) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert len(tg.graph_of(z, [x, y]).nodes) >= NODES


@pytest.mark.bench
def test_million_nodes():
    n = 1_000_000
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731
    start = time.perf_counter()
    graph = tg.trace(chain(n), 0.3, 0.7)
    traced = time.perf_counter()
    gradient = vjp_graph(graph, [0, 1], seed=1.0)
    differentiated = time.perf_counter()
    result = evaluate(gradient, [0.3, 0.7])
    ran = time.perf_counter()
    kernel = backends.compile(gradient, "llvm")
    compiled = time.perf_counter()
    assert kernel(0.3, 0.7) == pytest.approx(result, rel=1e-9)
    assert result == pytest.approx(reference(n, 0.3, 0.7), rel=1e-9, abs=1e-12)
    print(f"\n{len(graph.nodes)} + {len(gradient.nodes)} nodes: trace {traced - start:.1f} s, "
          f"grad {differentiated - traced:.1f} s, interp {ran - differentiated:.1f} s, "
          f"llvm compile {compiled - ran:.1f} s, max RSS {rss():.0f} MB")
