"""custom_vjp / custom_jvp: the rule replaces the derived one, at first and second order."""
import json
import math

import pytest
import torch

import tracegrad as tg
from tracegrad.ir import Graph


@tg.custom_vjp
def safe_norm(x, y):
    return tg.sqrt(x * x + y * y)


safe_norm.defvjp(lambda g, out, x, y: (g * x / out, g * y / out))


@tg.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda g, out, x: (tg.clamp(g, -1.0, 1.0),))


@tg.custom_jvp
def log1pexp(x):  # the JAX docs' example: the naive derivative is nan at large x
    return tg.log(1.0 + tg.exp(x))


log1pexp.defjvp(lambda primals, tangents: (log1pexp(primals[0]), (1.0 - 1.0 / (1.0 + tg.exp(primals[0]))) * tangents[0]))


def test_floats_run_the_body():
    assert safe_norm(3.0, 4.0) == 5.0
    assert clip_gradient(2.0) == 2.0


def test_first_order_uses_the_rule():
    assert tg.grad(safe_norm, argnums=(0, 1))(3.0, 4.0) == (0.6, 0.8)
    assert tg.grad(lambda x: clip_gradient(x) * 5.0)(2.0) == 1.0      # derived: 5.0
    assert tg.grad(lambda x: clip_gradient(x * x) * 5.0)(2.0) == 4.0  # the chain goes on below
    assert tg.grad(lambda x: clip_gradient(x) * 0.5)(2.0) == 0.5


def test_forward_mode_uses_the_rule():
    # forward mode reads the vjp rule's Jacobian row by row: clamp(1.0) = 1, times 5
    assert tg.jvp(lambda x: clip_gradient(x) * 5.0, (2.0,), (1.0,)) == (10.0, 5.0)
    assert tg.jacfwd(safe_norm, argnums=(0, 1))(3.0, 4.0) == (0.6, 0.8)
    assert tg.jvp(log1pexp, (1000.0,), (1.0,)) == (math.inf, 1.0)


def test_reverse_mode_of_a_jvp_rule_is_its_transpose():
    assert tg.grad(log1pexp)(1000.0) == 1.0
    naive = tg.grad(lambda x: tg.log(1.0 + tg.exp(x)))(1000.0)
    assert math.isnan(naive)


def test_second_order_differentiates_the_rule():
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    expected = torch.autograd.functional.hessian(lambda v: torch.sqrt(v[0] ** 2 + v[1] ** 2), x)
    H = tg.hessian(safe_norm, argnums=(0, 1))(3.0, 4.0)
    assert [*H[0], *H[1]] == pytest.approx(expected.flatten().tolist(), rel=1e-14)
    assert tg.grad(tg.grad(safe_norm))(3.0, 4.0) == pytest.approx(16 / 125, rel=1e-14)
    # a rule that is not the derivative shows at second order: d/dx of clamp(g) is 0
    assert tg.grad(tg.grad(lambda x: clip_gradient(x * x) * 5.0))(2.0) == 2.0


def test_rule_survives_jit_replay_and_json():
    inner = tg.jit(lambda z: clip_gradient(z) * 5.0)
    assert tg.grad(lambda x: inner(x))(2.0) == 1.0
    g = tg.trace(lambda x: clip_gradient(x) * 5.0, 1.0)
    assert len(g.custom) == 1 and "custom_vjp" in str(g)
    again = Graph.from_json(g.to_json())
    assert again == g and json.loads(g.to_json())["custom"][0][0] == "vjp"


def test_pytree_arguments():
    @tg.custom_vjp
    def dot(p, x):
        return p["w"][0] * x + p["w"][1]
    dot.defvjp(lambda g, out, p, x: ({"w": [2.0 * g * x, g]}, None))
    assert tg.grad(dot)({"w": [1.0, 2.0]}, 3.0) == {"w": [6.0, 1.0]}
    assert tg.grad(dot, argnums=1)({"w": [1.0, 2.0]}, 3.0) == 0.0


def test_unused_input_and_several_outputs():
    @tg.custom_vjp
    def pair(x, y):
        return x * 2.0, x * 3.0
    pair.defvjp(lambda g, out, x, y: (g[0] + g[1], 7.0 * g[0]))
    assert tg.grad(lambda x, y: pair(x, y)[0], argnums=(0, 1))(1.0, 1.0) == (1.0, 7.0)
    assert tg.grad(lambda x, y: pair(x, y)[1], argnums=(0, 1))(1.0, 1.0) == (1.0, 0.0)
    assert tg.jacfwd(lambda x, y: list(pair(x, y)), argnums=(0, 1))(1.0, 1.0) == [(1.0, 7.0), (1.0, 0.0)]


def test_errors_say_what_to_do():
    nameless = tg.custom_vjp(lambda x: x)
    with pytest.raises(TypeError, match=r"defvjp\(rule\)"):
        tg.grad(nameless)(1.0)
    bad = tg.custom_vjp(lambda x, y: x * y)
    bad.defvjp(lambda g, out, x, y: g)
    with pytest.raises(TypeError, match="one cotangent per argument"):
        tg.grad(bad)(1.0, 2.0)
    with pytest.raises(TypeError, match="takes a function"):
        tg.custom_jvp(3.0)

    def outer(x):
        closes = tg.custom_vjp(lambda y: y * x)
        closes.defvjp(lambda g, out, y: (g,))
        return closes(x)
    with pytest.raises(tg.TracingError, match="pass that value as an argument"):
        tg.grad(outer)(1.0)


# ---------------------------------------------------------------- a body that returns an input

@tg.custom_vjp
def stop_gradient(x):
    return x


stop_gradient.defvjp(lambda g, out, x: (None,))


@tg.custom_jvp
def stop_gradient_fwd(x):
    return x


stop_gradient_fwd.defjvp(lambda primals, tangents: (primals[0], 0.0))


@tg.custom_vjp
def straight_through_sin(x):  # the body is sin(x), the same node as the caller's own sin(x)
    return tg.sin(x)


straight_through_sin.defvjp(lambda g, out, x: (g,))


def _torch_grads(f, x, order):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = f(t)
    grads = []
    for _ in range(order):
        y = torch.autograd.grad(y, t, create_graph=True)[0] if y.requires_grad else torch.zeros(())
        grads.append(y.item())
    return grads


class _TorchClip(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g.clamp(-1.0, 1.0)


# (tracegrad function, the same in torch): the rule is for the custom function's output only,
# every other use of its input differentiates as usual (JAX: grad(x + stop_gradient(x))(1.0) = 1.0)
ONLY_THE_OUTPUT = [
    (lambda x: x + stop_gradient(x), lambda x: x + x.detach()),
    (lambda x: x + stop_gradient_fwd(x), lambda x: x + x.detach()),
    (lambda x: 10.0 * x + clip_gradient(x), lambda x: 10.0 * x + _TorchClip.apply(x)),
    (lambda x: x * x * stop_gradient(x) + tg.sin(x), lambda x: x * x * x.detach() + torch.sin(x)),
    (lambda x: stop_gradient(x) * stop_gradient(x) * x, lambda x: x.detach() * x.detach() * x),
    (lambda x: tg.sin(x) * 3.0 + straight_through_sin(x), lambda x: torch.sin(x) * 3.0 + torch.sin(x).detach() + x - x.detach()),
    (lambda x: stop_gradient(stop_gradient(x) * x) + x * x, lambda x: (x.detach() * x).detach() + x * x),
]


@pytest.mark.parametrize("backend", ["interp", "python", "llvm", "numba", "sympy"])
@pytest.mark.parametrize("case", range(len(ONLY_THE_OUTPUT)))
def test_rule_applies_to_the_output_only_not_to_other_uses_of_the_input(case, backend):
    f, torch_f = ONLY_THE_OUTPUT[case]
    for x in (0.5, 2.0):
        d1, d2 = _torch_grads(torch_f, x, 2)
        assert tg.grad(f, backend=backend)(x) == pytest.approx(d1, rel=1e-14)
        assert tg.grad(tg.grad(f), backend=backend)(x) == pytest.approx(d2, rel=1e-14, abs=1e-15)
        assert tg.jvp(f, (x,), (1.0,))[1] == pytest.approx(d1, rel=1e-14)
        assert tg.jacfwd(tg.grad(f), backend=backend)(x) == pytest.approx(d2, rel=1e-14, abs=1e-15)
        assert tg.hessian(f, backend=backend)(x) == pytest.approx(d2, rel=1e-14, abs=1e-15)
        loaded = Graph.from_json(tg.trace(f, x).to_json())
        assert tg.grad(lambda z: tg.ir.evaluate(loaded, [z])[0], backend=backend)(x) == pytest.approx(d1, rel=1e-14)


def test_exact_values_of_the_issue():
    assert tg.grad(lambda x: x + stop_gradient(x))(1.0) == 1.0
    assert tg.grad(lambda x: 10.0 * x + clip_gradient(x))(1.0) == 11.0
    assert tg.jvp(lambda x: x + stop_gradient(x), (1.0,), (1.0,)) == (2.0, 1.0)
    assert tg.jvp(lambda x: 10.0 * x + clip_gradient(x), (1.0,), (1.0,)) == (11.0, 11.0)


def test_a_constant_body_takes_the_rule():
    @tg.custom_vjp
    def one(x):  # JAX gives the rule's cotangent too
        return 1.0
    one.defvjp(lambda g, out, x: (3.0 * g,))
    assert tg.grad(lambda x: one(x) * x)(2.0) == 7.0  # 3 * x + 1
    assert tg.jvp(lambda x: one(x) * x, (2.0,), (1.0,)) == (2.0, 7.0)


def test_passes_keep_a_returned_input_apart():
    from tracegrad.transforms.passes import optimize
    graph = optimize(tg.trace(lambda x: x + stop_gradient(x) * 1.0 + 0.0, 1.0))
    assert graph.verify() is graph and len(graph.custom) == 1
    assert tg.grad(lambda x: tg.ir.evaluate(graph, [x])[0])(1.0) == 1.0
