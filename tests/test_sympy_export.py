"""sympy export: names, shapes, the cse form, no expression swell, agreement with interp."""
import math

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings, strategies as st

import tracegrad as tg
from tracegrad.backends import sympy as sympy_backend
from tracegrad.ir import evaluate
from programs import CONSTANTS, programs
from test_passes import rosenbrock

x, y = sp.symbols("x y", real=True)


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)


def test_export_function_and_gradient_match_sympy_by_hand():
    expr = tg.export_sympy(f)
    by_hand = sp.tanh(x * y + sp.sin(x)) * sp.exp(-y * y / 2) + sp.log(1 + x * x)
    assert sp.simplify(expr - by_hand) == 0
    grad = tg.export_sympy(tg.grad(f, argnums=(0, 1)))
    assert isinstance(grad, sp.Matrix) and grad.shape == (2, 1)
    for g, s in zip(grad, (x, y)):
        assert sp.simplify(g - sp.diff(by_hand, s)) == 0


def test_cse_form_matches_sympy_cse_shape():
    repl, exprs = tg.export_sympy(tg.grad(f, argnums=(0, 1)), cse=True)
    assert len(exprs) == 2 and all(isinstance(s, sp.Symbol) for s, _ in repl)
    full = [e.subs(list(reversed(repl))) for e in exprs]
    point = {x: 0.3, y: 0.7}
    expected = tg.grad(f, argnums=(0, 1))(0.3, 0.7)
    assert [float(e.evalf(subs=point)) for e in full] == pytest.approx(expected, rel=1e-13)


def test_pytree_leaves_are_named_like_the_graph():
    expr = tg.export_sympy(lambda params, b: params["w"][0] * b + params["w"][1], {"w": [1.0, 2.0]}, 3.0)
    assert {s.name for s in expr.free_symbols} == {"w_0", "w_1", "b"}


def test_example_arguments_choose_the_structure():
    expr = tg.export_sympy(lambda xs: xs[0] * xs[1], [1.0, 2.0])
    assert str(expr) == "xs_0*xs_1"


def test_several_outputs_give_a_matrix_one_gives_an_expression():
    assert isinstance(tg.export_sympy(lambda x: [x, tg.sin(x)]), sp.Matrix)
    assert tg.export_sympy(lambda x: tg.sin(x)) == sp.sin(sp.Symbol("x", real=True))


def test_no_expression_swell_for_gradients():
    n = 30
    graph = tg.trace(tg.grad(rosenbrock, argnums=tuple(range(n))), *[0.0] * n)
    repl, exprs = tg.export_sympy(tg.grad(rosenbrock, argnums=tuple(range(n))), *[0.0] * n, cse=True)
    ops = sum(sp.count_ops(e) for _, e in repl) + sum(sp.count_ops(e) for e in exprs)
    assert ops <= 2 * len(graph.nodes)


def test_export_rejects_non_functions():
    with pytest.raises(TypeError, match="export_sympy takes a function"):
        tg.export_sympy(3.0)


def test_nan_into_max_is_a_clear_error():
    with pytest.raises(ValueError, match="sympy cannot express maximum"):
        tg.export_sympy(lambda x: tg.maximum(x, math.nan))


def test_constants_keep_every_bit():
    c = 0.12345678901234568
    kernel = sympy_backend.compile(tg.trace(lambda x: x * c + 1e-300, 0.0))
    assert kernel(1.0) == [1.0 * c + 1e-300]


@pytest.mark.parametrize("fn, x", [
    (lambda x: tg.log(x), -1.0), (lambda x: tg.sqrt(x), -1.0), (lambda x: tg.exp(x), 1000.0),
    (lambda x: 1.0 / x, 0.0), (lambda x: tg.log(x), 0.0), (lambda x: tg.where(x > 0.0, x, -x), math.nan),
])
def test_nan_and_inf_agree_where_sympy_semantics_match(fn, x):
    graph = tg.trace(fn, 0.0)
    got, expected = sympy_backend.compile(graph)(x)[0], evaluate(graph, [x])[0]
    assert got == expected or (math.isnan(got) and math.isnan(expected))


# sympy folds x - x to 0, x / x to 1 and x / 0 to zoo, and has no signed zero, so results
# are compared where both are finite, with no zero constants; nan cannot enter sympy's
# Max / Min / comparisons, so no nan constants either.
FINITE_CONSTANTS = [c for c in CONSTANTS if math.isfinite(c) and c != 0.0]


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(graph=programs(ops=(1, 8), constants=st.sampled_from(FINITE_CONSTANTS)), data=st.data())
def test_lambdified_sympy_agrees_with_interp(graph, data):
    kernel = sympy_backend.compile(graph)
    for _ in range(3):
        xs = [data.draw(st.floats(-3, 3)) for _ in graph.inputs]
        env = tg.ir.evaluate_nodes(graph, xs)
        scale = max([1.0] + [abs(v) for v in env if math.isfinite(v)])
        for got, expected in zip(kernel(*xs), evaluate(graph, xs)):
            if math.isfinite(expected) and math.isfinite(got):
                assert abs(got - expected) <= 1e-12 * scale, (graph, xs)


def test_sympy_is_a_jit_backend_that_agrees_with_the_others():
    from functions import CORPUS
    for name, f, args in CORPUS:
        n = len(args)
        ours = tg.jit(tg.grad(f, argnums=tuple(range(n))), backend="sympy")(*args)
        reference = tg.jit(tg.grad(f, argnums=tuple(range(n))), backend="interp")(*args)
        for a, b in zip(ours, reference):
            assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), (name, a, b)
    assert tg.jit(tg.grad(tg.sin), backend="sympy").source == "cos(x)"


# names that are sympy's or numpy's own (functions, constants, modules), keywords, generated
# names, and keys that are one identifier after NFKC normalisation
HOSTILE_NAMES = ["exp", "nan", "E", "I", "pi", "S", "N", "O", "oo", "zoo", "sin", "Abs", "Max", "Piecewise",
                 "numpy", "builtins", "lambda", "if", "x0", "x1", "fi", "ﬁ", "θ", "_Dummy_1", "sympy"]


def _hostile(d):
    total = tg.exp(d["exp"]) + d["nan"] * 2.0
    for k, name in enumerate(HOSTILE_NAMES):
        total = total + (k + 1.0) * tg.sin(d[name])
    return [total, d["nan"] + math.nan, d["ﬁ"] - d["fi"], tg.maximum(d["Max"], d["pi"])]


@pytest.mark.parametrize("backend", ["sympy", "interp"])
def test_parameter_names_never_collide_in_the_sympy_backend(backend):
    point = {name: 0.1 * (k + 1) for k, name in enumerate(HOSTILE_NAMES)}
    expected = [math.exp(point["exp"]) + point["nan"] * 2.0 +
                sum((k + 1.0) * math.sin(point[n]) for k, n in enumerate(HOSTILE_NAMES)),
                math.nan, point["ﬁ"] - point["fi"], max(point["Max"], point["pi"])]
    got = tg.jit(_hostile, backend=backend)(point)
    assert got[0] == pytest.approx(expected[0], rel=1e-14) and math.isnan(got[1]) and got[2:] == expected[2:]
    assert tg.jit(lambda exp: tg.exp(exp), backend=backend)(1.0) == pytest.approx(math.e, rel=1e-15)
    assert math.isnan(tg.jit(lambda nan: nan + math.nan, backend=backend)(1.0))
    grads = tg.grad(lambda d: _hostile(d)[0], backend=backend)(point)
    assert grads["exp"] == pytest.approx(math.exp(point["exp"]) + 1.0 * math.cos(point["exp"]), rel=1e-14)


def test_exported_symbols_are_distinct_and_named_after_the_parameters():
    point = {name: 1.0 for name in HOSTILE_NAMES}
    exprs = tg.export_sympy(_hostile, point)
    symbols = sorted(exprs.free_symbols, key=str)
    assert len(symbols) == len(HOSTILE_NAMES) and len({s.name for s in symbols}) == len(symbols)
    assert {s.name for s in symbols} >= {"exp", "nan", "E", "sin", "fi", "fi_1", "θ"}
    assert sp.nan in exprs[1].atoms() or exprs[1] is sp.nan  # nan the constant, not the symbol
    assert exprs[2] == sp.Symbol("fi_1", real=True) - sp.Symbol("fi", real=True)
    exp = sp.Symbol("exp", real=True)
    assert tg.export_sympy(lambda exp: tg.exp(exp)) == sp.exp(exp)


def test_math_functions_export_as_sympy_functions():
    expr = tg.export_sympy(lambda x, y: tg.atan2(x, y) + tg.erf(x) * tg.acosh(y) + tg.floor(x) + tg.hypot(x, y))
    assert sp.simplify(expr - (sp.atan2(x, y) + sp.erf(x) * sp.acosh(y) + sp.floor(x) + sp.codegen.cfunctions.hypot(x, y))) == 0
    kernel = sympy_backend.compile(tg.trace(lambda x, y: tg.fmod(x, y) + tg.log2(y) + tg.cbrt(x), 0.0, 0.0))
    assert kernel(-7.5, 2.0)[0] == pytest.approx(math.fmod(-7.5, 2.0) + 1.0 - 7.5 ** (1 / 3), rel=1e-15)


def test_user_ops_export_through_their_sympy_form_their_lowering_or_a_named_function():
    import ctypes
    softsign = tg.defop("softsign_export", 1, eval=lambda x: x / (1 + abs(x)), lower=lambda x: x / (1 + tg.abs(x)))
    assert tg.export_sympy(lambda x: softsign(x)) == x / (sp.Abs(x) + 1)
    libm = tg.ops.libm()["j0"]
    bessel = tg.defop("bessel_j0", 1, address=ctypes.cast(libm, ctypes.c_void_p).value)
    expr = tg.export_sympy(lambda x: bessel(x) * 2)
    ident = tg.ops.TABLE["bessel_j0"].ident
    assert str(expr) == f"2*{ident}(x)" and "bessel" not in str(expr)  # named by its ident, no user string
    graph = tg.trace(lambda x: bessel(x) * 2 + softsign(x), 0.0)
    assert sympy_backend.compile(graph)(0.5) == pytest.approx(evaluate(graph, [0.5]), rel=1e-15)
