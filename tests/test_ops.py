"""Every primitive's value, gradient and Hessian against PyTorch float64, in every backend,
in eager ``Value``s and in SIMD lanes."""
import math

import numpy as np
import pytest
import torch

import tracegrad as tg
from conftest import same_float
from op_table import OPS
from tracegrad import backends
from tracegrad.vmap import LANE_ROWS


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


def everything(fn, n):
    """A function of ``n`` floats giving ``[value, gradient, Hessian rows]`` of ``fn``: one graph to compile."""
    every = tuple(range(n))

    def derivatives(*xs):
        return [fn(*xs), list(tg.grad(fn, argnums=every)(*xs)),
                [list(tg.grad(tg.grad(fn, argnums=i), argnums=every)(*xs)) for i in range(n)]]
    return derivatives


def tracegrad_derivatives(fn, n, backend):
    return tg.jit(everything(fn, n), backend=backend)


def strong_zero(name, point, ours, theirs):
    """A deliberate difference: the rules of pow, atan2 and copysign select with tg.where (PyTorch's
    with where or masked_fill), whose branch not taken has a strong-zero cotangent in tracegrad, so
    where PyTorch's second derivative multiplies 0 by inf (nan), as at x = 0 or y = 0, tracegrad gives 0."""
    return name.startswith(("pow", "atan2", "copysign")) and math.isnan(theirs) and ours == 0.0


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


def sympy_differs(name, point, ours, theirs):
    """Where sympy's semantics are not IEEE's, the sympy backend is not compared. It has no signed
    zero, no nan in comparisons, Max, Min or Piecewise, and folds x - x to 0, x * 0 to 0 and x / 0 to
    zoo (nan); its expressions are mathematics, reordered as sympy likes (x*x + y*y stays x**2 + y**2,
    which overflows at 1e200), and softplus is the textbook log(1 + exp(x)) (see docs/sympy.md): so
    points with a zero, an inf or a nan, or beyond 1e±100, softplus beyond ±20, and results that are
    not finite are left out; the values at the other points must agree."""
    moderate = all(1e-100 < abs(v) < (20.0 if name == "softplus" else 1e100) for v in point)
    return not moderate or not math.isfinite(theirs[0]) or math.isnan(ours[0])


@pytest.mark.parametrize("backend", backends.NAMES)
@pytest.mark.parametrize("name, fn, torch_fn, points", OPS, ids=[row[0] for row in OPS])
def test_op_against_torch(name, fn, torch_fn, points, backend):
    points = as_points(points)
    ours = tracegrad_derivatives(fn, len(points[0]), backend)
    bad = []
    for p in points:
        got, want = ours(*p), torch_derivatives(torch_fn, p)
        if backend != "sympy" or not sympy_differs(name, p, got, want):
            bad += mismatches(name, got, want, p)
    assert not bad, "\n".join(bad[:20]) + f"\n({len(bad)} mismatches)"


EAGER = [row for row in OPS if row[0] not in ("eq", "ne")]  # == of Values is identity, as in micrograd


@pytest.mark.parametrize("name, fn, torch_fn, points", EAGER, ids=[row[0] for row in EAGER])
def test_op_in_eager_values_against_torch(name, fn, torch_fn, points):
    """``Value`` computes the same values and gradients (``backward``) as PyTorch."""
    bad = []
    for p in as_points(points):
        xs = [tg.Value(v) for v in p]
        y = fn(*xs)
        y = y if isinstance(y, tg.Value) else tg.Value(float(y))  # a comparison of Values is a bool
        y.backward()
        bad += mismatches(name, (y.data, [x.grad for x in xs], []), torch_derivatives(torch_fn, p), p)
    assert not bad, "\n".join(bad[:20]) + f"\n({len(bad)} mismatches)"


@pytest.mark.parametrize("name, fn, torch_fn, points", OPS, ids=[row[0] for row in OPS])
def test_op_in_simd_lanes_against_torch(name, fn, torch_fn, points):
    """``vmap`` over a long batch runs in SIMD lanes (vector libm): the same results as PyTorch."""
    points = as_points(points)
    n = len(points[0])
    batch = [points[k % len(points)] for k in range(LANE_ROWS + 3)]
    columns = [np.array([p[j] for p in batch]) for j in range(n)]
    value, gradient, hessian = tg.vmap(everything(fn, n))(*columns)
    bad = []
    for k, p in enumerate(batch[:len(points)]):
        row = value[k], [g[k] for g in gradient], [[h[k] for h in hrow] for hrow in hessian]
        bad += mismatches(name, row, torch_derivatives(torch_fn, p), p)
    for k in range(len(points), len(batch)):  # every lane position, and the rows past the last whole
        assert same_float(value[k], value[k % len(points)], rtol=1e-14), (name, batch[k])  # group (scalar libm)
    assert not bad, "\n".join(bad[:20]) + f"\n({len(bad)} mismatches)"


def test_every_primitive_has_a_line_in_the_op_table():
    from tracegrad.ops import TABLE
    tested = {row[0].split("_")[0] for row in OPS}
    builtin = {name for name, op in TABLE.items() if op.builtin}  # tests define ops of their own
    assert builtin <= tested, f"untested ops: {builtin - tested}"


PUBLIC = [row for row in OPS if getattr(row[1], "__module__", "") == "tracegrad.ops"]


@pytest.mark.parametrize("name, fn, torch_fn, points", PUBLIC, ids=[row[0] for row in PUBLIC])
def test_op_on_plain_floats_matches_traced(name, fn, torch_fn, points):
    """Called on floats, the public functions evaluate eagerly with the same IEEE results, never raising."""
    compiled = tg.jit(fn, backend="interp")
    for p in as_points(points):
        direct = fn(*p)
        assert same_float(float(direct), compiled(*p), signed_zero=True), (name, p)
