import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import tracegrad as tg
from tracegrad import backends
from tracegrad.backends import llvm

NAN, INF = float("nan"), float("inf")


def same(a, b):
    return all((x != x and y != y) or x == y for x, y in zip(a, b))


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)


def test_gradient_matches_torch():
    df = tg.jit(tg.grad(f, argnums=(0, 1)), backend="llvm")
    for x0, y0 in [(0.3, 0.7), (-1.5, 2.0), (0.0, -0.0)]:
        x, y = torch.tensor(x0, dtype=torch.float64, requires_grad=True), torch.tensor(y0, dtype=torch.float64, requires_grad=True)
        (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2) + torch.log(1 + x * x)).backward()
        assert df(x0, y0) == pytest.approx((x.grad.item(), y.grad.item()), rel=1e-12, abs=1e-15)


EDGE = [0.0, -0.0, 1.0, -1.0, 2.5, 1e308, -1e308, 1e-310, INF, -INF, NAN]


@pytest.mark.parametrize("fn", [
    lambda x, y: x / y, lambda x, y: tg.log(x) + tg.exp(y), lambda x, y: x ** y,
    lambda x, y: tg.where(x, y, -y), lambda x, y: [x != y, x == y, x < y, x >= y],
    lambda x, y: [tg.maximum(x, y), tg.minimum(x, y)], lambda x, y: tg.sqrt(x) - tg.log1p(y),
    lambda x, y: [tg.sign(x), tg.relu(y), tg.abs(x), -x], lambda x, y: tg.clamp(x, y, 2.0),
    lambda x, y: [tg.sigmoid(x), tg.softplus(y), x ** 3, tg.sin(x), tg.cos(y)],
], ids=["div", "log-exp", "pow", "where", "compare", "max-min", "sqrt-log1p", "sign-relu-abs-neg",
        "clamp", "derived"])
def test_ieee_edges_match_interp(fn):
    g = tg.trace(fn, 1.0, 1.0)
    ref, k = backends.compile(g, "interp"), backends.compile(g, "llvm")
    for x in EDGE:
        for y in EDGE:
            assert same(k(x, y), ref(x, y)), (x, y, k(x, y), ref(x, y))
    assert str(k(-0.0, 1.0)) == str(tuple(ref(-0.0, 1.0)))  # signs of zeros too


def test_source_names_nodes_like_the_printed_ir():
    text = llvm.source(tg.trace(lambda x, y: tg.sin(x) * y, 1.0, 2.0))
    assert "%v2 = call double @sin(double %v0)" in text
    assert "%v3 = fmul double %v2, %v1" in text


def test_large_graph_is_split_and_correct(monkeypatch):
    monkeypatch.setattr(llvm, "CHUNK", 50)
    g = tg.trace(lambda xs: sum(tg.sin(xs[i]) * xs[i + 1] for i in range(99)), [0.5] * 100)
    text = llvm.source(g)
    assert "@chunk1(" in text and "@chunk2(" in text
    xs = [0.01 * i for i in range(100)]
    k = llvm.Kernel(llvm.object_code(text), len(g.inputs), len(g.outputs), False)
    assert k(*xs) == pytest.approx(backends.compile(g, "interp")(*xs), rel=1e-12)


def test_lane_kernel_vectorises():
    g = tg.trace(lambda x, y: [tg.log1p(x * y), tg.where(x < y, x, y)], 1.0, 2.0)
    text = llvm.lane_function(g, "sample", 4)
    assert "<4 x double>" in text and "@log1p.v4(" in text
    llvm.object_code(text)  # valid IR that compiles


def test_threads_share_a_kernel():
    df = tg.jit(tg.grad(f, argnums=(0, 1)), backend="llvm")
    expect = df(0.3, 0.7)
    results = []
    threads = [threading.Thread(target=lambda: results.append(all(df(0.3, 0.7) == expect for _ in range(300))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4


def test_engines_are_freed():
    import gc
    import weakref
    refs = []
    for i in range(20):
        k = llvm.compile(tg.trace(lambda x: x * float(i + 1000), 1.0))
        refs.append(weakref.ref(k._engine))
        del k
    gc.collect()
    assert sum(r() is not None for r in refs) == 0


SCRIPT = """
import tracegrad as tg
from tracegrad.backends import llvm
k = llvm.compile(tg.trace(lambda x, y: tg.exp(x) * y + 0.123, 1.0, 1.0))
print(k.cached, k(1.0, 2.0)[0])
"""


def test_disk_cache_second_process_and_corrupt_entry(tmp_path):
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(tmp_path), PYTHONPATH=os.getcwd())
    run = lambda: subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()
    first, second = run(), run()
    assert first[0] == "False" and second[0] == "True" and first[1] == second[1]
    (entry,) = (tmp_path / "llvm").glob("*.o")
    data = bytearray(entry.read_bytes())
    data[-10] ^= 0xFF
    entry.write_bytes(bytes(data))
    third = run()
    assert third == first  # rebuilt, not executed
    assert run()[0] == "True"


def test_cache_dir_argument(tmp_path):
    g = tg.jit(lambda x: tg.exp(x) * 3.25 + 0.5 + tg.sin(x) * tg.cos(x) + x ** 2.5 + 7.0 / (x + 1.0) + tg.log1p(x),
               backend="llvm", cache_dir=tmp_path)
    g(0.5)
    assert list((tmp_path / "llvm").glob("*.o"))


def test_default_backend_is_llvm_at_every_size():
    small = tg.trace(lambda x: x + 1.0, 1.0)
    assert type(backends.compile(small)) is llvm.Kernel and backends.source(small) == llvm.source(small)
    with pytest.raises(ValueError, match="unknown backend"):
        tg.jit(lambda x: x, backend="cuda")


def test_rows_kernel_broadcasts_with_stride_zero():
    k = llvm.compile(tg.trace(lambda x, y: [x - y, x * y], 1.0, 1.0))
    xs, y = np.arange(5.0), np.array([2.0])
    out = np.empty((2, 5))
    ins = np.array([xs.ctypes.data, y.ctypes.data], dtype=np.uint64)
    outs = np.array([out.ctypes.data, out.ctypes.data + 40], dtype=np.uint64)
    k.rows(ins, np.array([1, 0]), outs, np.array([1, 1]), 0, 5)
    assert np.array_equal(out, [xs - 2.0, xs * 2.0])


@pytest.mark.parametrize("fn, rows, expected", [
    (lambda x: (), np.ones(5), ()),
    (lambda x: [], np.ones(5), []),
    (lambda x: {}, np.ones(5000), {}),                      # long enough for the lane kernel
    (lambda x: [x, {"a": ()}], np.ones((3, 0)), [np.ones((3, 0)), {"a": ()}]),
    (lambda x: sum(x), np.ones((5, 0)), np.zeros(5)),       # rows of no floats: a constant per row
    (lambda x: 2.0 * x.size + 1.0, np.ones((4100, 0)), np.ones(4100)),
    (lambda x, y: x, (np.ones((5, 0)), np.arange(5.0)), np.ones((5, 0))),
])
def test_vmap_with_no_floats_in_or_out_gives_the_empty_structure(fn, rows, expected):
    """No column pointers to read or write: the row loops must not touch any (this crashed the process)."""
    out = tg.vmap(fn)(*(rows if isinstance(rows, tuple) else (rows,)))
    assert type(out) is type(expected)
    if isinstance(expected, np.ndarray):
        assert out.shape == expected.shape
        np.testing.assert_array_equal(out, expected)
    elif expected:
        assert out[1] == expected[1] and out[0].shape == expected[0].shape
    else:
        assert out == expected


def test_llvm_kernel_checks_its_argument_count():
    kernel = tg.jit(lambda x, y: x * y, backend="llvm").kernel
    with pytest.raises(TypeError, match="takes 2 arguments"):
        kernel(1.0)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        kernel(1.0, 2.0, 3.0)
    assert kernel(2.0, 3.0) == (6.0,)


def test_native_rows_checks_its_signature():
    kernel = llvm.compile(tg.trace(lambda x, y: (x * y, x - y), 1.0, 1.0))
    with pytest.raises(ValueError, match="tuple"):
        kernel.native_rows((0, 0), True, 100, print)
    with pytest.raises(ValueError, match="one axis"):
        kernel.native_rows((0,), False, 100, print)
    with pytest.raises(ValueError, match="one axis"):
        kernel.native_rows((None, None), False, 100, print)
    rows = kernel.native_rows((None, 0), False, 3, lambda *a: "general")
    out = rows(2.0, np.array([1.0, 4.0]))
    np.testing.assert_array_equal(out[0], [2.0, 8.0])
    np.testing.assert_array_equal(out[1], [1.0, -2.0])
    assert rows(2.0, np.arange(3.0)) == "general"  # max_rows: 3 rows and more take the general path
    assert rows(2.0, np.ones(2, dtype=np.float32)) == "general"
    assert rows(np.float64(2.0), np.ones(2)) == "general"
