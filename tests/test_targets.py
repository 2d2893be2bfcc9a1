"""Compiled code runs on the CPU it is built for: the host record decides every instruction-set choice.

A machine with AVX2 and no AVX-512 must never be handed AVX-512 code (it dies with
SIGILL), whatever lane width a kernel uses; ``TRACEGRAD_CPU`` builds for another target.
"""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.backends import host as target
from tracegrad.backends.host import describe
from tracegrad.backends.llvm_loops import map_source

X86 = "x86_64-unknown-linux-gnu"
AVX2_ONLY = {"sse": True, "sse2": True, "avx": True, "avx2": True, "fma": True, "avx512f": False}
CODEGEN_TESTS = ["tests/test_lanes.py", "tests/test_llvm.py", "tests/test_llvm_chunking.py", "tests/test_vmap.py",
                 "tests/test_trainer.py", "tests/test_ops.py", "tests/test_backends_agree.py", "tests/test_dense.py"]


@pytest.fixture
def build_for(monkeypatch):
    """Make this process compile for ``TRACEGRAD_CPU=name`` (skipped where this CPU cannot run it)."""
    def use(name):
        monkeypatch.setenv("TRACEGRAD_CPU", name)
        target.host.cache_clear()
        try:
            return target.host()
        except ValueError as e:
            pytest.skip(str(e))
    yield use
    monkeypatch.delenv("TRACEGRAD_CPU", raising=False)
    target.host.cache_clear()


def test_an_avx2_host_gets_no_avx512_vector_math():
    h = describe(None, "haswell", AVX2_ONLY, X86)
    assert h.lanes == 4 and [v for v, _ in h.vector_variants] == ["d", "b"]
    assert [h.vector_variant(w) for w in (8, 4, 2, 1)] == [("d", 4), ("d", 4), ("b", 2), None]


def test_generic_target_is_the_baseline():
    h = describe("generic", "znver4", {**AVX2_ONLY, "avx512f": True}, X86)
    assert (h.cpu, h.features, h.lanes, h.vector_variants) == ("x86-64", "", 2, (("b", 2),))
    assert describe("generic", "neoverse-n1", {"neon": True}, "aarch64-unknown-linux-gnu").vector_variants == ()


def test_the_host_features_it_lacks_are_passed_on():
    """A virtual machine may hide AVX-512 from a CPU whose name implies it: LLVM must be told."""
    assert "-avx512f" in describe(None, "skylake-avx512", AVX2_ONLY, X86).features.split(",")


@pytest.mark.parametrize("request_, message", [("x86-64-v9", "not a target"), ("x86-64-v4", "needs .*avx512f.*lacks"),
                                               ("pentium", "not a target")])
def test_unknown_or_unrunnable_targets_are_refused(request_, message):
    with pytest.raises(ValueError, match=message):
        describe(request_, "haswell", AVX2_ONLY, X86)


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x) + x ** y


@pytest.mark.parametrize("name, allowed", [("x86-64-v3", "_ZGVdN4"), ("generic", "_ZGVbN2")])
def test_lane_kernels_call_only_the_vector_math_the_target_runs(build_for, monkeypatch, name, allowed):
    """An 8-lane map on an AVX2 (or baseline) target calls 4- (or 2-) lane libmvec in parts, and is right."""
    import torch
    build_for(name)
    graph = tg.trace(tg.grad(f, argnums=(0, 1)), 0.5, 0.5)
    text = map_source(graph, [1, 1], 8)
    symbols = {word.split("(")[0] for word in text.split() if word.startswith("@_ZGV")}
    assert symbols and all(s.startswith("@" + allowed) for s in symbols), symbols
    monkeypatch.setattr(importlib.import_module("tracegrad.vmap"), "LANE_ROWS", 1)
    monkeypatch.setattr("tracegrad.backends.llvm_lanes", lambda: 8)
    xs, ys = np.random.default_rng(0).uniform(0.1, 2.0, size=(2, 37))
    gx, gy = tg.vmap(tg.grad(lambda x, y: f(x, y) + 0.25, argnums=(0, 1)))(xs, ys)  # a graph of its own
    x, y = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
    (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2) + torch.log(1 + x * x) + x ** y).sum().backward()
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12)


def test_code_generation_tests_pass_under_the_generic_target(tmp_path):
    """The suite's code-generation tests again, built for the baseline CPU: code that passes on
    one CPU only (an instruction set inferred from a width) fails here, not on a user's machine."""
    env = {**os.environ, "TRACEGRAD_CPU": "generic", "TRACEGRAD_CACHE_DIR": str(tmp_path)}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *CODEGEN_TESTS],
                         cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
