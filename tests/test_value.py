"""The eager Value: micrograd's own tests (import changed only), every operator against
PyTorch float64, accumulation, a million-node chain, numpy scalars, graph_of, the
node layout (one object per node), random graphs against PyTorch and a recursive order."""
import gc
import math
import operator
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import tracegrad as tg
from tracegrad import Value
from tracegrad.backends import compile as compile_graph
from tracegrad.ir import evaluate
from tracegrad.value import _topological_order, gc_paused


# ---------------------------------------------------------------- micrograd's test/test_engine.py

def test_sanity_check():

    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xmg, ymg = x, y

    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xpt, ypt = x, y

    # forward pass went well
    assert ymg.data == ypt.data.item()
    # backward pass went well
    assert xmg.grad == xpt.grad.item()


def test_more_ops():

    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    amg, bmg, gmg = a, b, g

    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    apt, bpt, gpt = a, b, g

    tol = 1e-6
    # forward pass went well
    assert abs(gmg.data - gpt.data.item()) < tol
    # backward pass went well
    assert abs(amg.grad - apt.grad.item()) < tol
    assert abs(bmg.grad - bpt.grad.item()) < tol


def test_unary_tensor_fns():
    def test_unary_tensor_fn(value_fn, tensor_fn, xs, tol=1e-6):
        for x in xs:
            xv = Value(x)
            yv = value_fn(xv)
            yv.backward()

            xt = torch.Tensor([x]).double()
            xt.requires_grad = True
            yt = tensor_fn(xt)
            yt.backward()

            # forward pass went well
            assert abs(yv.data - yt.data.item()) < tol
            # backward pass went well
            assert abs(xv.grad - xt.grad.item()) < tol

    test_unary_tensor_fn(Value.tanh, torch.Tensor.tanh, [-1., .123, 2.])
    test_unary_tensor_fn(Value.exp, torch.Tensor.exp, [-1., .123, 2.])


# ---------------------------------------------------------------- every operator against PyTorch

UNARY = [
    ("neg", lambda v: -v, lambda t: -t),
    ("relu", lambda v: v.relu(), torch.relu),
    ("tanh", lambda v: v.tanh(), torch.tanh),
    ("sigmoid", lambda v: v.sigmoid(), torch.sigmoid),
    ("exp", lambda v: v.exp(), torch.exp),
    ("log", lambda v: v.log(), torch.log),
    ("sqrt", lambda v: v.sqrt(), torch.sqrt),
    ("abs", lambda v: abs(v), torch.abs),
    ("abs_method", lambda v: v.abs(), torch.abs),
    ("sin", lambda v: v.sin(), torch.sin),
    ("cos", lambda v: v.cos(), torch.cos),
    ("pow2", lambda v: v ** 2, lambda t: t ** 2),
    ("pow_half", lambda v: v ** 0.5, lambda t: t ** 0.5),
    ("pow_neg", lambda v: v ** -1.5, lambda t: t ** -1.5),
    ("rpow", lambda v: 2.0 ** v, lambda t: 2.0 ** t),
    ("clamp", lambda v: v.clamp(-1.0, 0.5), lambda t: t.clamp(-1.0, 0.5)),
    ("radd", lambda v: 3 + v, lambda t: 3 + t),
    ("rsub", lambda v: 3 - v, lambda t: 3 - t),
    ("rmul", lambda v: 3 * v, lambda t: 3 * t),
    ("rdiv", lambda v: 3 / v, lambda t: 3 / t),
    ("div", lambda v: v / 4, lambda t: t / 4),
    ("log1p", lambda v: v.log1p(), torch.log1p),
    ("softplus", lambda v: v.softplus(), torch.nn.functional.softplus),
    ("tg.relu", tg.relu, torch.relu),
    ("tg.tanh", tg.tanh, torch.tanh),
    ("tg.sign", tg.sign, torch.sign),
    ("self_ops", lambda v: v * v - v / (v + 10.0), lambda t: t * t - t / (t + 10.0)),
]
POINTS = [-2.5, -1.0, -0.0, 0.0, 0.3, 1.0, 4.0, 50.0]


def _torch_result(fn, x):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(t)
    y.backward()
    return y.item(), t.grad.item()


def _close(a, b):
    if math.isnan(b):
        return math.isnan(a)
    return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(b))


@pytest.mark.parametrize("name, vfn, tfn", UNARY, ids=[u[0] for u in UNARY])
def test_unary_operator_against_torch(name, vfn, tfn):
    for x in POINTS:
        v = Value(x)
        y = vfn(v)
        y.backward()
        data, grad = _torch_result(tfn, x)
        assert _close(y.data, data), (name, x, y.data, data)
        assert _close(v.grad, grad), (name, x, v.grad, grad)


BINARY = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b),
    ("mixed", lambda a, b: (a * b + a).tanh() / (b * b + 1.0)),
]


@pytest.mark.parametrize("name, fn", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("x, y", [(2.0, 3.0), (-1.5, 2.0), (0.5, -0.25), (3.0, 0.0)])
def test_binary_operator_against_torch(name, fn, x, y):
    a, b = Value(x), Value(y)
    out = fn(a, b)
    out.backward()
    ta = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    tout = fn(ta, tb)
    tout.backward()
    assert _close(out.data, tout.item())
    assert _close(a.grad, ta.grad.item())
    assert _close(b.grad, tb.grad.item())


def test_edge_values_follow_ieee():
    assert Value(-1.0).log().data != Value(-1.0).log().data  # nan, no exception
    assert Value(0.0).log().data == -math.inf
    assert (Value(1.0) / 0.0).data == math.inf
    assert Value(1000.0).exp().data == math.inf
    assert math.isnan((Value(math.inf) * 0.0).data)
    z = Value(-0.0)
    assert math.copysign(1.0, z.relu().data) == -1.0  # relu(-0.0) = -0.0, as torch
    r = Value(0.0); r.relu().backward()
    assert r.grad == 0.0  # relu'(0) = 0, as PyTorch


def test_comparisons_return_bool_and_identity_equality():
    a, b = Value(1.0), Value(2.0)
    assert (a < b) is True and (a >= b) is False and (a <= 1) is True and (b > np.float64(1.5)) is True
    assert a != Value(1.0) and a == a
    assert len({a, b, a}) == 2
    with pytest.raises(TypeError, match="real numbers"):
        a < "x"


def test_gradients_accumulate_and_zero_grad():
    x = Value(3.0)
    z = x * x
    y = z * 2.0
    y.backward()
    assert (x.grad, z.grad) == (12.0, 2.0)
    y.backward()  # as micrograd: y.grad is reset to 1, z.grad grows to 4, x.grad by 4 * 6
    assert (x.grad, z.grad, y.grad) == (36.0, 4.0, 1.0)
    y.zero_grad()
    assert x.grad == 0.0 and z.grad == 0.0 and y.grad == 0.0


def test_shared_parent_and_repeated_argument():
    x = Value(2.0)
    y = x * x + x * 3.0
    y.backward()
    assert x.grad == 7.0


def test_million_node_chain_backward_is_iterative():
    x = Value(1.0)
    y = x
    with gc_paused():  # only to save time: the collector would scan the chain as it grows
        for _ in range(1_000_000):
            y = y + 1.0
    limit = sys.getrecursionlimit()
    y.backward()
    assert sys.getrecursionlimit() == limit
    assert y.data == 1_000_001.0 and x.grad == 1.0


@pytest.mark.parametrize("scalar", [np.float64(2.0), np.int64(2), np.float32(2.0), 2, 2.0, True])
def test_numpy_and_python_scalars_on_either_side(scalar):
    v = Value(3.0)
    for out, data in ((v * scalar, 3.0 * float(scalar)), (scalar * v, 3.0 * float(scalar)),
                      (scalar + v, 3.0 + float(scalar)), (v - scalar, 3.0 - float(scalar)),
                      (scalar - v, float(scalar) - 3.0), (scalar / v, float(scalar) / 3.0)):
        assert isinstance(out, Value) and out.data == data
    assert Value(np.float64(1.5)).data == 1.5 and type(Value(np.int64(2)).data) is float


@pytest.mark.parametrize("other", ["2", [1.0], None, 1j, np.array(["a", "b"]), np.array([1j])])
def test_other_operands_are_a_type_error(other):
    v = Value(1.0)
    with pytest.raises(TypeError, match="real numbers"):
        v + other
    with pytest.raises(TypeError, match="real numbers"):
        v * other
    with pytest.raises(TypeError):
        Value(other)


def test_value_exponent_and_repr_label_and_micrograd_fields():
    a, b = Value(2.0, label="a"), Value(3.0)
    c = a ** b
    c.backward()
    assert c.data == 8.0 and a.grad == 12.0 and b.grad == pytest.approx(8.0 * math.log(2.0), rel=1e-15)
    assert repr(c) == "Value(data=8.0, grad=1.0)" and a.label == "a" and c.label == ""
    d = a * 2 + 1
    assert d._op == "+" and d._prev == {d.parents[0]} and (a * a)._op == "*" and (a ** 2)._op == "**2"
    assert (a ** 2).op == "powc" and (a ** 2).param == 2.0 and a._op == "" and a.op == ""
    handmade = Value(5.0, (a, b), "custom")
    handmade.backward()  # a hand-built node passes no gradient on, as micrograd's default _backward
    assert handmade._prev == {a, b} and handmade._op == "custom" and b.grad == 8.0 * math.log(2.0)


def test_value_in_a_trace_is_rejected_with_a_message():
    v = Value(2.0)
    with pytest.raises(TypeError, match="real numbers"):
        tg.grad(lambda x: x * v)(1.0)


# ---------------------------------------------------------------- graph_of

def test_graph_of_matches_eager_and_compiles():
    x, y = Value(0.7, label="x"), Value(-1.3, label="y")
    w = Value(0.25)  # not an input: a constant
    out = ((x * y + w).tanh() + x ** 2 / (y * y + 1.0)).relu() + tg.sigmoid(x)
    graph = tg.graph_of(out, inputs=[x, y])
    assert graph.input_names() == ["x", "y"]
    assert evaluate(graph, [0.7, -1.3]) == [out.data]
    assert compile_graph(graph, "python")(0.7, -1.3)[0] == out.data
    out.backward()
    grads = tg.grad(lambda a, b: evaluate(graph, [a, b])[0], argnums=(0, 1))(0.7, -1.3)
    assert grads[0] == pytest.approx(x.grad, rel=1e-14) and grads[1] == pytest.approx(y.grad, rel=1e-14)


def test_graph_of_rejects_bad_inputs():
    x = Value(1.0)
    y = x * 2
    with pytest.raises(ValueError, match="leaf"):
        tg.graph_of(y, inputs=[y])
    with pytest.raises(ValueError, match="twice"):
        tg.graph_of(y, inputs=[x, x])
    with pytest.raises(TypeError, match="Values"):
        tg.graph_of(y, inputs=[1.0])
    assert tg.graph_of(y, inputs=[Value(1.0, label="bad label")]).input_names() == ["x0"]


# ---------------------------------------------------------------- ops of three arguments

TERNARY = [
    ("where", tg.where, lambda c, a, b: torch.where(c != 0, a, b), [(1.0, 2.0, -3.0), (0.0, 2.0, -3.0),
                                                                  (math.nan, 0.5, 4.0), (-0.0, 1.5, 2.5)]),
    ("clamp", lambda x, lo, hi: x.clamp(lo, hi) if isinstance(x, Value) else tg.clamp(x, lo, hi),
     torch.clamp, [(-2.0, -1.0, 1.0), (0.3, -1.0, 1.0), (5.0, -1.0, 1.0), (0.0, -0.5, 2.0)]),
]


@pytest.mark.parametrize("name, vfn, tfn, points", TERNARY, ids=[t[0] for t in TERNARY])
@pytest.mark.parametrize("boxed", [(True, True, True), (True, False, False), (False, True, False),
                                   (False, False, True), (True, False, True)])
def test_ternary_ops_with_values_or_constants_in_every_position(name, vfn, tfn, points, boxed):
    for point in points:
        args = [Value(x) if b else x for x, b in zip(point, boxed)]
        out = vfn(*args)
        out.backward()
        tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=b) for x, b in zip(point, boxed)]
        tout = tfn(*tensors)
        if tout.requires_grad:  # not where only the condition is a Value
            tout.backward()
        assert _close(out.data, tout.item()), (name, point, boxed)
        for a, t in zip(args, tensors):
            if isinstance(a, Value):
                expected = 0.0 if t.grad is None else t.grad.item()  # where's condition takes none
                assert _close(a.grad, expected), (name, point, boxed, a.grad, expected)
        assert [p.data for p in out.parents] == [x for x, b in zip(point, boxed) if b] or math.isnan(point[0])
        leaves = [a for a in args if isinstance(a, Value)]
        assert _close(evaluate(tg.graph_of(out, inputs=leaves), [a.data for a in leaves])[0], out.data)


# ---------------------------------------------------------------- the node layout

def test_a_node_is_one_object_for_the_cyclic_collector():
    # What the collector costs an eager step grows with the tracked objects alive: a node
    # keeps its arguments in its own slots, with no tuple (or closure) beside it.
    x, y = Value(0.5), Value(-2.0)
    nodes = []
    with gc_paused():
        before = len(gc.get_objects())
        for _ in range(1000):
            nodes += [x * y, 2.0 - x, tg.relu(x), x ** 3, x.clamp(y, 1.0), 3 * x]
        grown = len(gc.get_objects()) - before
    assert 6000 <= grown < 6000 + 100
    assert not [r for v in nodes[:6] for r in gc.get_referents(v) if isinstance(r, (tuple, list, dict))]
    assert [n.parents for n in nodes[:6]] == [(x, y), (x,), (x,), (x,), (x, y), (x,)]
    assert [n._args for n in nodes[:6]] == [(x, y), (2.0, x), (x,), (x,), (x, y, 1.0), (3.0, x)]
    assert (nodes[3].param, nodes[3]._op, nodes[0].param) == (3.0, "**3", None)


def test_hand_built_micrograd_nodes_keep_their_children():
    a, b = Value(1.0), Value(2.0)
    node = Value(3.0, (a, b), "+")
    out = node * 2.0
    out.backward()
    assert node.parents == (a, b) and node._prev == {a, b} and node._op == "+" and node.op == ""
    assert (node.grad, a.grad, b.grad) == (2.0, 0.0, 0.0)  # a hand-built node passes nothing on
    assert _topological_order(node) == [] and _topological_order(out) == [out]


# ---------------------------------------------------------------- random graphs

def _reference_order(root):
    """Recursive depth-first search in argument order: what the iterative one must equal."""
    order, seen = [], set()

    def visit(v):
        for a in v.parents:
            if a.op and a not in seen:
                seen.add(a)
                visit(a)
        order.append(v)
    if root.op:
        visit(root)
    return order


def _f64(x):
    return torch.as_tensor(x, dtype=torch.float64)  # a tensor as it is, a constant in float64


STEPS = {  # name: (arity, on Values, on tensors)
    "add": (2, lambda a, b: a + b, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b, lambda a, b: a * b),
    "tanh": (1, lambda a: a.tanh(), torch.tanh),
    "relu": (1, tg.relu, torch.relu),
    "square": (1, lambda a: a ** 2, lambda a: a ** 2),
    "where": (3, tg.where, lambda c, a, b: torch.where(torch.as_tensor(c) != 0, _f64(a), _f64(b))),
}


@st.composite
def programs(draw):
    """A random DAG: each step applies an op to earlier nodes or to constants."""
    leaves = draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=4))
    steps = []
    for i in range(draw(st.integers(1, 14))):
        name = draw(st.sampled_from(sorted(STEPS)))
        operand = st.one_of(st.integers(0, len(leaves) + i - 1), st.sampled_from([-1.5, 0.0, 2.0]))
        args = draw(st.lists(operand, min_size=STEPS[name][0], max_size=STEPS[name][0]))
        if not any(isinstance(a, int) for a in args):
            args[0] = len(leaves) + i - 1
        steps.append((name, args))
    return leaves, steps


def _run(program, leaf, pick):
    leaves, steps = program
    nodes = [leaf(x) for x in leaves]
    for name, args in steps:
        nodes.append(STEPS[name][pick](*[nodes[a] if isinstance(a, int) else a for a in args]))
    return nodes


@settings(max_examples=60, deadline=None)
@given(programs())
def test_random_graphs_against_pytorch_and_a_recursive_order(program):
    nodes = _run(program, Value, 1)
    root = nodes[-1]
    assert _topological_order(root) == _reference_order(root)
    root.backward()
    tensors = _run(program, lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True), 2)
    for t in tensors:
        if t.requires_grad:
            t.retain_grad()
    if tensors[-1].requires_grad:
        tensors[-1].backward()
    assert _close(root.data, tensors[-1].item())
    for v, t in zip(nodes, tensors):
        if not t.requires_grad:  # torch records nothing for where(c, constant, constant)
            continue
        expected = 1.0 if t is tensors[-1] else 0.0 if t.grad is None else t.grad.item()
        assert math.isclose(v.grad, expected, rel_tol=1e-9, abs_tol=1e-9) or (
            math.isnan(v.grad) and math.isnan(expected)), (program, v, expected)


@pytest.mark.parametrize("outputs, inputs", [(3, ()), ("x", ()), (None, ()), (Value(1.0), 5)])
def test_graph_of_rejects_non_values(outputs, inputs):
    with pytest.raises(TypeError, match="graph_of takes"):
        tg.graph_of(outputs, inputs=inputs)


# ---------------------------------------------------------------- numpy arrays as operands

ARRAY_OPERATORS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]
COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge]
W = np.array([0.5, 2.0, 3.0])


@pytest.mark.parametrize("op", ARRAY_OPERATORS, ids=lambda op: op.__name__)
@pytest.mark.parametrize("array_first", [True, False])
def test_numpy_array_and_value_combine_elementwise(op, array_first):
    v = Value(1.5)
    out = op(W, v) if array_first else op(v, W)
    assert out.dtype == object and out.shape == (3,) and all(type(o) is Value for o in out)
    out.sum().backward()
    t = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    expected = op(torch.tensor(W), t) if array_first else op(t, torch.tensor(W))
    expected.sum().backward()
    assert [o.data for o in out] == pytest.approx(expected.tolist(), rel=1e-15)
    assert v.grad == pytest.approx(t.grad.item(), rel=1e-14)


@pytest.mark.parametrize("op", COMPARISONS, ids=lambda op: op.__name__)
def test_numpy_array_and_value_compare_elementwise(op):
    v = Value(2.0)
    assert (op(W, v) == op(W, 2.0)).all() and (op(v, W) == op(2.0, W)).all()
    ints = np.array([1, 2, 3])
    assert [o.data for o in ints + v] == [3.0, 4.0, 5.0]


def test_numpy_scalars_and_0d_arrays_stay_numbers():
    for number in (np.float64(2.0), np.int64(2), np.array(2.0)):
        for out in (number * Value(3.0), Value(3.0) * number, number - Value(3.0), Value(3.0) ** number):
            assert type(out) is Value
    assert (np.float64(2.0) * Value(3.0)).data == 6.0 and (np.array(2.0) - Value(3.0)).data == -1.0


def test_graph_of_unicode_labels_compiles_and_round_trips():
    theta, e = Value(0.5, label="θ"), Value(2.0, label="é")
    y = (theta * e).tanh() + e
    graph = tg.graph_of(y, inputs=[theta, e])
    assert graph.names == ("θ", "é") and str(graph).startswith("{ lambda θ:f64, é:f64 .")
    assert tg.Graph.from_json(graph.to_json()).names == ("θ", "é")
    assert compile_graph(graph, "python")(0.5, 2.0)[0] == y.data
