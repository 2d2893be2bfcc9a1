"""Large graphs compile as chunk functions that follow the outputs' dependencies (backends/llvm.py)."""
import re
import struct

import pytest
import torch

import tracegrad as tg
from tracegrad.backends import llvm


def rosen(xs):
    return sum(100.0 * (xs[2 * i + 1] - xs[2 * i] ** 2) ** 2 + (1.0 - xs[2 * i]) ** 2 for i in range(len(xs) // 2))


def bits(values):
    return [struct.pack("<d", v) for v in values]


@pytest.fixture(scope="module")
def small_chunks():
    old, llvm.CHUNK = llvm.CHUNK, 40
    yield
    llvm.CHUNK = old


@pytest.fixture(scope="module")
def rosen_grad(small_chunks):
    g = tg.trace(tg.grad(rosen), [0.5] * 200)
    text = llvm.source(g)
    return g, text, llvm.Kernel(llvm.object_code(text), len(g.inputs), len(g.outputs), False)


def test_gradient_chunks_pass_few_values_between_them(rosen_grad):
    g, text, _ = rosen_grad
    chunks = len(re.findall(r"define internal void @chunk\d+\(", text))
    scratch = int(re.search(r"%s = alloca \[(\d+) x double\]", text).group(1))
    assert chunks >= 10 and len(g.nodes) > 1000
    assert scratch < 2 * chunks  # chunks in node order passed 412 values: one per forward node


def test_each_chunk_stores_the_outputs_it_computes(rosen_grad):
    _, text, _ = rosen_grad
    first = text.split("define internal void @chunk1(")[0]
    assert "ptr %out" in first and re.search(r"store double %v\d+, ptr %(out|p\.o\d+)\n", first)


def test_chunked_gradient_matches_torch_and_unchunked(rosen_grad):
    g, _, k = rosen_grad
    xs = [0.01 * i - 1.0 for i in range(200)]
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    (100.0 * (x[1::2] - x[::2] ** 2) ** 2 + (1.0 - x[::2]) ** 2).sum().backward()
    assert k(*xs) == pytest.approx(x.grad.tolist(), rel=1e-12, abs=1e-12)
    one = tg.backends.compile(g, "interp")(*xs)
    assert bits(k(*xs)) == bits(one)


def test_outputs_that_are_inputs_or_constants_in_a_chunked_graph(small_chunks):
    g = tg.trace(lambda xs: [xs[0], 1.5, -0.0] + [tg.sin(x) * x for x in xs], [0.5] * 60)
    k = llvm.Kernel(llvm.object_code(llvm.source(g)), len(g.inputs), len(g.outputs), False)
    xs = [0.1 * i - 3.0 for i in range(60)]
    assert "@chunk1(" in llvm.source(g)
    assert bits(k(*xs)) == bits(tg.backends.compile(g, "interp")(*xs))
