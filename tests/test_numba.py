import math

import numba
import pytest

import tracegrad as tg


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x) + tg.relu(x) / y


@pytest.fixture(scope="module")
def df():
    return tg.jit(tg.grad(f, argnums=(0, 1)), backend="numba")


def test_matches_llvm_and_edges(df):
    ref = tg.jit(tg.grad(f, argnums=(0, 1)), backend="interp")
    for x, y in [(0.3, 0.7), (-1.0, 0.0), (0.0, -0.0), (math.nan, 1.0), (1e308, math.inf)]:
        assert str(df(x, y)) == str(ref(x, y))


def test_kernel_is_an_njit_dispatcher_usable_from_user_code(df):
    k = df.kernel
    assert isinstance(k, numba.core.registry.CPUDispatcher)

    @numba.njit
    def total(n):
        s = 0.0
        for i in range(n):
            s += k(0.001 * i, 0.5)[0]
        return s
    assert total(10) == pytest.approx(sum(df(0.001 * i, 0.5)[0] for i in range(10)), rel=1e-12)


def test_source_is_the_python_source_under_njit(df):
    text = tg.jit(lambda x: tg.sigmoid(x), backend="numba").source
    assert '@numba.njit(error_model="numpy", cache=True)' in text and "sigmoid" not in text


def test_fast_path_falls_back_for_anything_but_floats(df):
    ref = tg.jit(tg.grad(f, argnums=(0, 1)), backend="interp")
    assert df(0.3, 0.7) == ref(0.3, 0.7)  # installs the fast path
    assert df(1, 2) == ref(1.0, 2.0)  # ints convert, as everywhere
    with pytest.raises(ValueError, match="too large"):
        df(10 ** 400, 1.0)
    with pytest.raises(TypeError, match="real numbers|float"):
        df("a", 1.0)
    x, y = tg.Value(0.3), tg.Value(0.7)
    gx, gy = df(x, y)  # Values replay the graph eagerly
    assert (gx.data, gy.data) == ref(0.3, 0.7)
    # on tracers the graph is replayed into the trace: a second derivative through the numba function
    second = tg.grad(lambda a, b: df(a, b)[0], argnums=0)(0.3, 0.7)
    assert second == pytest.approx(tg.grad(tg.grad(f), argnums=0)(0.3, 0.7), rel=1e-12)
    with pytest.raises(TypeError, match="keyword argument"):
        df(0.3, y=0.7)


def test_math_functions_numba_knows_are_its_own_and_the_others_ctypes_calls_not_cached():
    import warnings
    from tracegrad.backends import numba_runtime
    from tracegrad.transforms.lower import lower
    known = tg.jit(lambda x, y: tg.atan2(x, y) * tg.erf(x) + tg.expm1(y), backend="numba")
    assert known(0.5, 2.0) == tg.jit(lambda x, y: tg.atan2(x, y) * tg.erf(x) + tg.expm1(y), backend="interp")(0.5, 2.0)
    assert "cache=True" in known.source
    names, cacheable = numba_runtime.namespace(lower(tg.trace(lambda x, y: tg.atan2(x, y) + tg.erf(x), 0.0, 0.0)))
    assert names == {"atan2": math.atan2, "erf": math.erf} and cacheable
    # numba's math.floor gives an int, and it has no cbrt or fmod: libm's, through ctypes, and no
    # disk cache (numba would warn that it cannot cache a function pointer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other = tg.jit(lambda x, y: tg.fmod(x, y) + tg.floor(x) + tg.cbrt(y) + tg.ceil(-0.5 * x), backend="numba")
        assert str(other(5.5, -8.0)) == str(tg.jit(lambda x, y: tg.fmod(x, y) + tg.floor(x) + tg.cbrt(y)
                                                  + tg.ceil(-0.5 * x), backend="interp")(5.5, -8.0))
    assert "cache=False" in other.source
    assert math.copysign(1.0, tg.jit(tg.floor, backend="numba")(-0.0)) == -1.0
