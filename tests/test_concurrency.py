"""Threads and processes: compiled functions and caches give the right numbers under
concurrent use, and processes sharing one disk cache do not corrupt it. Also: the
in-memory kernel cache stays bounded when thousands of functions are compiled."""
import gc
import multiprocessing
import os
import resource
import sys
import threading
import weakref

import pytest

import tracegrad as tg
from tracegrad import backends
from tracegrad.backends import cache

THREADS = 8


def run_threads(work, n=THREADS):
    """Run ``work(i)`` in ``n`` threads started together; return results, re-raise any error."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def target(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def poly(k):
    return lambda x, y: tg.sin(x * y + k) * x + tg.exp(-y * y) * (k + 1.0)


@pytest.mark.parametrize("backend", ["python", "llvm", "interp"])
def test_one_compiled_function_from_eight_threads(backend):
    f = tg.value_and_grad(poly(0.5), argnums=(0, 1), backend=backend)
    expected = {i: tg.value_and_grad(poly(0.5), argnums=(0, 1), backend="interp")(0.1 * i, 0.3) for i in range(50)}

    def work(t):
        return [f(0.1 * i, 0.3) == expected[i] for i in range(50) for _ in range(4)]
    assert all(all(r) for r in run_threads(work))


def test_threads_compiling_the_same_and_different_graphs_at_once(tmp_path):
    """Each thread makes fresh Functions (so each traces and compiles) of shared and own graphs."""
    def work(t):
        ok = []
        for k in range(6):
            for offset in (k * 0.25, 100.0 + t + k * 0.125):  # shared by all threads / this thread's own
                f = tg.jit(poly(offset), backend="llvm", cache_dir=tmp_path)
                ok.append(f(0.5, 1.5) == tg.jit(poly(offset), backend="interp")(0.5, 1.5))
        return all(ok)
    assert all(run_threads(work))


def test_nested_traces_in_threads_do_not_mix():
    def work(t):
        g = tg.grad(tg.grad(lambda x: x ** 3 * (t + 1.0)))
        return [g(float(i)) for i in range(20)]
    for t, got in enumerate(run_threads(work)):
        assert got == [6.0 * i * (t + 1.0) for i in range(20)]


def test_vmap_and_eager_values_from_threads():
    import numpy as np
    f = tg.vmap(tg.grad(poly(0.25), argnums=(0, 1)))
    xs = np.linspace(-1, 1, 64)

    def work(t):
        gx, gy = f(xs, xs * t)
        v = tg.Value(0.5)
        y = (v * t).tanh() * v
        y.backward()
        return gx, gy, v.grad
    results = run_threads(work)
    for t, (gx, gy, vg) in enumerate(results):
        want = [tg.grad(poly(0.25), argnums=(0, 1), backend="interp")(x, x * t) for x in xs]
        assert np.allclose(gx, [w[0] for w in want], rtol=1e-12) and np.allclose(gy, [w[1] for w in want], rtol=1e-12)


# ---------------------------------------------------------------- processes sharing a disk cache

def _compile_in_process(directory, offsets, backend_names, queue):
    results = []
    for offset in offsets:
        graph = tg.grad(poly(offset), argnums=(0, 1)).make_graph((0.5, 1.5))[0]
        for backend in backend_names:
            results.append((offset, backend, tuple(backends.compile(graph, backend, directory)(0.5, 1.5))))
    queue.put(results)


def test_processes_sharing_a_cache_directory(tmp_path):
    directory = tmp_path / "shared-cache"
    directory.mkdir()
    offsets = [0.5 * k for k in range(4)]
    names = ["python", "llvm", "numba"]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [context.Process(target=_compile_in_process, args=(str(directory), offsets, names, queue))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    results = [queue.get(timeout=5) for _ in procs]
    for got in results:
        for offset, backend, value in got:
            assert value == tg.grad(poly(offset), argnums=(0, 1), backend="interp")(0.5, 1.5)
    # every entry on disk is complete and valid: no torn or temporary files remain
    llvm_dir = directory / "llvm"
    assert not [p for p in directory.rglob("*.tmp")]
    from tracegrad.backends import llvm
    for offset in offsets:
        graph = tg.grad(poly(offset), argnums=(0, 1)).make_graph((0.5, 1.5))[0]
        assert cache.read_entry(str(llvm_dir / (graph.fingerprint + ".o")), llvm.cache_key(graph)) is not None


# ---------------------------------------------------------------- bounded memory

def test_evicted_kernels_are_freed(monkeypatch):
    monkeypatch.setattr(backends, "_CACHE_SIZE", 16)
    refs = []
    for k in range(64):
        graph = tg.trace(lambda x: tg.sin(x) * (1000.0 + k) + x * x * x, 1.0)
        refs.append(weakref.ref(backends.compile(graph, "llvm")))
    gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive <= 16 and all(r() is not None for r in refs[-16:])
    assert len(backends._cache) <= 16


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.bench
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_thousands_of_compiled_functions_hold_bounded_memory():
    marks = {}
    for k in range(1, 4001):
        f = tg.jit(lambda x, y: tg.sin(x * y + k) * tg.exp(x) + k * y * y + tg.tanh(x - k), backend="llvm")
        assert f(0.5, 1.5) == tg.jit(lambda x, y: tg.sin(x * y + k) * tg.exp(x) + k * y * y + tg.tanh(x - k),
                                     backend="interp")(0.5, 1.5)
        if k in (500, 1024, 1500, 2000, 3000, 4000):
            gc.collect()
            marks[k] = rss_mb()
    print(f"\nRSS after compiling n distinct llvm functions (MB): {marks}; "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    # flat once the LRU of 1,024 is full and the allocator has settled: under 1 KB a compile
    assert marks[4000] - marks[2000] < 2.0
