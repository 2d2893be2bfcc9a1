"""User-defined primitives (``tg.defop``): the issue's example, a C function given by its address,
and a Python ctypes callback pass the op-table tests (value, gradient, Hessian against PyTorch) in
every backend, in eager Values, in SIMD lanes, in the Trainer, in drawings and in JSON; bad
definitions are clear errors."""
import ctypes
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import tracegrad as tg
from op_table import EDGE
from test_ops import as_points, everything, mismatches, torch_derivatives
from tracegrad import backends
from tracegrad.ops import TABLE, libm, native
from tracegrad.transforms.lower import lower
from tracegrad.vmap import LANE_ROWS

# exactly as in the issue
erf = tg.defop("my_erf", 1, eval=math.erf, symbol="erf",     # a user's own name; "erf" is built in
               vjp=lambda g, out, x: (g * (2 / math.sqrt(math.pi)) * tg.exp(-x * x),),
               sympy=lambda sp, x: sp.erf(x))
softsign = tg.defop("softsign", 1, eval=lambda x: x / (1 + abs(x)),
                    lower=lambda x: x / (1 + tg.abs(x)),          # compiled as a composition
                    vjp=lambda g, out, x: (g / (1 + tg.abs(x)) ** 2,))

# a C function by its address (libm's log1p), and a Python function behind a ctypes callback
_LOG1P = libm()["log1p"]
c_log1p = tg.defop("c_log1p", 1, address=ctypes.cast(_LOG1P, ctypes.c_void_p).value,
                   vjp=lambda g, out, x: (tg.ops.div(g, x + 1.0),))
_CUBE = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(lambda x: x * x * x)  # kept alive here
cube = tg.defop("cube", 1, address=ctypes.cast(_CUBE, ctypes.c_void_p).value,
                vjp=lambda g, out, x: (g * (3.0 * (x * x)),))

MODERATE = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -3.7, 30.0, -30.0, math.nan]
USER_OPS = [  # name, tracegrad function, torch function, points
    ("my_erf", erf, torch.erf, EDGE),
    # torch differentiates the composition x / (1 + |x|): at ±inf and 1e300 its derivative is nan or
    # loses every digit, where the row's rule 1 / (1 + |x|)**2 gives 0
    ("softsign", softsign, lambda x: x / (1 + x.abs()), MODERATE),
    ("c_log1p", c_log1p, torch.log1p, EDGE + [-0.999, -1.0 + 1e-12]),
    ("cube", cube, lambda x: x ** 3, MODERATE + [1e100, -1e-300, math.inf]),
    ("composed", lambda x, y: erf(x) * softsign(y) + cube(c_log1p(x * y)),
     lambda x, y: torch.erf(x) * (y / (1 + y.abs())) + torch.log1p(x * y) ** 3,
     [(0.3, 0.7), (-1.2, 2.0), (0.0, -0.5), (2.0, 0.25)]),
]
IDS = [row[0] for row in USER_OPS]


@pytest.mark.parametrize("backend", backends.NAMES)
@pytest.mark.parametrize("name, fn, torch_fn, points", USER_OPS, ids=IDS)
def test_user_ops_against_torch_in_every_backend(name, fn, torch_fn, points, backend):
    points = as_points(points)
    compiled = tg.jit(everything(fn, len(points[0])), backend=backend)
    bad = []
    for p in points:
        bad += mismatches(name, compiled(*p), torch_derivatives(torch_fn, p), p)
    assert not bad, "\n".join(bad[:20]) + f"\n({len(bad)} mismatches)"


def test_the_issues_example():
    for backend in backends.NAMES:
        got = tg.jit(tg.grad(lambda x: erf(x) * x), backend=backend)(0.3)
        assert got == pytest.approx(math.erf(0.3) + 0.3 * 2 / math.sqrt(math.pi) * math.exp(-0.09), rel=1e-14)
    x = tg.Value(0.3)
    y = erf(x) * x
    y.backward()
    assert x.grad == pytest.approx(math.erf(0.3) + 0.3 * 2 / math.sqrt(math.pi) * math.exp(-0.09), rel=1e-14)
    assert isinstance(y, tg.Value) and y.op == "mul" and y._a.op == "my_erf"


@pytest.mark.parametrize("name, fn, torch_fn, points", USER_OPS, ids=IDS)
def test_user_ops_in_eager_values_against_torch(name, fn, torch_fn, points):
    bad = []
    for p in as_points(points):
        xs = [tg.Value(v) for v in p]
        y = fn(*xs)
        y.backward()
        bad += mismatches(name, (y.data, [x.grad for x in xs], []), torch_derivatives(torch_fn, p), p)
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("name, fn, torch_fn, points", USER_OPS, ids=IDS)
def test_user_ops_in_simd_lanes_against_torch(name, fn, torch_fn, points):
    points = as_points(points)
    n = len(points[0])
    batch = [points[k % len(points)] for k in range(LANE_ROWS + 5)]
    value, gradient, hessian = tg.vmap(everything(fn, n))(*[np.array([p[j] for p in batch]) for j in range(n)])
    bad = []
    for k, p in enumerate(batch):
        row = value[k], [g[k] for g in gradient], [[h[k] for h in hrow] for hrow in hessian]
        bad += mismatches(name, row, torch_derivatives(torch_fn, p), p)
    assert not bad, "\n".join(bad[:20])


def test_user_op_as_the_activation_of_a_model_trained_by_the_trainer():
    class SoftsignNet(tg.nn.Module):
        def __init__(self, seed):
            rng = random.Random(seed)
            self.hidden = tg.nn.Layer(2, 6, activation="linear", rng=rng)
            self.out = tg.nn.Layer(6, 1, activation="linear", rng=rng)

        def __call__(self, x):
            return self.out([softsign(h) for h in self.hidden(x)])

        def parameters(self):
            return self.hidden.parameters() + self.out.parameters()

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = np.sin(X[:, 0]) - X[:, 1]
    model, twin = SoftsignNet(1), SoftsignNet(1)
    history = tg.nn.Trainer(model, loss="mse", optimizer=tg.nn.SGD(lr=0.1)).fit(X, y, epochs=5, progress=False)
    eager = []
    for _ in range(5):  # the same full-batch SGD steps, eagerly
        total = sum((twin(list(map(tg.Value, row))) - t) ** 2 for row, t in zip(X, y)) * (1.0 / len(X))
        twin.zero_grad()
        total.backward()
        for p in twin.parameters():
            p.data -= 0.1 * p.grad
        eager.append(total.data)
    np.testing.assert_allclose(history["loss"], eager, rtol=1e-12)
    np.testing.assert_allclose([p.data for p in model.parameters()], [p.data for p in twin.parameters()], rtol=1e-12)
    assert history["loss"][-1] < history["loss"][0]
    np.testing.assert_allclose(model.predict(X), [model(list(row)).data for row in X], rtol=1e-12)


def test_drawing_shows_the_user_op():
    pytest.importorskip("graphviz")
    x = tg.Value(0.5, label="x")
    y = softsign(erf(x))
    y.backward()
    assert "my_erf" in tg.draw(y).source and "softsign" in tg.draw(y).source
    assert "cube" in tg.draw(tg.trace(lambda x: cube(x) + 1.0, 0.0)).source


def test_json_round_trip_and_a_fresh_process_without_the_definition(tmp_path):
    graph = tg.trace(tg.grad(lambda x, y: erf(x) * softsign(y) + cube(x)), 0.3, 0.7)
    again = tg.Graph.from_json(graph.to_json())
    assert again == graph and again.fingerprint == graph.fingerprint
    for backend in backends.NAMES:
        want = tg.ir.evaluate(graph, [0.3, 0.7])
        assert backends.compile(again, backend)(0.3, 0.7) == pytest.approx(want, rel=1e-14)
    path = tmp_path / "graph.json"
    path.write_text(graph.to_json())
    probe = ("import sys, tracegrad as tg\ntry:\n    tg.Graph.from_json(open(sys.argv[1]).read())\n"
             "except ValueError as e:\n    print('ValueError:', e)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True).stdout
    assert "ValueError: node" in out and "not defined in this process: define it with tg.defop" in out


def test_redefining_a_user_op_never_reuses_code_compiled_for_the_old_one():
    for k in (2.0, 3.0, 2.0):
        scaled = tg.defop("scaled", 1, lower=lambda x, k=k: x * k, vjp=lambda g, out, x, k=k: (g * k,))
        for backend in backends.NAMES:
            assert tg.jit(lambda x: scaled(x) + 1.0, backend=backend)(1.0) == k + 1.0, (backend, k)
            assert tg.grad(lambda x: scaled(x) * x, backend=backend)(1.0) == 2.0 * k, (backend, k)


def test_generated_code_holds_no_user_string():
    evil = tg.defop("evil_name", 1, lower=lambda x: x * 2.0, vjp=lambda g, out, x: (g * 2.0,))
    addressed = tg.defop("evil_c", 1, address=ctypes.cast(_CUBE, ctypes.c_void_p).value)
    for backend in ("python", "numba", "llvm"):
        function = tg.jit(lambda x: evil(x) + addressed(x), backend=backend)
        assert function(2.0) == 12.0
        assert "evil" not in function.source
    assert TABLE["evil_name"].ident.startswith("op_") and TABLE["my_erf"].ident != "my_erf"
    assert TABLE["exp"].ident == "exp" and TABLE["exp"].builtin and not TABLE["evil_name"].builtin


def test_native_ops_are_kept_and_others_lowered():
    assert native(TABLE["erf"]) and native(TABLE["my_erf"]) and native(TABLE["cube"]) and native(TABLE["add"])
    assert not native(TABLE["softsign"]) and not native(TABLE["relu"]) and not native(TABLE["powc"])
    graph = lower(tg.trace(lambda x: softsign(tg.relu(x)) + erf(x) + cube(x), 1.0))
    assert set(graph.stats()) == {"input", "const", "lt", "where", "abs", "add", "div", "my_erf", "cube"}


def test_differentiating_an_op_without_a_derivative_rule_says_what_to_do():
    forward = tg.defop("forward_only", 1, eval=math.atan, symbol="atan")
    assert forward(1.0) == math.atan(1.0) and tg.jit(forward, backend="llvm")(1.0) == math.atan(1.0)
    with pytest.raises(ValueError, match="no derivative rule.*vjp="):
        tg.grad(forward)(1.0)
    with pytest.raises(ValueError, match="no derivative rule"):
        v = tg.Value(1.0)
        forward(v).backward()


def test_default_evaluations():
    by_symbol = tg.defop("c_expm1", 1, symbol="expm1")
    assert by_symbol(1e-10) == math.expm1(1e-10) and by_symbol(1000.0) == math.inf  # C's: never raises
    composed = tg.defop("composed_only", 2, lower=lambda x, y: x * y + 1.0)
    assert composed(2.0, 3.0) == 7.0 and math.isnan(composed(math.inf, 0.0))


@pytest.mark.parametrize("call, error, message", [
    (lambda: tg.defop("exp", 1, lower=lambda x: x), ValueError, "tracegrad's own ops"),
    (lambda: tg.defop("not a name", 1, lower=lambda x: x), ValueError, "identifier"),
    (lambda: tg.defop("const", 1, lower=lambda x: x), ValueError, "identifier"),
    (lambda: tg.defop(7, 1, lower=lambda x: x), ValueError, "identifier"),
    (lambda: tg.defop("f", 0, lower=lambda: 1.0), ValueError, "arity"),
    (lambda: tg.defop("f", 4, lower=lambda *a: 1.0), ValueError, "arity"),
    (lambda: tg.defop("f", True, lower=lambda x: x), ValueError, "arity"),
    (lambda: tg.defop("f", 1, eval=3.0, lower=lambda x: x), TypeError, "eval of op 'f' must be a function"),
    (lambda: tg.defop("f", 1, vjp="g", lower=lambda x: x), TypeError, "vjp"),
    (lambda: tg.defop("f", 1, eval=abs), ValueError, "exactly one way.*got none"),
    (lambda: tg.defop("f", 1, symbol="erf", lower=lambda x: x), ValueError, "exactly one way.*symbol, lower"),
    (lambda: tg.defop("f", 1, symbol="erf", address=1234), ValueError, "exactly one way"),
    (lambda: tg.defop("f", 1, symbol="no_such_function"), ValueError, "not a function of the C math library"),
    (lambda: tg.defop("f", 1, symbol="erf(x); system"), ValueError, "name of a C function"),
    (lambda: tg.defop("f", 1, address="0x1234"), TypeError, "positive int"),
    (lambda: tg.defop("f", 1, address=-5), TypeError, "positive int"),
    (lambda: tg.defop("f", 1, infix="+"), ValueError, "infix of op 'f' must be"),
    (lambda: tg.defop("f", 2, compare="<>"), ValueError, "compare"),
    (lambda: tg.defop("f", 1, symbol="erf", has_param=True), ValueError, "parameter"),
    (lambda: tg.defop("f", 1, lower=lambda x: x, commutative=True), ValueError, "binary"),
])
def test_bad_definitions_are_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
    assert "f" not in TABLE


def test_an_op_with_a_constant_parameter():
    scale = tg.defop("scale_by", 1, lower=lambda x, p: x * p, has_param=True, vjp=lambda g, out, x, p: (g * p,))
    f = lambda x: scale(tg.sin(x), param=3.0) * x  # noqa: E731
    want = 3.0 * math.sin(0.5) * 0.5, 3.0 * (math.cos(0.5) * 0.5 + math.sin(0.5))
    for backend in backends.NAMES:
        assert tg.jit(f, backend=backend)(0.5) == pytest.approx(want[0], rel=1e-15), backend
        assert tg.grad(f, backend=backend)(0.5) == pytest.approx(want[1], rel=1e-15), backend
    x = tg.Value(0.5)
    y = f(x)
    y.backward()
    assert (y.data, x.grad) == pytest.approx(want, rel=1e-15)
    graph = tg.trace(f, 0.0)
    assert "scale_by[3.0]" in str(graph) and tg.Graph.from_json(graph.to_json()) == graph
