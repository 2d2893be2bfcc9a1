import numpy as np
import pytest
import torch

import tracegrad as tg


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)


def test_vmap_grad_matches_torch():
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(2, 1000))
    gx, gy = tg.vmap(tg.grad(f, argnums=(0, 1)))(xs, ys)
    x, y = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
    (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2) + torch.log(1 + x * x)).sum().backward()
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_broadcast_and_threads_match_rowwise(monkeypatch):
    import importlib
    vmap_module = importlib.import_module("tracegrad.vmap")
    monkeypatch.setattr(vmap_module, "PARALLEL_ROWS", 10)
    xs = np.linspace(-3, 3, 101)
    out = tg.vmap(f, in_axes=(0, None))(xs, 0.5)
    assert out.shape == (101,)
    np.testing.assert_array_equal(out, [tg.jit(f, backend="interp")(x, 0.5) for x in xs])


def test_pytrees_in_and_out():
    w = np.arange(12.0).reshape(4, 3)
    out = tg.vmap(lambda p, x: {"dot": p["w"] @ x, "both": [x * 2.0, p["b"]]}, in_axes=(None, 0))(
        {"w": np.ones(3), "b": 1.5}, w)
    np.testing.assert_array_equal(out["dot"], w.sum(axis=1))
    np.testing.assert_array_equal(out["both"][0], w * 2.0)
    np.testing.assert_array_equal(out["both"][1], [1.5] * 4)


def test_composes_with_jit_and_nan():
    g = tg.vmap(tg.jit(lambda x: tg.log(x) + tg.sqrt(x)))
    out = g(np.array([1.0, 0.0, -1.0, np.inf, np.nan]))
    np.testing.assert_array_equal(out, [1.0, -np.inf, np.nan, np.inf, np.nan])


def test_bad_input():
    g = tg.vmap(lambda x, y: x * y)
    with pytest.raises(ValueError, match="same length"):
        g(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="in_axes"):
        tg.vmap(lambda x, y: x * y, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="in_axes"):
        tg.vmap(lambda x: x, in_axes=1)(np.ones(3))
    with pytest.raises(TypeError, match="scalar"):
        g(np.ones(3), 2.0)
    with pytest.raises(TypeError, match="arrays of real numbers"):
        g(np.ones(3), "abc")
    with pytest.raises(TypeError, match="function"):
        tg.vmap(3)


def test_numpy_array_times_a_broadcast_traced_scalar():
    X = np.arange(6.0).reshape(3, 2)
    w = np.array([0.5, -2.0])
    assert tg.vmap(lambda x, s: (x * s).sum(), in_axes=(0, None))(X, 2.0).tolist() == (X.sum(1) * 2.0).tolist()
    assert tg.vmap(lambda x, s: (w * x * s).sum(), in_axes=(0, None))(X, 2.0).tolist() == (X @ w * 2.0).tolist()
    grads = tg.vmap(tg.grad(lambda s, x: (s * w * x).sum()), in_axes=(None, 0))(2.0, X)
    assert grads.tolist() == (X @ w).tolist()


def _native(g):
    import types
    return isinstance(type(g).__dict__.get("__call__"), types.BuiltinFunctionType)


def test_small_arrays_native_entry_matches_torch():
    rng = np.random.default_rng(1)
    g = tg.vmap(tg.grad(f, argnums=(0, 1)))
    for n in (1, 2, 10, 100, 4095, 4096, 5000):
        xs, ys = rng.normal(size=(2, n))
        gx, gy = g(xs, ys)
        x, y = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
        (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2) + torch.log(1 + x * x)).sum().backward()
        np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12, atol=1e-15)
        assert gx.shape == (n,) and gx.dtype == np.float64 and gx is not gy
        assert _native(g)
    # strided and reversed views, read-only arrays: the same rows as copies
    xs, ys = rng.normal(size=(2, 30))
    ro = ys[::3].copy()
    ro.flags.writeable = False
    for a, b in [(xs[::3], ys[::3]), (xs[::-3], ro), (xs[:10], ys[5:15])]:
        want = g(a.copy(), b.copy())
        for got, w in zip(g(a, b), want):
            np.testing.assert_array_equal(got, w)


def test_small_arrays_broadcast_and_one_output():
    g = tg.vmap(lambda x, c: x * c + 1.0, in_axes=(0, None))
    xs = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g(xs, 2.0), [3.0, 5.0, 7.0])
    assert _native(g)
    np.testing.assert_array_equal(g(xs, 3.0), [4.0, 7.0, 10.0])
    # the general path, same answers: ints, numpy scalars, 0-d arrays, lists, float32
    np.testing.assert_array_equal(g(xs, 3), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(xs, np.float64(3.0)), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(xs, np.array(3.0)), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(np.array([1, 2, 3]), 3.0), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(np.array([1, 2, 3], dtype=np.float32), 3.0), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(np.array([1.0, 2.0, 3.0], dtype=">f8"), 3.0), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(np.ma.masked_array(xs), 3.0), [4.0, 7.0, 10.0])
    np.testing.assert_array_equal(g(xs.reshape(3, 1), 3.0), [[4.0], [7.0], [10.0]])


def test_small_arrays_bad_input_after_native_entry():
    g = tg.vmap(lambda x, y: x * y)
    g(np.ones(3), np.ones(3))
    assert _native(g)
    with pytest.raises(ValueError, match="same length"):
        g(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="at least one row"):
        g(np.ones(0), np.ones(0))
    with pytest.raises(TypeError, match="scalar"):
        g(np.ones(3), 2.0)
    with pytest.raises(TypeError, match="arrays of real numbers"):
        g(np.ones(3), "abc")
    with pytest.raises(TypeError, match="arrays of real numbers"):
        g(np.ones(3), np.ones(3) + 1j)
    with pytest.raises(TypeError):
        g(np.ones(3))
    with pytest.raises(TypeError):
        g(np.ones(3), np.ones(3), np.ones(3))
    np.testing.assert_array_equal(g(np.arange(3.0), np.arange(3.0)), [0.0, 1.0, 4.0])


def test_small_arrays_tracers_still_refused():
    g = tg.vmap(lambda x: x * 2.0)
    g(np.ones(2))
    assert _native(g)
    with pytest.raises(TypeError, match="arrays of real numbers"):
        tg.grad(lambda x: g(np.array([x]))[0])(1.0)
    with pytest.raises(TypeError, match="arrays of real numbers"):
        tg.grad(lambda x: tg.vmap(lambda a, c: a * c, in_axes=(0, None))(np.ones(2), x)[0])(1.0)
