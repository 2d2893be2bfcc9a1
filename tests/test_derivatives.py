"""Jacobians, Hessians and hvp against PyTorch float64; structure, composition, graph sizes."""
import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian as torch_hessian, jacobian as torch_jacobian

import tracegrad as tg
from test_passes import rosenbrock

T = dict(dtype=torch.float64)


def f3(x, y, z):
    return tg.exp(x * y) * tg.sin(z) + x ** 2 * y


def f3_torch(x, y, z):
    return torch.exp(x * y) * torch.sin(z) + x ** 2 * y


def vec(x, y):
    return [x * y, tg.sin(x), x + y, tg.tanh(x - y) / (1.0 + y * y)]


def vec_torch(x, y):
    return torch.stack([x * y, torch.sin(x), x + y, torch.tanh(x - y) / (1.0 + y * y)])


POINTS = [(0.1, 0.2, 0.3), (-1.5, 0.7, 2.0), (0.0, -0.0, 1.0)]


@pytest.mark.parametrize("point", POINTS)
def test_hessian_matches_torch_and_is_symmetric(point):
    H = tg.hessian(f3, argnums=(0, 1, 2))(*point)
    expected = torch_hessian(f3_torch, tuple(torch.tensor(p, **T) for p in point))
    for i in range(3):
        for j in range(3):
            assert H[i][j] == pytest.approx(expected[i][j].item(), rel=1e-12, abs=1e-14)
            assert H[i][j] == pytest.approx(H[j][i], rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("jac", [tg.jacobian, tg.jacrev, tg.jacfwd], ids=["jacobian", "jacrev", "jacfwd"])
@pytest.mark.parametrize("point", [(1.0, 2.0), (-0.3, 0.0)])
def test_jacobians_match_torch(jac, point):
    J = jac(vec, argnums=(0, 1))(*point)
    expected = torch_jacobian(vec_torch, tuple(torch.tensor(p, **T) for p in point))
    assert len(J) == 4 and all(len(row) == 2 for row in J)
    for i in range(4):
        for j in range(2):
            assert J[i][j] == pytest.approx(expected[j][i].item(), rel=1e-13, abs=1e-15)


def test_issue_example():
    J = tg.jacobian(lambda x, y: [x * y, tg.sin(x), x + y], argnums=(0, 1))(1.0, 2.0)
    assert J == [(2.0, 1.0), (math.cos(1.0), 0.0), (1.0, 1.0)]
    H = tg.hessian(f3, argnums=(0, 1, 2))(0.1, 0.2, 0.3)
    assert tg.hvp(f3)((0.1, 0.2, 0.3), (1.0, 0.0, 0.0)) == pytest.approx([row[0] for row in H], rel=1e-14)


def test_pytree_arguments_and_outputs_nest():
    def f(p, x):
        return {"a": p["w"][0] * x, "b": [p["w"][1] * x * x]}
    J = tg.jacrev(f)({"w": [2.0, 3.0]}, 5.0)
    assert J == {"a": {"w": [5.0, 0.0]}, "b": [{"w": [0.0, 25.0]}]}
    assert tg.jacfwd(f)({"w": [2.0, 3.0]}, 5.0) == J


def test_arrays_in_and_out_give_an_array_jacobian():
    A = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    J = tg.jacfwd(lambda x: A.dot(x))(np.array([0.1, 0.2, 0.3]))
    assert isinstance(J, np.ndarray) and J.shape == (2, 3)
    np.testing.assert_array_equal(J, A)
    np.testing.assert_array_equal(tg.jacrev(lambda x: A.dot(x))(np.zeros(3)), A)


def test_hvp_matches_torch_on_rosenbrock():
    n = 6
    x = tuple(float(v) for v in np.linspace(-1.0, 1.5, n))
    v = tuple(float(v) for v in np.linspace(0.5, -0.5, n))

    def rosen_torch(x):
        return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(n - 1))
    H = torch_hessian(rosen_torch, torch.tensor(x, **T))
    expected = H @ torch.tensor(v, **T)
    assert tg.hvp(rosenbrock)(x, v) == pytest.approx(expected.tolist(), rel=1e-13)


def test_composes_with_jit_grad_and_itself():
    third = tg.grad(lambda x: tg.hessian(lambda y: y ** 4 * tg.sin(y))(x))
    torch_x = torch.tensor(0.7, **T, requires_grad=True)
    y = torch_x ** 4 * torch.sin(torch_x)
    (g,) = torch.autograd.grad(y, torch_x, create_graph=True)
    (h,) = torch.autograd.grad(g, torch_x, create_graph=True)
    (t,) = torch.autograd.grad(h, torch_x)
    assert third(0.7) == pytest.approx(t.item(), rel=1e-13)
    jitted = tg.jit(tg.jacfwd(tg.jacrev(vec, argnums=(0, 1)), argnums=0), backend="interp")
    assert jitted(1.0, 2.0) == tg.jacfwd(tg.jacrev(vec, argnums=(0, 1)))(1.0, 2.0)


def test_hessian_of_rosenbrock_has_linear_size():
    sizes = []
    for n in (10, 20, 40):
        h = tg.optimize(tg.trace(tg.hessian(rosenbrock, argnums=tuple(range(n))), *[0.0] * n))
        sizes.append(len(h.nodes))  # the n*n outputs are mostly the one constant 0.0
    assert sizes[2] - sizes[1] <= 2.2 * (sizes[1] - sizes[0])  # grows linearly, not quadratically
    assert sizes[2] < 40 * 40


def test_bad_arguments_are_clear():
    with pytest.raises(TypeError, match="takes a function"):
        tg.jacobian(3.0)
    with pytest.raises(ValueError, match="out of range"):
        tg.jacfwd(lambda x: x, argnums=2)(1.0)
    with pytest.raises(TypeError, match="hvp takes primals and tangents as tuples"):
        tg.hvp(lambda x: x * x)(1.0, 1.0)


def test_edge_values_follow_ieee():
    H = tg.hessian(lambda x: tg.sqrt(x))(0.0)
    assert H == -math.inf
    assert tg.jacfwd(lambda x: tg.log(x))(-1.0) == -1.0  # 1/x, as torch: the formula, not the domain
    assert math.isnan(tg.jacfwd(lambda x: tg.log(x) * x)(-1.0))
    assert tg.jacrev(lambda x: tg.where(x > 0.0, tg.sqrt(x), 0.0))(0.0) == 0.0
