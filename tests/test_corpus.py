"""Reverse mode against forward mode against central differences, to second order."""
import pytest

import tracegrad as tg
from conftest import same_float
from functions import CORPUS


def central_difference(f, args, i, h=1e-6):
    up = list(args); up[i] += h
    down = list(args); down[i] -= h
    return (f(*up) - f(*down)) / (2 * h)


def forward_gradient(f, args):
    n = len(args)
    return [tg.jvp(f, args, tuple(1.0 if j == i else 0.0 for j in range(n)))[1] for i in range(n)]


@pytest.mark.parametrize("name, f, args", CORPUS, ids=[c[0] for c in CORPUS])
def test_first_order(name, f, args):
    n = len(args)
    reverse = tg.grad(f, argnums=tuple(range(n)))(*args)
    forward = forward_gradient(f, args)
    value = tg.jit(f)
    for i in range(n):
        assert same_float(reverse[i], forward[i], rtol=1e-12), (i, reverse[i], forward[i])
        numeric = central_difference(value, args, i)
        assert abs(reverse[i] - numeric) <= 1e-6 * max(1.0, abs(numeric)), (i, reverse[i], numeric)


@pytest.mark.parametrize("name, f, args", CORPUS, ids=[c[0] for c in CORPUS])
def test_second_order(name, f, args):
    n = len(args)
    for i in range(n):
        df_i = tg.grad(f, argnums=i)
        rev_rev = tg.grad(df_i, argnums=tuple(range(n)))(*args)
        fwd_rev = forward_gradient(df_i, args)
        compiled = tg.jit(df_i)
        for j in range(n):
            assert same_float(rev_rev[j], fwd_rev[j], rtol=1e-10), (i, j, rev_rev[j], fwd_rev[j])
            numeric = central_difference(compiled, args, j, h=1e-5)
            assert abs(rev_rev[j] - numeric) <= 1e-5 * max(1.0, abs(numeric)), (i, j, rev_rev[j], numeric)


@pytest.mark.parametrize("name, f, args", CORPUS, ids=[c[0] for c in CORPUS])
def test_backends_agree(name, f, args):
    n = len(args)
    results = [tg.grad(f, argnums=tuple(range(n)), backend=b)(*args) for b in ("interp", "python")]
    assert results[0] == results[1]
    assert tg.jit(f, backend="interp")(*args) == tg.jit(f, backend="python")(*args) == f(*args)


def test_forward_of_forward_matches_reverse_of_reverse():
    f = CORPUS[0][1]
    dfdx = lambda x, y: tg.jvp(f, (x, y), (1.0, 0.0))[1]
    d2_fwd = tg.jvp(dfdx, (0.3, 0.7), (1.0, 0.0))[1]
    d2_rev = tg.grad(tg.grad(f))(0.3, 0.7)
    assert same_float(d2_fwd, d2_rev)
    assert same_float(d2_rev, 2 - 400 * (0.7 - 3 * 0.3 ** 2))
