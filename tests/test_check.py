"""check_grads: passes on correct derivatives, fails with a report naming the argument."""
import math

import pytest

import tracegrad as tg


def f(x, y, z):
    return tg.exp(x * y) * tg.sin(z) + x ** 2 * y


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("modes", [("rev", "fwd"), ("rev",), ("fwd",)])
def test_correct_derivatives_pass(order, modes):
    assert tg.check_grads(f, (0.1, 0.2, 0.3), order=order, modes=modes) is None


def test_pytrees_and_several_outputs_pass():
    def g(p, x):
        return [p["w"][0] * tg.tanh(x), p["w"][1] / (1.0 + x * x)]
    tg.check_grads(g, ({"w": [0.5, -2.0]}, 0.3), order=2)


def _wrong_first_derivative():
    bad = tg.custom_vjp(lambda a, b: a * b)
    bad.defvjp(lambda g, out, a, b: (g * b, g * a * 2.0))  # d/db is off by a factor of 2
    return bad


def test_wrong_rule_is_reported_with_argument_and_values():
    with pytest.raises(AssertionError) as info:
        tg.check_grads(_wrong_first_derivative(), (3.0, 4.0), modes=("rev",))
    message = str(info.value)
    assert "order 1" in message and "a=3.0, b=4.0" in message
    assert "d out[0] / d b: rev=6.0 numeric=2.99999" in message
    assert "/ d a" not in message  # the correct entry is not listed


def test_wrong_second_derivative_is_reported_at_order_2_only():
    identity = tg.custom_vjp(lambda x: x)
    identity.defvjp(lambda g, out, x: (3.0 * g,))  # wrong, but only seen through square's rule

    @tg.custom_vjp
    def square(x):
        return x * x
    square.defvjp(lambda g, out, x: (g * 2.0 * identity(x),))  # right value, wrong derivative
    tg.check_grads(lambda x: square(x) * x, (0.7,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match=r"order 2 .*\n  d \(d out\[0\] / d x\) / d x: rev="):
        tg.check_grads(lambda x: square(x) * x, (0.7,), order=2, modes=("rev",))


def test_modes_disagreeing_with_each_other_fail():
    # a nonlinear vjp rule gives a different forward-mode row: the modes disagree
    clip = tg.custom_vjp(lambda x: x)
    clip.defvjp(lambda g, out, x: (tg.clamp(g, -1.0, 1.0),))
    with pytest.raises(AssertionError, match=r"rev=1.0 fwd=5.0"):
        tg.check_grads(lambda x: clip(x) * 5.0, (2.0,))


def test_nan_matches_nan_only():
    tg.check_grads(lambda x: tg.sqrt(x), (-1.0,))
    with pytest.raises(AssertionError):
        tg.check_grads(lambda x: tg.where(x > 0.0, x, math.nan * x), (1e-7,), eps=1e-6)


def test_tolerances_and_step_are_used():
    tg.check_grads(lambda x: tg.exp(x), (10.0,), atol=0.0, rtol=1e-8)
    with pytest.raises(AssertionError):
        tg.check_grads(lambda x: tg.exp(x), (10.0,), atol=0.0, rtol=1e-8, eps=1e-2)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(order=3), ValueError, "order must be 1 or 2"),
    (dict(modes=("backward",)), ValueError, "modes must be"),
    (dict(modes=()), ValueError, "modes must be"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        tg.check_grads(f, (0.1, 0.2, 0.3), **kwargs)


def test_args_must_be_a_tuple():
    with pytest.raises(TypeError, match="as a tuple"):
        tg.check_grads(f, 0.1)
