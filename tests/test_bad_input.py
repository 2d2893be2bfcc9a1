"""Bad input at every public entry point: a documented exception whose message says what to do,
raised before anything is compiled. docs/robustness.md has this table in prose."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad import backends


def f(x, y):
    return x * y


def square(x):
    return x * x


MLP = tg.nn.MLP(2, [2, 1], seed=0)
_, PULLBACK = tg.vjp(f, 1.0, 2.0)  # computing the value compiles; the bad cotangent must not

# name, call, exception, a fragment of the message (what was wrong / what to do)
CASES = [
    # wrong arity: named function and parameters, before tracing
    ("grad too few", lambda: tg.grad(f)(1.0), TypeError, "f(x, y) was called with 1 argument"),
    ("grad too many", lambda: tg.grad(f)(1.0, 2.0, 3.0), TypeError, "too many positional"),
    ("jit too few", lambda: tg.jit(f)(1.0), TypeError, "f(x, y)"),
    ("vmap too few", lambda: tg.vmap(f)(np.zeros(2)), TypeError, "f(x, y)"),
    ("jvp too few", lambda: tg.jvp(f, (1.0,), (1.0,)), TypeError, "f(x, y)"),
    ("vjp too few", lambda: tg.vjp(f, 1.0), TypeError, "f(x, y)"),
    ("jacobian too few", lambda: tg.jacobian(f)(1.0), TypeError, "f(x, y)"),
    ("hessian too few", lambda: tg.hessian(f)(1.0), TypeError, "f(x, y)"),
    ("hvp too few", lambda: tg.hvp(f)((1.0,), (1.0,)), TypeError, "f(x, y)"),
    ("check_grads too few", lambda: tg.check_grads(f, (1.0,)), TypeError, "f(x, y)"),
    ("export_sympy too few", lambda: tg.export_sympy(f, 1.0), TypeError, "f(x, y)"),
    ("export_sympy *args", lambda: tg.export_sympy(lambda *a: a[0]), TypeError, "needs example arguments"),
    ("trace too few", lambda: tg.trace(f, 1.0), TypeError, "f(x, y)"),
    ("grad of grad too few", lambda: tg.grad(tg.grad(f))(1.0), TypeError, "f(x, y)"),
    # not a function
    ("grad of a number", lambda: tg.grad(3), TypeError, "grad takes a function"),
    ("jit of a number", lambda: tg.jit(3), TypeError, "jit takes a function"),
    ("vmap of a number", lambda: tg.vmap(3), TypeError, "vmap takes a function"),
    ("jvp of a number", lambda: tg.jvp(3, (1.0,), (1.0,)), TypeError, "jvp takes a function"),
    ("vjp of a number", lambda: tg.vjp(3, 1.0), TypeError, "vjp takes a function"),
    ("jacobian of a number", lambda: tg.jacobian(3), TypeError, "jacrev takes a function"),
    ("hessian of a number", lambda: tg.hessian(3), TypeError, "hessian takes a function"),
    ("hvp of a number", lambda: tg.hvp(3), TypeError, "hvp takes a function"),
    ("custom_vjp of a number", lambda: tg.custom_vjp(3), TypeError, "custom_vjp takes a function"),
    ("custom_jvp of a number", lambda: tg.custom_jvp(3), TypeError, "custom_jvp takes a function"),
    ("defvjp of a number", lambda: tg.custom_vjp(square).defvjp(3), TypeError, "defvjp takes a function"),
    ("export_sympy of a number", lambda: tg.export_sympy(3), TypeError, "export_sympy takes a function"),
    ("trace of a number", lambda: tg.trace(3), TypeError, "trace takes a function"),
    # non-numeric arguments
    ("grad of a string", lambda: tg.grad(square)("a"), TypeError, "convert it to float"),
    ("grad of None", lambda: tg.grad(square)(None), TypeError, "convert it to float"),
    ("grad of a complex", lambda: tg.grad(square)(1j), TypeError, "convert it to float"),
    ("jit of an object", lambda: tg.jit(square)(object()), TypeError, "convert it to float"),
    ("grad of a set", lambda: tg.grad(lambda s: 1.0)({1.0}), TypeError, "convert it to float"),
    ("jvp of a string", lambda: tg.jvp(f, (1.0, "a"), (1.0, 1.0)), TypeError, "convert it to float"),
    ("check_grads of a string", lambda: tg.check_grads(f, (1.0, "a")), TypeError, "convert it to float"),
    ("vmap of a string", lambda: tg.vmap(square)("abc"), TypeError, "arrays of real numbers"),
    ("Value of a string", lambda: tg.Value("a"), TypeError, "pass a float"),
    ("Value of a list", lambda: tg.Value([1.0]), TypeError, "pass a float"),
    ("Value plus a string", lambda: tg.Value(1.0) + "a", TypeError, "pass a float"),
    # arrays of the wrong dtype
    ("array of strings", lambda: tg.grad(lambda x: x[0])(np.array(["a"])), TypeError, "dtype=float"),
    ("array of complex", lambda: tg.jit(lambda x: x[0])(np.array([1j])), TypeError, "dtype=float"),
    ("vmap of complex", lambda: tg.vmap(square)(np.array([1 + 2j, 3j])), TypeError, "dtype=float"),
    ("vmap of numeric strings", lambda: tg.vmap(square)(np.array(["1.5", "2"])), TypeError, "dtype=float"),
    ("vmap of a nested complex", lambda: tg.vmap(lambda t: t[1]["k"][0])([[], {"k": np.array([1j])}]),
     TypeError, "dtype=float"),
    ("vmap over a scalar", lambda: tg.vmap(square)(1.0), TypeError, "it is a scalar"),
    # results that are not floats
    ("function returns None", lambda: tg.jit(lambda x: None)(1.0), TypeError, "convert it to float"),
    ("function returns a string", lambda: tg.grad(lambda x: "s")(1.0), TypeError, "convert it to float"),
    ("grad of a vector output", lambda: tg.grad(lambda x: [x, x])(1.0), TypeError, "use tg.vjp"),
    # argnums
    ("argnums out of range", lambda: tg.grad(f, argnums=2)(1.0, 2.0), ValueError, "out of range"),
    ("argnums negative out of range", lambda: tg.grad(f, argnums=-3)(1.0, 2.0), ValueError, "out of range"),
    ("argnums a string", lambda: tg.grad(f, argnums="x")(1.0, 2.0), TypeError, "argnums must be"),
    ("argnums empty", lambda: tg.grad(f, argnums=())(1.0, 2.0), TypeError, "non-empty tuple"),
    ("argnums a bool", lambda: tg.grad(f, argnums=True)(1.0, 2.0), TypeError, "argnums must be"),
    ("jacobian argnums", lambda: tg.jacobian(f, argnums=5)(1.0, 2.0), ValueError, "out of range"),
    # mismatched structures
    ("jvp tangents", lambda: tg.jvp(f, (1.0, 2.0), (1.0,)), ValueError, "structure of the primals"),
    ("jvp not tuples", lambda: tg.jvp(f, 1.0, 1.0), TypeError, "as tuples"),
    ("jvp tangent a list for a float", lambda: tg.jvp(square, (1.0,), ([1.0],)), ValueError, "structure"),
    ("vjp cotangent", lambda: PULLBACK([1.0, 2.0]), ValueError, "structure of the primals"),
    ("hvp tangents", lambda: tg.hvp(f)((1.0, 2.0), (1.0,)), ValueError, "structure of the primals"),
    ("hvp not tuples", lambda: tg.hvp(f)(1.0, 1.0), TypeError, "as tuples"),
    ("vmap rows differ", lambda: tg.vmap(f)(np.zeros(3), np.zeros(4)), ValueError, "same length"),
    ("vmap in_axes", lambda: tg.vmap(f, in_axes=(0, 1))(np.zeros(3), np.zeros(3)), ValueError, "in_axes"),
    # empty inputs
    ("vmap of empty arrays", lambda: tg.vmap(square)(np.zeros(0)), ValueError, "at least one row"),
    ("vmap with nothing mapped", lambda: tg.vmap(square, in_axes=None)(1.0), ValueError, "in_axes=0"),
    ("mse of nothing", lambda: tg.nn.mse_loss([], []), ValueError, "at least one"),
    ("loss lengths", lambda: tg.nn.hinge_loss([1.0], [1.0, -1.0]), ValueError, "as many targets"),
    # options
    ("unknown backend", lambda: tg.jit(f, backend="gcc"), ValueError, "choose one of"),
    ("check_grads order", lambda: tg.check_grads(f, (1.0, 2.0), order=3), ValueError, "order must be"),
    ("check_grads modes", lambda: tg.check_grads(f, (1.0, 2.0), modes=("x",)), ValueError, "modes"),
    ("check_grads not a tuple", lambda: tg.check_grads(f, 1.0), TypeError, "as a tuple"),
    ("draw a number", lambda: tg.draw(3), TypeError, "Value or a tracegrad Graph"),
    ("draw rankdir", lambda: tg.draw(tg.Value(1.0), rankdir="XY"), ValueError, "rankdir"),
    ("graph_of a non-Value", lambda: tg.graph_of([3]), TypeError, "graph_of takes Values"),
    # tracing what cannot be traced
    ("if on a tracer", lambda: tg.grad(lambda x: x if x > 0 else -x)(1.0), tg.TracingError, "tg.where"),
    ("float() of a tracer", lambda: tg.grad(lambda x: float(x))(1.0), tg.TracingError, "tg.sin(x)"),
    # JSON graphs
    ("from_json not JSON", lambda: tg.Graph.from_json("{"), ValueError, "not a JSON graph"),
    ("from_json None", lambda: tg.Graph.from_json(None), ValueError, "not a JSON graph"),
    ("from_json other JSON", lambda: tg.Graph.from_json("[1, 2]"), ValueError, "format 'tracegrad.graph'"),
    ("from_json deep", lambda: tg.Graph.from_json("[" * 100000), ValueError, "not a JSON graph"),
    # nn
    ("MLP nin a string", lambda: tg.nn.MLP("a", [1]), TypeError, "nin"),
    ("MLP nin zero", lambda: tg.nn.MLP(0, [1]), ValueError, "at least 1"),
    ("MLP no layers", lambda: tg.nn.MLP(2, []), ValueError, "non-empty list"),
    ("MLP negative layer", lambda: tg.nn.MLP(2, [-1]), ValueError, "positive ints"),
    ("MLP unknown activation", lambda: tg.nn.MLP(2, [(1, "foo")]), ValueError, "unknown activation"),
    ("MLP input length", lambda: MLP([1.0]), ValueError, "takes 2 inputs"),
    ("load_state_dict length", lambda: MLP.load_state_dict([1.0]), ValueError, "parameters"),
    ("apply length", lambda: MLP.apply([1.0], [1.0, 2.0]), ValueError, "apply needs"),
    ("SGD lr a string", lambda: tg.nn.SGD(lr="a"), TypeError, "lr must be"),
    ("SGD lr negative", lambda: tg.nn.SGD(lr=-1.0), ValueError, "lr must be >= 0"),
    ("SGD lr nan", lambda: tg.nn.SGD(lr=float("nan")), ValueError, "lr must be >= 0"),
    ("step a recipe", lambda: tg.nn.SGD(lr=0.1).step(), ValueError, "without parameters"),
    ("Trainer of a number", lambda: tg.nn.Trainer(3), TypeError, "tg.nn model"),
    ("Trainer loss", lambda: tg.nn.Trainer(MLP, loss="foo"), ValueError, "unknown loss"),
    ("Trainer l2", lambda: tg.nn.Trainer(MLP, l2=-1.0), ValueError, "l2"),
    ("Trainer optimizer", lambda: tg.nn.Trainer(MLP, optimizer="sgd"), TypeError, "optimizer"),
    ("fit X columns", lambda: tg.nn.Trainer(MLP).fit(np.zeros((4, 3)), np.zeros(4)), ValueError, "features"),
    ("fit X 1-D", lambda: tg.nn.Trainer(MLP).fit(np.zeros(4), np.zeros(4)), ValueError, "2-D"),
    ("fit y length", lambda: tg.nn.Trainer(MLP).fit(np.zeros((4, 2)), np.zeros(3)), ValueError, "one target"),
    ("fit empty", lambda: tg.nn.Trainer(MLP).fit(np.zeros((0, 2)), np.zeros(0)), ValueError, "empty"),
    ("fit nan", lambda: tg.nn.Trainer(MLP).fit(np.full((2, 2), np.nan), np.zeros(2)), ValueError, "finite"),
    ("fit epochs", lambda: tg.nn.Trainer(MLP).fit(np.zeros((2, 2)), np.zeros(2), epochs=-1), ValueError, "epochs"),
    ("fit batch_size", lambda: tg.nn.Trainer(MLP).fit(np.zeros((2, 2)), np.zeros(2), batch_size=0),
     ValueError, "batch_size"),
    ("predict columns", lambda: MLP.predict(np.zeros((2, 3))), ValueError, "features"),
    ("predict empty", lambda: MLP.predict(np.zeros((0, 2))), ValueError, "non-empty"),
    ("train lengths", lambda: tg.nn.train(MLP, [[1.0, 2.0]], [1.0, 2.0], epochs=1), ValueError, "rows"),
]


@pytest.fixture
def compiles(monkeypatch):
    """Counts calls of the backends' compile: bad input must fail before any."""
    calls = []
    real = backends.compile

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(backends, "compile", counting)
    return calls


@pytest.mark.parametrize("name, call, exc, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, call, exc, fragment, compiles):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc  # the documented type exactly, not a subclass or a stray error
    assert fragment in str(info.value)
    assert not compiles, f"{name}: compiled {len(compiles)} graph(s) before failing"


def test_arity_error_comes_before_tracing():
    calls = []

    def g(x, y):
        calls.append(1)
        return x * y
    with pytest.raises(TypeError, match=r"g\(x, y\)"):
        tg.grad(g)(1.0)
    assert calls == []


def test_errors_inside_the_function_are_the_users():
    def g(x):
        raise KeyError("mine")
    with pytest.raises(KeyError, match="mine"):
        tg.grad(g)(1.0)


def test_builtins_and_callables_trace():
    import functools
    import operator
    assert tg.jit(operator.mul, backend="python")(2.0, 3.0) == 6.0
    assert tg.grad(functools.partial(f, 2.0))(5.0) == 2.0
    with pytest.raises(TypeError, match="partial"):
        tg.grad(functools.partial(f, 2.0))(5.0, 6.0)


def test_empty_structures_give_empty_gradients():
    assert tg.grad(lambda xs, y: y * y, argnums=(0, 1))([], 3.0) == ([], 6.0)
    assert tg.grad(lambda x: 1.0)(np.zeros(0)).shape == (0,)


def test_numpy_scalars_and_ints_are_accepted():
    assert tg.grad(square)(np.float32(3.0)) == 6.0
    assert tg.grad(square)(3) == 6.0
    assert tg.grad(lambda x: x[0] * x[1])(np.array([2, 3], dtype=np.int64)).tolist() == [3.0, 2.0]
