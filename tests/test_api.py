"""The user-facing API: the issue's example, pytrees, composition, caching and errors."""
import math
import operator
import runpy
import sys

import numpy as np
import pytest
import torch

import tracegrad as tg
from conftest import same_float


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2)


def torch_grad(fn, *values):
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    y = fn(*xs)
    return y.item(), [g.item() for g in torch.autograd.grad(y, xs)]


def f_torch(x, y):
    return torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2)


def test_grad_value_and_grad_jvp_agree_with_torch():
    value, (tdx, tdy) = torch_grad(f_torch, 1.0, 2.0)
    dx, dy = tg.grad(f, argnums=(0, 1))(1.0, 2.0)
    assert type(dx) is float and same_float(dx, tdx) and same_float(dy, tdy)
    v, (dx2, dy2) = tg.value_and_grad(f, argnums=(0, 1))(1.0, 2.0)
    assert (v, dx2, dy2) == (tg.jit(f)(1.0, 2.0), dx, dy) and same_float(v, value)
    y, t = tg.jvp(f, (1.0, 2.0), (1.0, 0.0))
    assert y == v and same_float(t, dx)
    assert tg.grad(f)(1.0, 2.0) == dx and tg.grad(f, argnums=1)(1.0, 2.0) == dy


def test_decorator_forms():
    @tg.grad
    def g(x, y):
        return x * x * y

    @tg.grad(argnums=1)
    def h(x, y):
        return x * x * y

    assert g(2.0, 3.0) == 12.0 and h(2.0, 3.0) == 4.0


def test_higher_order_composes():
    d2 = tg.grad(tg.grad(lambda x: tg.sin(x) * x ** 3))
    x = 1.3
    expected = -math.sin(x) * x ** 3 + 6 * x ** 2 * math.cos(x) + 6 * x * math.sin(x)
    assert same_float(d2(x), expected)
    d3 = tg.grad(tg.grad(tg.grad(lambda x: x ** 4)))
    assert d3(2.0) == 48.0


def test_jitted_function_inside_a_trace_is_replayed():
    inner = tg.jit(lambda x: x * x + 1.0)
    assert tg.grad(lambda x: inner(tg.sin(x)))(0.5) == pytest.approx(2 * math.sin(0.5) * math.cos(0.5))
    assert "mul" in str(tg.trace(lambda x: inner(x), 1.0))


def test_closure_over_outer_tracer_is_not_confused():
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x: the inner y must not see x's perturbation
    outer = tg.grad(lambda x: x * tg.grad(lambda y: x * y)(x))
    assert outer(3.0) == 6.0
    hvp_like = tg.grad(lambda x: tg.grad(lambda y: x * y * y)(1.0))
    assert hvp_like(5.0) == 2.0


def test_pytree_gradients_keep_structure():
    def loss(params, x):
        return tg.tanh(sum(w * xi for w, xi in zip(params["w"], x)) + params["b"]) ** 2
    params = {"w": [0.1, -0.2], "b": 0.0}
    g = tg.grad(loss)(params, [1.0, 2.0])
    assert set(g) == {"w", "b"} and len(g["w"]) == 2
    z = 0.1 - 0.4
    d = 2 * math.tanh(z) * (1 - math.tanh(z) ** 2)
    assert same_float(g["b"], d) and same_float(g["w"][0], d) and same_float(g["w"][1], 2 * d)
    gx = tg.grad(loss, argnums=1)(params, (1.0, 2.0))
    assert isinstance(gx, tuple) and same_float(gx[1], -0.2 * d)


def test_numpy_arrays_as_arguments_and_results():
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.array([0.5, -1.0])
    g = tg.grad(lambda w, x: tg.tanh(np.dot(w, x)).sum() if False else sum(tg.tanh(v) for v in w @ x))(w, x)
    assert isinstance(g, np.ndarray) and g.shape == (2, 2) and g.dtype == np.float64
    z = w @ x
    expected = np.outer(1 - np.tanh(z) ** 2, x)
    np.testing.assert_allclose(g, expected, rtol=1e-13)
    out = tg.jit(lambda w: w * 2.0)(w)
    assert isinstance(out, np.ndarray) and np.array_equal(out, w * 2)


def test_ints_and_numpy_scalars_are_numbers():
    assert tg.grad(lambda x: x * x)(3) == 6.0
    assert tg.grad(lambda x: x * x)(np.float64(3.0)) == 6.0
    assert tg.grad(lambda x, n: x ** 2 * n)(np.int64(2), 3) == 12.0


def test_graph_cache_per_structure():
    calls = []

    def g(x):
        calls.append(1)
        return sum(v * v for v in x) if isinstance(x, list) else x * x
    gg = tg.grad(g)
    assert gg(2.0) == 4.0 and gg(3.0) == 6.0 and len(calls) == 1
    assert gg([1.0, 2.0]) == [2.0, 4.0] and len(calls) == 2
    assert gg([3.0, 4.0]) == [6.0, 8.0] and len(calls) == 2


def test_strong_zero_in_branch_not_taken():
    g = tg.grad(lambda x: tg.where(x > 0, tg.sqrt(x), 0.0))
    assert g(0.0) == 0.0 and g(-1.0) == 0.0 and g(4.0) == 0.25
    # ...but ordinary arithmetic keeps IEEE rules: sqrt'(0) is inf
    assert tg.grad(tg.sqrt)(0.0) == math.inf
    assert math.isnan(tg.grad(lambda x: tg.sqrt(x) * 0.0)(0.0))
    # nested wheres and a second derivative
    h = tg.grad(tg.grad(lambda x: tg.where(x > 0, tg.where(x < 1, tg.log(x), x), 0.0)))
    assert h(0.0) == 0.0 and h(2.0) == 0.0 and same_float(h(0.5), -4.0)


def test_kinks_follow_pytorch():
    assert tg.grad(tg.relu)(0.0) == 0.0 and tg.grad(tg.abs)(0.0) == 0.0
    assert tg.grad(tg.maximum, argnums=(0, 1))(1.0, 1.0) == (0.5, 0.5)
    assert tg.grad(tg.minimum, argnums=(0, 1))(1.0, 1.0) == (0.5, 0.5)


def test_python_backend_source_is_readable_and_a_real_file():
    import inspect
    j = tg.jit(tg.grad(f), backend="python")
    src = j.source
    assert "def kernel(x0, x1):" in src and "return (" in src
    j(1.0, 2.0)
    from tracegrad import backends
    kernel = backends.compile(j.graph, "python")
    assert inspect.getsource(kernel).startswith("def kernel(x0, x1):")


def test_generated_source_never_contains_user_strings():
    def evil_name__import__os(x__system__, y):
        return x__system__ * y
    src = tg.jit(evil_name__import__os, backend="python").source
    assert "evil" not in src and "system" not in src


def test_interp_backend():
    assert tg.jit(f, backend="interp")(1.0, 2.0) == tg.jit(f, backend="python")(1.0, 2.0)


def test_vjp_returns_pullback():
    out, pull = tg.vjp(lambda x, y: [x * y, tg.sin(x)], 2.0, 3.0)
    assert out == [6.0, math.sin(2.0)]
    assert pull([1.0, 0.0]) == (3.0, 2.0)
    gx, gy = pull([0.0, 1.0])
    assert same_float(gx, math.cos(2.0)) and gy == 0.0


def test_jvp_with_pytrees():
    out, t = tg.jvp(lambda p: p["a"] * p["b"], ({"a": 2.0, "b": 3.0},), ({"a": 1.0, "b": 0.0},))
    assert (out, t) == (6.0, 3.0)


def test_example_script_runs():
    runpy.run_path("examples/quickstart.py", run_name="__main__")


# ---------------------------------------------------------------- one-shot calls trace afresh

SCALE = 2.0


def scaled_square(x):
    return SCALE * x * x


class Model:
    def __init__(self, w):
        self.w = w

    def __call__(self, x):
        return self.w * x * x

    __eq__ = object.__eq__  # and so no __hash__: an unhashable callable
    __hash__ = None

    def loss(self, x):
        return self.w * x * x


# one-shot uses at x = 3 of f = w * x * x, each giving f' (2 w x = 6 w) or f'' (2 w)
ONE_SHOT = {
    "jvp": (lambda f: tg.jvp(f, (3.0,), (1.0,)), lambda w: (9.0 * w, 6.0 * w)),
    "grad": (lambda f: tg.grad(f)(3.0), lambda w: 6.0 * w),
    "value_and_grad": (lambda f: tg.value_and_grad(f)(3.0), lambda w: (9.0 * w, 6.0 * w)),
    "vjp": (lambda f: tg.vjp(f, 3.0)[1](1.0), lambda w: (6.0 * w,)),
    "jacfwd": (lambda f: tg.jacfwd(f)(3.0), lambda w: 6.0 * w),
    "jacrev": (lambda f: tg.jacrev(f)(3.0), lambda w: 6.0 * w),
    "hessian": (lambda f: tg.hessian(f)(3.0), lambda w: 2.0 * w),
    "hvp": (lambda f: tg.hvp(f)((3.0,), (1.0,)), lambda w: (2.0 * w,)),
    "jvp of grad": (lambda f: tg.jvp(tg.grad(f), (3.0,), (1.0,)), lambda w: (6.0 * w, 2.0 * w)),
    "jit": (lambda f: tg.jit(f)(3.0), lambda w: 9.0 * w),
    "vmap": (lambda f: tg.vmap(f)(np.array([3.0])).tolist(), lambda w: [9.0 * w]),
}


@pytest.mark.parametrize("name", ONE_SHOT)
def test_one_shot_calls_see_changed_globals_and_attributes(name, monkeypatch):
    use, expected = ONE_SHOT[name]
    assert use(scaled_square) == expected(2.0)
    monkeypatch.setattr(sys.modules[__name__], "SCALE", 5.0)
    assert use(scaled_square) == expected(5.0)
    model = Model(2.0)
    assert use(model.loss) == expected(2.0) and use(model) == expected(2.0)  # unhashable: no TypeError
    model.w = 7.0
    assert use(model.loss) == expected(7.0) and use(model) == expected(7.0)


# ---------------------------------------------------------------- numpy arrays with traced values

ARRAY_OPERATORS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]
COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]
W = np.array([0.5, 2.0, 3.0])


@pytest.mark.parametrize("op", ARRAY_OPERATORS, ids=lambda op: op.__name__)
@pytest.mark.parametrize("array_first", [True, False])
def test_numpy_array_and_tracer_combine_elementwise(op, array_first):
    def f(s):
        return (op(W, s) if array_first else op(s, W)).sum()
    t = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    expected = (op(torch.tensor(W), t) if array_first else op(t, torch.tensor(W))).sum()
    (d,) = torch.autograd.grad(expected, t)
    assert tg.value_and_grad(f)(1.5) == pytest.approx((expected.item(), d.item()), rel=1e-14)
    both = tg.jit(lambda s: op(W, s) if array_first else op(s, W))(1.5)
    assert both.dtype == float and both.tolist() == pytest.approx((op(W, 1.5) if array_first else op(1.5, W)).tolist())


@pytest.mark.parametrize("op", COMPARISONS, ids=lambda op: op.__name__)
def test_numpy_array_and_tracer_compare_elementwise(op):
    assert tg.jit(lambda s: op(W, s))(2.0).tolist() == op(W, 2.0).astype(float).tolist()
    assert tg.jit(lambda s: op(s, W))(2.0).tolist() == op(2.0, W).astype(float).tolist()
    assert tg.grad(lambda s: tg.where(op(W, s), W * s, s).sum())(2.0) == sum(np.where(op(W, 2.0), W, 1.0))


def test_numpy_scalars_with_tracers_stay_numbers():
    assert tg.grad(lambda s: np.float64(2.0) * s * np.int64(3) - np.array(1.0) * s)(1.0) == 5.0
