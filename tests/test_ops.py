"""Every primitive's value, gradient and Hessian against PyTorch float64, in every backend."""
import math

import pytest
import torch

import tracegrad as tg
from conftest import same_float
from op_table import OPS

BACKENDS = ["interp", "python", "llvm"]


def as_points(points):
    return [p if isinstance(p, tuple) else (p,) for p in points]


def torch_derivatives(fn, point):
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    y = fn(*xs)
    zeros = [0.0] * len(xs)
    if not y.requires_grad:
        return y.item(), zeros, [zeros] * len(xs)
    grads = torch.autograd.grad(y, xs, create_graph=True, allow_unused=True)
    hessian = []
    for g in grads:
        if g is None or not g.requires_grad:
            hessian.append(zeros)
            continue
        row = torch.autograd.grad(g, xs, retain_graph=True, allow_unused=True)
        hessian.append([0.0 if h is None else h.item() for h in row])
    return y.item(), [0.0 if g is None else g.item() for g in grads], hessian


def tracegrad_derivatives(fn, n, backend):
    every = tuple(range(n))
    value = tg.jit(fn, backend=backend)
    gradient = tg.grad(fn, argnums=every, backend=backend)
    rows = [tg.grad(tg.grad(fn, argnums=i), argnums=every, backend=backend) for i in range(n)]
    return lambda *p: (value(*p), list(gradient(*p)), [list(r(*p)) for r in rows])


def strong_zero(name, point, ours, theirs):
    """A deliberate difference: pow's rules select with tg.where, whose branch not taken has a
    strong-zero cotangent, so where PyTorch's second derivative multiplies 0 by inf (nan) at
    x = 0 or y = 0, tracegrad gives 0."""
    return name.startswith("pow") and 0.0 in point and math.isnan(theirs) and ours == 0.0


def mismatches(name, ours, theirs, point):
    (v, g, h), (tv, tgr, th) = ours, theirs
    bad = []
    if not same_float(v, tv, signed_zero=True):
        bad.append(f"{name}{point}: value {v!r} != torch {tv!r}")
    for i, (a, b) in enumerate(zip(g, tgr)):
        if not same_float(a, b):
            bad.append(f"{name}{point}: d/dx{i} {a!r} != torch {b!r}")
    for i, (row, trow) in enumerate(zip(h, th)):
        for j, (a, b) in enumerate(zip(row, trow)):
            if not same_float(a, b) and not strong_zero(name, point, a, b):
                bad.append(f"{name}{point}: d2/dx{i}dx{j} {a!r} != torch {b!r}")
    return bad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, fn, torch_fn, points", OPS, ids=[row[0] for row in OPS])
def test_op_against_torch(name, fn, torch_fn, points, backend):
    points = as_points(points)
    ours = tracegrad_derivatives(fn, len(points[0]), backend)
    bad = []
    for p in points:
        bad += mismatches(name, ours(*p), torch_derivatives(torch_fn, p), p)
    assert not bad, "\n".join(bad[:20]) + f"\n({len(bad)} mismatches)"


def test_every_primitive_has_a_line_in_the_op_table():
    from tracegrad.ops import TABLE
    tested = {row[0].split("_")[0] for row in OPS}
    assert set(TABLE) <= tested, f"untested ops: {set(TABLE) - tested}"


PUBLIC = [row for row in OPS if getattr(row[1], "__module__", "") == "tracegrad.ops"]


@pytest.mark.parametrize("name, fn, torch_fn, points", PUBLIC, ids=[row[0] for row in PUBLIC])
def test_op_on_plain_floats_matches_traced(name, fn, torch_fn, points):
    """Called on floats, the public functions evaluate eagerly with the same IEEE results, never raising."""
    compiled = tg.jit(fn, backend="interp")
    for p in as_points(points):
        direct = fn(*p)
        assert same_float(float(direct), compiled(*p), signed_zero=True), (name, p)
