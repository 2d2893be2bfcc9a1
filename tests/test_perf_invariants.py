"""Structural invariants behind tracegrad's speed: work counted in objects and calls, never in seconds.

- building a gradient or a Hessian of the extended Rosenbrock function is linear in N
  (tracers made and nodes added per input stay flat as N doubles);
- tracing or jitting a tracegrad Function takes its graph as it is (no replay);
- a call on plain floats skips the pytree work and agrees with the general path;
- the fast paths (builder replay, a plain cotangent until a mask arrives, DCE without
  renumbering) give the same graphs and values as the general ones;
- the fingerprint tells graphs apart by content, -0.0 from 0.0 included.
"""
import gc
import math

import pytest
import torch

import tracegrad as tg
from tracegrad import api, ir, tracing
from tracegrad.ir import Builder, Graph
from tracegrad.transforms.jvp import forward_sweep


def rosenbrock(*x):
    total = 0.0
    for i in range(len(x) - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


def rosenbrock_torch(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


class Counts:
    """Counts tracers made and nodes added while it is active (a monkeypatch fixture's helper)."""

    def __init__(self, monkeypatch):
        self.tracers = self.adds = 0
        tracer_init, add = tracing.Tracer.__init__, Builder.add

        def counting_init(tracer, builder, index):
            self.tracers += 1
            tracer_init(tracer, builder, index)

        def counting_add(builder, op, args, param=None):
            self.adds += 1
            return add(builder, op, args, param)
        monkeypatch.setattr(tracing.Tracer, "__init__", counting_init)
        monkeypatch.setattr(Builder, "add", counting_add)


def work_per_input(monkeypatch, transform, n):
    counts = Counts(monkeypatch)
    tg.trace(transform(rosenbrock, argnums=tuple(range(n))), *[0.5] * n)
    monkeypatch.undo()
    return counts.tracers / n, counts.adds / n


@pytest.mark.parametrize("transform", [tg.grad, tg.hessian, tg.jacfwd])
def test_derivative_builds_are_linear_in_the_number_of_inputs(monkeypatch, transform):
    small, large = work_per_input(monkeypatch, transform, 40), work_per_input(monkeypatch, transform, 160)
    assert large[0] <= 1.1 * small[0] and large[1] <= 1.1 * small[1], (small, large)


def test_hessian_of_rosenbrock_has_linear_size_and_matches_torch():
    n = 12
    point = [0.1 * i - 0.4 for i in range(n)]
    sizes = [len(tg.optimize(tg.trace(tg.hessian(rosenbrock, argnums=tuple(range(k))), *[0.5] * k)).nodes)
             for k in (50, 100)]
    assert sizes[1] <= 2.05 * sizes[0]
    H = tg.hessian(rosenbrock, argnums=tuple(range(n)))(*point)
    expected = torch.autograd.functional.hessian(rosenbrock_torch, torch.tensor(point, dtype=torch.float64))
    assert all(math.isclose(H[i][j], expected[i, j].item(), rel_tol=1e-12, abs_tol=1e-12)
               for i in range(n) for j in range(n))


def test_forward_sweep_carries_only_the_directions_a_node_depends_on():
    n = 30
    grad = tg.trace(tg.grad(rosenbrock, argnums=tuple(range(n))), *[0.5] * n)
    seeds = [{k: 1.0} for k in range(n)]
    env, tangents = forward_sweep(grad, [0.5] * n, seeds)
    assert max(len(t) for t in tangents) == 3  # x[i-1], x[i], x[i+1]
    assert env[grad.outputs[0]] == tg.grad(rosenbrock)(*[0.5] * n)


def test_tracing_a_function_does_not_replay_its_graph(monkeypatch):
    replays = []
    replay = Builder.replay
    monkeypatch.setattr(Builder, "replay", lambda b, g, args: replays.append(g) or replay(b, g, args))
    f = tg.grad(rosenbrock, argnums=(0, 1, 2))
    graph = tg.trace(f, 0.5, 0.5, 0.5)
    assert len(replays) == 1 and replays[0] is not graph  # only the forward pass inside vjp
    jitted = tg.trace(tg.jit(f), 0.5, 0.5, 0.5)
    assert jitted == graph


def test_replaying_a_built_graph_gives_the_same_graph():
    def f(x, y):
        return tg.where(x > y, tg.sin(x) * 2.0, -(-y)) + x ** 2.0 + 0.0 * y

    assert tg.trace(lambda x, y: tg.jit(f)(x, y), 1.0, 2.0) == tg.trace(f, 1.0, 2.0)
    with_float = tg.trace(lambda x: tg.jit(f)(x, 2.0), 1.0)  # a float among the replayed inputs
    assert with_float == tg.trace(lambda x: f(x, 2.0), 1.0)
    assert ir.evaluate(with_float, [3.0]) == [f(3.0, 2.0)]


def test_calls_on_plain_floats_skip_the_pytree_and_agree(monkeypatch):
    def f(x, y):
        return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)

    df, value = tg.jit(tg.grad(f, argnums=(0, 1)), backend="python"), tg.jit(f, backend="python")
    first, v = df(0.3, 0.7), value(0.3, 0.7)
    monkeypatch.setattr(api, "flatten", None)  # the fast path must not need it
    assert df(0.3, 0.7) == first and type(first) is tuple and len(first) == 2
    assert value(0.3, 0.7) == v and type(v) is float
    assert math.isnan(df(-0.0, math.inf)[0])  # -0.0 * inf, through the kernel
    monkeypatch.undo()
    assert df(0.3, 1) == df(0.3, 1.0)  # an int goes the general way, to the same result


def test_fast_path_keeps_the_last_graph():
    f = tg.jit(lambda x, y: y, backend="python")
    f(1.0, 2.0)
    assert f([1.0, 2.0], 3.0) == 3.0 and len(f.graph.inputs) == 3
    assert f(1.0, 2.0) == 2.0 and len(f.graph.inputs) == 2


def test_cotangents_plain_and_masked_on_one_node_match_torch():
    def f(x, y):  # x gets a plain cotangent, then masked ones through both sides of a where
        a = x * y
        return a * a + tg.where(x > 0.0, a, tg.log(a)) + tg.where(y > x, 1.0 / x, a)

    def f_torch(x, y):
        a = x * y
        return a * a + torch.where(x > 0.0, a, torch.log(a)) + torch.where(y > x, 1.0 / x, a)

    for point in [(0.5, 2.0), (-0.5, -2.0), (2.0, 0.5), (0.0, 1.0)]:
        xs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
        expected = torch.autograd.grad(f_torch(*xs), xs)
        got = tg.grad(f, argnums=(0, 1))(*point)
        for g, e in zip(got, expected):
            assert g == e.item() or (math.isnan(g) and math.isnan(e.item())), (point, got, expected)


def test_dce_keeps_numbering_when_nothing_is_dead_and_renumbers_otherwise():
    b = Builder()
    x, y = b.input(), b.input()
    dead = b.add("sin", (x,))
    live = b.add("mul", (x, y))
    assert b.add("mul", (y, x)) == live and b.add("mul", (x, b.const(1.0))) == x
    full = b.graph([live, dead, live])
    assert full.nodes == tuple(b.nodes[:2] + [b.nodes[dead], b.nodes[live]]) and full.outputs == (3, 2, 3)
    part = b.graph([live])
    assert part.nodes == (("input", (), 0), ("input", (), 1), ("mul", (0, 1), None)) and part.outputs == (2,)


def test_fingerprint_tells_graphs_apart_by_content():
    def graph(c, names=()):
        b = Builder()
        x = b.input()
        return b.graph([b.add("add", (x, b.const(c)))], names)

    assert graph(0.5).fingerprint == graph(0.5, ["x"]).fingerprint
    assert len({graph(c).fingerprint for c in (0.0, -0.0, 0.5, math.inf, math.nan)}) == 5
    assert graph(math.nan).fingerprint == graph(-math.nan).fingerprint
    g = graph(2.0)
    moved = Graph(g.nodes, g.inputs, (0,))
    assert moved.fingerprint != g.fingerprint and Graph.from_json(g.to_json()).fingerprint == g.fingerprint


def test_tracing_restores_the_garbage_collector():
    assert gc.isenabled()
    inside = []
    tg.trace(lambda x: inside.append(gc.isenabled()) or tg.grad(lambda y: y * y)(x), 1.0)
    assert inside == [False] and gc.isenabled()
    with pytest.raises(tg.TracingError):
        tg.trace(lambda x: 1.0 if x > 0 else 0.0, 1.0)
    assert gc.isenabled()
    gc.disable()
    try:
        tg.trace(lambda x: x * x, 1.0)
        assert not gc.isenabled()
    finally:
        gc.enable()
