"""numpy's ufuncs on traced values, Values and object arrays of them.

Every ufunc that a row's ``numpy`` facet names records that row: its value against numpy on
floats (at the points of the row's line in ``op_table.py``), its gradient against PyTorch
float64, on scalars, eager Values and the object arrays tracegrad makes. Any other ufunc
is a TypeError naming it (but for numpy's operator ufuncs np.square, np.reciprocal, np.positive).
"""
import math
import pickle

import numpy as np
import pytest
import torch

import tracegrad as tg
from conftest import same_float
from op_table import OPS
from tracegrad.ops import UFUNCS
from tracegrad.pytree import BoxArray

LINES = {name: (torch_fn, [p if isinstance(p, tuple) else (p,) for p in points])
         for name, _, torch_fn, points in OPS}
MAPPED_UFUNCS = {getattr(np, name): op for name, op in UFUNCS.items()}  # UFUNCS is keyed by name: no numpy at import
MAPPED = sorted(MAPPED_UFUNCS.items(), key=lambda item: item[0].__name__)
ALL_UFUNCS = sorted({u for u in vars(np).values() if isinstance(u, np.ufunc)}, key=lambda u: u.__name__)
OPERATOR_UFUNCS = {np.square: lambda x: x * x, np.reciprocal: lambda x: 1.0 / x, np.positive: lambda x: x}


def numpy_value(ufunc, point):
    """numpy's result on floats, where it differs from the row's by design the row's.

    np.sign(nan) is nan; the row's is 0, as torch.sign. np.power(x, 0.5) is numpy's sqrt(x), which
    differs from C's pow (the row's, torch.pow's) at -0.0 and -inf; with a constant exponent 0.5 the
    row is powc, sqrt too. np.maximum and np.minimum give the second argument on a tie (0.0 and
    -0.0), the row the first (compared without the sign of zero).
    """
    if ufunc is np.sign and math.isnan(point[0]):
        return 0.0
    if ufunc in (np.power, np.float_power):
        if point[1] == 0.5:
            return torch.pow(*(torch.tensor(v, dtype=torch.float64) for v in point)).item()
    with np.errstate(all="ignore"):
        return float(ufunc(*map(np.float64, point)))


def signed(ufunc):
    return ufunc not in (np.maximum, np.minimum)


def torch_gradient(fn, point):
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    y = fn(*xs)
    if not y.requires_grad:
        return [0.0] * len(xs)
    return [0.0 if g is None else g.item() for g in torch.autograd.grad(y, xs, allow_unused=True)]


def ids(item):
    return item[0].__name__


def test_every_row_with_a_numpy_ufunc_maps_and_the_math_module_rows_are_there():
    names = set(UFUNCS)
    assert {"arctan2", "hypot", "expm1", "log1p", "maximum", "minimum", "copysign", "floor", "ceil", "trunc",
            "fmod", "cbrt", "exp2", "arcsinh", "power", "absolute", "fabs", "less", "not_equal"} <= names
    for name, op in UFUNCS.items():  # the package's rows are not checked against numpy when defined
        ufunc = getattr(np, name)
        assert isinstance(ufunc, np.ufunc) and ufunc.__name__ == name and name in op.numpy
        assert (ufunc.nin, ufunc.nout, ufunc.signature) == (op.arity, 1, None) and op.name in LINES


@pytest.mark.parametrize("item", MAPPED, ids=ids)
def test_ufunc_records_its_row_with_numpys_value_and_torchs_gradient(item):
    ufunc, op = item
    torch_fn, points = LINES[op.name]
    n = op.arity
    assert tg.trace(lambda *xs: ufunc(*xs), *[0.5] * n).stats()[op.name] == 1
    f = tg.jit(lambda *xs: ufunc(*xs))
    df = tg.jit(tg.grad(lambda *xs: ufunc(*xs), argnums=tuple(range(n))))
    bad = []
    for point in points:
        expected = numpy_value(ufunc, point)
        if not same_float(f(*point), expected, signed_zero=signed(ufunc)):
            bad.append(f"{point}: {f(*point)!r} != numpy {expected!r}")
        for ours, theirs in zip(df(*point), torch_gradient(torch_fn, point)):
            if not same_float(ours, theirs):
                bad.append(f"{point}: gradient {ours!r} != torch {theirs!r}")
    assert not bad, f"np.{ufunc.__name__}: " + "; ".join(bad[:5])


@pytest.mark.parametrize("item", MAPPED, ids=ids)
def test_ufunc_on_values_records_its_row(item):
    ufunc, op = item
    torch_fn, points = LINES[op.name]
    for point in points:
        xs = [tg.Value(v) for v in point]
        out = ufunc(*xs)
        if op.compare:  # as Value's `<`: compares data, a numpy bool
            assert type(out) is np.bool_ and float(out) == numpy_value(ufunc, point)
            continue
        assert type(out) is tg.Value and out.op == op.name
        assert same_float(out.data, numpy_value(ufunc, point), signed_zero=signed(ufunc)), (point, out.data)
        out.backward()
        for x, theirs in zip(xs, torch_gradient(torch_fn, point)):
            assert same_float(x.grad, theirs), (point, x.grad, theirs)


@pytest.mark.parametrize("item", MAPPED, ids=ids)
def test_ufunc_on_object_arrays_one_row_per_element(item):
    """Array arguments of a traced function are BoxArrays: every mapped ufunc applies per element,
    with a numpy array, a float or a traced scalar beside it (broadcast as numpy does)."""
    ufunc, op = item
    torch_fn, points = LINES[op.name]
    columns = [np.array(c) for c in zip(*points)]
    with np.errstate(all="ignore"):
        expected = ufunc(*columns).astype(float)
    if ufunc is np.sign:
        expected[np.isnan(columns[0])] = 0.0
    out = tg.jit(lambda *arrays: ufunc(*arrays))(*columns)
    assert out.shape == expected.shape and all(map(same_float, out, expected))
    grads = tg.grad(lambda *arrays: ufunc(*arrays).sum(), argnums=tuple(range(op.arity)))(*columns)
    for i, point in enumerate(points):
        assert all(same_float(g[i], t) for g, t in zip(grads, torch_gradient(torch_fn, point))), point
    if op.arity == 2:  # an array with a float, and with a traced scalar
        y = 0.75
        with np.errstate(all="ignore"):
            assert all(map(same_float, tg.jit(lambda a: ufunc(a, y))(columns[0]), ufunc(columns[0], y)))
            assert all(map(same_float, tg.jit(lambda a, s: ufunc(s, a))(columns[0], y), ufunc(y, columns[0])))


def test_power_with_a_constant_exponent_records_powc_as_the_operator():
    graph = tg.trace(lambda x: np.power(x, 2) + np.float_power(x, 0.5) + np.square(x), 1.0)
    assert graph.stats()["powc"] == 2 and "pow" not in graph.stats()
    assert str(tg.trace(lambda x: np.power(x, 3.0), 1.0)) == str(tg.trace(lambda x: x ** 3.0, 1.0))
    assert tg.grad(lambda x: np.power(2.0, x))(3.0) == pytest.approx(8.0 * math.log(2.0), rel=1e-15)


@pytest.mark.parametrize("ufunc", list(OPERATOR_UFUNCS), ids=lambda u: u.__name__)
def test_operator_ufuncs_are_numpys_python_operators(ufunc):
    fn = OPERATOR_UFUNCS[ufunc]
    assert str(tg.trace(lambda x: ufunc(x), 1.5)) == str(tg.trace(fn, 1.5))
    t = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    torch_fn = {np.square: torch.square, np.reciprocal: torch.reciprocal, np.positive: torch.positive}[ufunc]
    torch_fn(t).backward()
    assert tg.value_and_grad(lambda x: ufunc(x))(1.5) == (float(ufunc(1.5)), t.grad.item())
    v = tg.Value(1.5)
    ufunc(v).backward()
    assert v.grad == t.grad.item()
    assert tg.jit(lambda a: ufunc(a))(np.array([1.5, -2.0])).tolist() == ufunc(np.array([1.5, -2.0])).tolist()


@pytest.mark.parametrize("ufunc", [u for u in ALL_UFUNCS if u not in MAPPED_UFUNCS and u not in OPERATOR_UFUNCS
                                   and u.signature is None], ids=lambda u: u.__name__)
def test_a_ufunc_without_a_row_is_a_type_error_naming_it(ufunc):
    args = [0.5] * ufunc.nin
    for call in (lambda: tg.grad(lambda x: ufunc(*[x] * ufunc.nin))(0.5),
                 lambda: ufunc(*[tg.Value(0.5)] * ufunc.nin),
                 lambda: tg.jit(lambda a: ufunc(*[a] * ufunc.nin))(np.array(args))):
        with pytest.raises(TypeError, match=rf"np\.{ufunc.__name__}\b.*tg\.defop"):
            call()


def test_a_users_op_takes_a_ufunc_through_its_row():
    def rule(g, out, x, y):
        return g * tg.exp(x - out), g * tg.exp(y - out)
    op = tg.defop("my_logaddexp", 2, eval=lambda x, y: float(np.logaddexp(x, y)), vjp=rule,
                  lower=lambda x, y: tg.maximum(x, y) + tg.log1p(tg.exp(-tg.abs(x - y))), numpy="logaddexp")
    try:
        assert op.numpy == ("logaddexp",) and UFUNCS["logaddexp"] is op
        assert tg.trace(lambda x: np.logaddexp(x, 0.0), 1.0).stats()["my_logaddexp"] == 1
        xs = torch.tensor([1.0, -800.0, 30.0], dtype=torch.float64, requires_grad=True)
        torch.logaddexp(xs, torch.tensor(2.0, dtype=torch.float64)).sum().backward()
        grad = tg.grad(lambda a: np.logaddexp(a, 2.0).sum())(np.array([1.0, -800.0, 30.0]))
        assert np.allclose(grad, xs.grad.numpy(), rtol=1e-14, atol=0)
        v = tg.Value(1.0)
        np.logaddexp(v, 2.0).backward()
        assert v.grad == pytest.approx(xs.grad[0].item(), rel=1e-15)
        tg.defop("my_logaddexp", 2, eval=lambda x, y: 0.0, lower=lambda x, y: x * 0.0)  # redefined without it
        assert "logaddexp" not in UFUNCS
        with pytest.raises(TypeError, match="np.logaddexp has no tracegrad op"):
            np.logaddexp(tg.Value(1.0), 2.0)
    finally:
        UFUNCS.pop("logaddexp", None)


@pytest.mark.parametrize("numpy, error, message", [
    ("arctan", ValueError, "already records op 'atan'"),
    ("arctan2", ValueError, "of 1 argument"),
    ("dot", ValueError, "np.dot is not one"),
    ("modf", ValueError, "one result"),
    ("no_such_ufunc", ValueError, "is not one"),
    (np.sin, TypeError, "name of a numpy ufunc"),
    (["sin"], TypeError, "tuple of names"),
])
def test_bad_numpy_facets(numpy, error, message):
    with pytest.raises(error, match=message):
        tg.defop("my_facet", 1, lower=lambda x: x * 2.0, numpy=numpy)
    assert all(op.name != "my_facet" for op in UFUNCS.values())


def test_math_functions_on_a_traced_value_stay_tracing_errors():
    for fn in (math.sin, math.exp, float):
        with pytest.raises(tg.TracingError, match="tg.sin"):
            tg.grad(fn)(1.0)


def test_keyword_arguments_and_methods_of_ufuncs():
    def in_place(a, s):
        a += s  # a BoxArray: np.add(a, s, out=a), element by element into a
        a *= 2.0
        return a
    assert tg.grad(lambda a, s: in_place(a, s).sum(), argnums=(0, 1))(np.array([1.0, 2.0]), 3.0)[1] == 4.0
    assert tg.jit(lambda s: np.multiply.outer(s, np.array([1.0, 2.0])))(3.0).tolist() == [3.0, 6.0]
    with pytest.raises(TypeError, match=r"np.add records op 'add' .* not with out=.*a = a \+ x"):
        tg.grad(lambda s: (np.zeros(2).__iadd__(s)).sum())(1.0)
    with pytest.raises(TypeError, match=r"np.maximum records op 'maximum' .* not with the method .outer"):
        tg.grad(lambda s: np.maximum.outer(s, np.array([1.0])).sum())(1.0)
    with pytest.raises(ValueError, match="matmul: Input operand 0 does not have enough dimensions"):
        tg.grad(lambda s: np.matmul(s, s))(1.0)  # numpy's own error: matmul takes arrays
    with pytest.raises(TypeError, match=r"not with where="):
        tg.grad(lambda s: np.maximum(s, 0.0, where=True))(1.0)


def test_dot_sum_and_matmul_on_object_arrays_match_torch():
    W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    b = np.array([0.1, -0.2])

    def f(w, x):  # a layer written with numpy: w and x arrive as BoxArrays
        h = np.tanh(w @ x + b)
        z = np.maximum(np.dot(w, x), 0.0)
        return np.sum(h * z) + np.mean(np.arctan2(x, 1.0)) + np.linalg.norm(np.concatenate([x, h]))
    x = np.array([0.3, -0.8, 1.1])
    gw, gx = tg.grad(f, argnums=(0, 1))(W, x)
    tw, tx = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (W, x))
    th = torch.tanh(tw @ tx + torch.tensor(b))
    (torch.sum(th * torch.relu(tw @ tx)) + torch.mean(torch.atan2(tx, torch.ones(3, dtype=torch.float64)))
     + torch.linalg.norm(torch.cat([tx, th]))).backward()
    assert np.allclose(gw, tw.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert np.allclose(gx, tx.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert tg.jit(f)(W, x) == pytest.approx(f(W, x), rel=1e-14)


def test_what_object_arrays_give():
    def kinds(a):
        w = np.ones((2, 2))
        out = [a, a[:1], a.T, np.dot(w, a), w @ a, np.concatenate([a, a]), np.stack([a, a]), np.sin(a), a * 2.0,
               2.0 * a, -a, abs(a), a ** 2]
        assert all(type(o) is BoxArray for o in out), [type(o).__name__ for o in out]
        assert not isinstance(np.sum(a), np.ndarray) and not isinstance(a @ a, np.ndarray)
        return a.sum()
    tg.grad(kinds)(np.array([1.0, 2.0]))
    values = np.array([1.0, -2.0]) * tg.Value(1.0)  # a numpy array and a Value: a BoxArray of Values
    assert type(values) is BoxArray and [v.data for v in np.maximum(values, 0.0)] == [1.0, 0.0]
    assert (values < 0.0).dtype == bool and (values < 0.0).tolist() == [False, True]
    assert (np.array([0.0, 5.0]) > tg.Value(1.0)).tolist() == [False, True]
    leaves = np.array([tg.Value(1.0), tg.Value(-2.0)]).view(BoxArray)
    again = pickle.loads(pickle.dumps(leaves))
    assert type(again) is BoxArray and [v.data for v in again] == [1.0, -2.0]


def test_reductions_of_object_arrays_fold_the_ufunc_along_the_axis():
    W = np.array([[1.0, 5.0, 2.0], [4.0, -1.0, 6.0]])

    def f(a):
        return [np.max(a), np.min(a, axis=0), a.max(axis=1, keepdims=True), np.amax(a, axis=None, keepdims=True),
                np.prod(a), np.mean(a), a.sum(axis=0), np.min(a, initial=-5.0), np.max(a, axis=-1), np.sum(a[:0])]
    for ours, theirs in zip(tg.jit(f)(W), f(W)):
        assert np.shape(ours) == np.shape(theirs) and np.asarray(ours).tolist() == np.asarray(theirs).tolist()

    def softmax_cross_entropy(z, k):  # as written for numpy
        z = z - np.max(z)
        return np.log(np.sum(np.exp(z))) - z[k]
    z = np.array([1.0, 3.0, -2.0, 3.0])
    t = torch.tensor(z, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(t[None], torch.tensor([1]))
    loss.backward()
    value, grad = tg.value_and_grad(lambda z: softmax_cross_entropy(z, 1))(z)
    assert value == pytest.approx(loss.item(), rel=1e-15) and np.allclose(grad, t.grad.numpy(), rtol=1e-14)
    v = np.array([1.0, 2.0]) * tg.Value(2.0)
    top = np.max(v)
    top.backward()
    assert type(top) is tg.Value and top.data == 4.0 and [x.grad for x in v] == [0.0, 1.0]


def test_numpys_own_object_arrays_call_the_elements_methods():
    """np.array([x, y]) is a plain object array: numpy's loop calls each element's method of the
    ufunc's name (x.arctan(), x.arctan2(y)) and its operators; comparisons need bool(x)."""
    def f(x, y):
        a = np.array([x, y])
        return np.sum(np.arctan(a) + np.arctan2(a, 2.0) + np.fabs(a) + np.hypot(a, a) * a)
    tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.5, -1.5))
    t = torch.stack([tx, ty])
    torch.sum(torch.atan(t) + torch.atan2(t, torch.tensor(2.0, dtype=torch.float64)) + torch.abs(t)
              + torch.hypot(t, t) * t).backward()
    assert tg.grad(f, argnums=(0, 1))(0.5, -1.5) == pytest.approx((tx.grad.item(), ty.grad.item()), rel=1e-14)
    with pytest.raises(tg.TracingError):
        tg.grad(lambda x: np.maximum(np.array([x, x]), 0.0).sum())(1.0)
    assert tg.grad(lambda x: np.maximum(np.array([x, x]).view(BoxArray), 0.0).sum())(1.0) == 2.0


def test_vmap_and_the_trainer_take_numpy_functions():
    xs = np.linspace(-2.0, 2.0, 7)
    assert np.allclose(tg.vmap(tg.grad(lambda x: np.arctan2(x, 1.0) * np.exp(x)))(xs),
                       np.exp(xs) * (np.arctan(xs) + 1.0 / (1.0 + xs * xs)), rtol=1e-14)
    model = tg.nn.MLP(2, [4, 1], seed=0)
    trainer = tg.nn.Trainer(model, loss=lambda out, t: np.square(out - t) + np.maximum(out, 0.0) * 0.0)
    history = trainer.fit(np.eye(2), np.array([1.0, -1.0]), epochs=5, progress=False)
    reference = tg.nn.Trainer(tg.nn.MLP(2, [4, 1], seed=0), loss="mse")
    assert history["loss"] == pytest.approx(reference.fit(np.eye(2), np.array([1.0, -1.0]), epochs=5,
                                                          progress=False)["loss"], rel=1e-14)
