"""Fuzzing with hypothesis: random programs drawn from the op table, random pytrees, random
bad arguments. A fixed, small budget in the default run; ``TRACEGRAD_FUZZ_EXAMPLES=2000``
runs a longer campaign."""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracegrad as tg
from tracegrad import backends
from tracegrad.ir import Builder, evaluate
from tracegrad.ops import TABLE
from tracegrad.pytree import flatten, unflatten

EXAMPLES = int(os.environ.get("TRACEGRAD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5])
OPS = sorted(TABLE)  # a new op is fuzzed as soon as it is in the table


@st.composite
def programs(draw, max_inputs=3, max_nodes=12):
    """A random graph: inputs, then ops of the table on earlier nodes or constants."""
    b = Builder()
    nodes = [b.input() for _ in range(draw(st.integers(1, max_inputs)))]
    for _ in range(draw(st.integers(1, max_nodes))):
        op = TABLE[draw(st.sampled_from(OPS))]
        args = []
        for _ in range(op.arity):
            if draw(st.integers(0, 4)) == 0:
                args.append(b.const(draw(FLOATS)))
            else:
                args.append(draw(st.sampled_from(nodes)))
        param = draw(st.sampled_from([2.0, 3.0, -1.0, 0.5, -2.0])) if op.has_param else None
        nodes.append(b.add(op.name, tuple(args), param))
    outputs = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3))
    return b.graph(outputs)


def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


@FUZZ
@given(programs(), st.data())
def test_random_programs_agree_across_backends(graph, data):
    xs = [data.draw(FLOATS) for _ in graph.inputs]
    want = evaluate(graph, xs)
    for backend in ("python", "llvm"):
        got = backends.compile(graph, backend)(*xs)
        assert all(same(a, b) for a, b in zip(got, want)), (backend, graph, xs, got, want)
    assert tg.Graph.from_json(graph.to_json()) == graph


@FUZZ
@given(programs(max_nodes=8), st.lists(st.floats(-2, 2), min_size=3, max_size=3))
def test_random_programs_differentiate_like_forward_mode(graph, point):
    """Reverse mode (grad of the sum of outputs) against forward mode, one input at a time."""
    def f(*xs):
        return sum(evaluate(graph, list(xs)), 0.0)
    xs = point[:len(graph.inputs)]
    reverse = tg.grad(f, argnums=tuple(range(len(xs))), backend="interp")(*xs)
    for k in range(len(xs)):
        tangents = tuple(1.0 if i == k else 0.0 for i in range(len(xs)))
        forward = tg.jvp(f, tuple(xs), tangents)[1]
        if math.isfinite(reverse[k]) and math.isfinite(forward):  # at singular points forward mode
            assert same(reverse[k], forward), (graph, xs, k, reverse, forward)  # gives inf * 0 = nan


LEAVES = st.floats(-10, 10) | st.integers(-5, 5)
PYTREES = st.recursive(
    LEAVES,
    lambda inner: (st.lists(inner, max_size=3) | st.tuples(inner, inner)
                   | st.dictionaries(st.text("abxyz_'\"", min_size=1, max_size=4), inner, max_size=3)),
    max_leaves=8)


@FUZZ
@given(PYTREES)
def test_random_pytrees_round_trip_and_differentiate(tree):
    leaves, treedef = flatten(tree)
    assert unflatten(treedef, leaves) == tree
    grad = tg.grad(lambda t: sum((x * x for x in flatten(t)[0]), 0.0), backend="interp")(tree)
    assert flatten(grad) == ([2.0 * x for x in leaves], treedef)


BAD = (st.text(max_size=3) | st.none() | st.complex_numbers(allow_nan=False).filter(lambda z: z.imag)
       | st.just(object()) | st.sets(st.integers(), min_size=1, max_size=2) | st.binary(max_size=3)
       | st.just(np.array(["a"])) | st.just(np.array([1j])))


@FUZZ
@given(PYTREES, BAD, st.integers(0, 3), st.sampled_from(["grad", "jit", "jvp", "vmap", "value_and_grad"]))
def test_random_bad_arguments_raise_documented_errors(tree, bad, where, api):
    """A bad leaf hidden anywhere in a tree, or the wrong number of arguments: TypeError/ValueError."""
    args = [tree, bad] if where == 0 else [[tree, {"k": bad}]] if where == 1 else [tree] * where

    def f(*xs):
        return sum((x for x in flatten(xs)[0]), 0.0) * 1.0

    def g(t):
        return sum((x for x in flatten(t)[0]), 0.0) * 1.0
    calls = {"grad": lambda: tg.grad(g, backend="interp")(*args),
             "value_and_grad": lambda: tg.value_and_grad(g, backend="interp")(*args),
             "jit": lambda: tg.jit(g, backend="interp")(*args),
             "jvp": lambda: tg.jvp(f if where == 1 else g, tuple(args), tuple(args)),
             "vmap": lambda: tg.vmap(g)(*args)}
    with pytest.raises((TypeError, ValueError)):  # a bad leaf, or 2-3 arguments for a 1-parameter function
        calls[api]()
