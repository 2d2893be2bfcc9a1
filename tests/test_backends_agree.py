"""Random programs drawn from the op table run the same on every backend (1e-12 relative, nan / inf included)."""
import math

from hypothesis import given, settings, strategies as st

from tracegrad import backends

from programs import programs

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e308, -1e308, 1e-310, math.inf, -math.inf, math.nan]
POINT = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True),
                  st.floats(-10, 10))
CONSTANTS = st.sampled_from(SPECIAL[:7])
EXPONENTS = [2.0, 3.0, 0.5, -1.0, 1.5]



def close(a, b):
    if a != a or b != b:
        return a != a and b != b
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


def agree(graph, names, points):
    ref = backends.compile(graph, "interp")
    kernels = [backends.compile(graph, name) for name in names]
    for x, y in points:
        expect = ref(x, y)
        for name, k in zip(names, kernels):
            got = k(x, y)
            assert all(close(e, g) for e, g in zip(expect, got)), (name, x, y, expect, got, str(graph))


@settings(max_examples=150, deadline=None)
@given(programs(inputs=(2, 2), ops=(8, 8), outputs=(1, 1), constants=CONSTANTS, exponents=EXPONENTS),
       st.lists(st.tuples(POINT, POINT), min_size=1, max_size=8))
def test_interp_python_llvm_agree(graph, points):
    agree(graph, ["python", "llvm"], points)


@settings(max_examples=3, deadline=None)
@given(programs(inputs=(2, 2), ops=(30, 30), outputs=(12, 12), constants=CONSTANTS, exponents=EXPONENTS),
       st.lists(st.tuples(POINT, POINT), min_size=20, max_size=20))
def test_numba_agrees(graph, points):
    agree(graph, ["numba"], points)  # one graph of many outputs per numba compile: compiles are slow
