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
