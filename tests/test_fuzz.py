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
from tracegrad.ir import evaluate
from tracegrad.pytree import flatten, unflatten

from programs import programs

EXAMPLES = int(os.environ.get("TRACEGRAD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5])
EXPONENTS = [2.0, 3.0, -1.0, 0.5, -2.0]
POINTS = st.floats(-2, 2).filter(lambda v: v == 0.0 or abs(v) > 1e-100)



def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


@FUZZ
@given(programs(ops=(1, 12), constants=FLOATS, exponents=EXPONENTS), st.data())
def test_random_programs_agree_across_backends(graph, data):
    xs = [data.draw(FLOATS) for _ in graph.inputs]
    want = evaluate(graph, xs)
    for backend in ("python", "llvm"):
        got = backends.compile(graph, backend)(*xs)
        assert all(same(a, b) for a, b in zip(got, want)), (backend, graph, xs, got, want)
    assert tg.Graph.from_json(graph.to_json()) == graph


@FUZZ
@given(programs(ops=(1, 8), constants=FLOATS, exponents=EXPONENTS), st.lists(POINTS, min_size=3, max_size=3))
def test_random_programs_differentiate_like_forward_mode(graph, point):
    """Reverse mode (grad of the sum of outputs) against forward mode, one input at a time.

    The two modes add the same terms in different orders, so where terms cancel they
    differ by rounding. Points are 0 or of magnitude above 1e-100: near underflow, terms
    like 1/|x| are huge (|x| + x/|x| at x = 4e-233: reverse 1 + 2.6e232 - 2.6e232 = 0,
    forward 1).
    """
    def f(*xs):
        return sum(evaluate(graph, list(xs)), 0.0)
    xs = point[:len(graph.inputs)]
    reverse = tg.grad(f, argnums=tuple(range(len(xs))), backend="interp")(*xs)
    for k in range(len(xs)):
        tangents = tuple(1.0 if i == k else 0.0 for i in range(len(xs)))
        forward = tg.jvp(f, tuple(xs), tangents)[1]
        if math.isfinite(reverse[k]) and math.isfinite(forward):  # at singular points forward mode
            # gives inf * 0 = nan; terms that cancel (tanh(x) / tanh(x)) leave rounding noise of either sign
            assert abs(reverse[k] - forward) <= 1e-10 * max(1.0, abs(forward)), (graph, xs, k, reverse, forward)


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


def test_copysign_of_a_computed_nan_agrees_across_backends():
    """A nan's sign bit is not the same everywhere (0/0 is -nan on x86, +nan when LLVM folds it):
    copysign counts every nan as positive, so the backends agree (found by the fuzzer); sympy has
    no nan in comparisons."""
    f = lambda x, y: [tg.copysign(1.0, tg.fmod(0.0, x)), tg.copysign(2.0, x * y), tg.copysign(-3.0, x - x)]  # noqa: E731
    for args in [(0.0, math.inf), (math.inf, 0.0), (math.nan, -1.0), (-0.0, 5.0)]:
        results = {b: tuple(tg.jit(f, backend=b)(*args)) for b in backends.NAMES if b != "sympy"}
        assert len(set(map(str, results.values()))) == 1, results
