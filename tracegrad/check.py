"""``check_grads``: compare reverse mode, forward mode and central differences.

>>> import tracegrad as tg
>>> tg.check_grads(lambda x, y: tg.sin(x) * y, (0.3, 2.0), order=2)
"""
import math

from .api import jit
from .errors import check_arguments
from .derivatives import jacfwd, jacrev
from .pytree import flatten, leaf_names, unflatten
from .tracing import parameter_names

_MODES = {"rev": jacrev, "fwd": jacfwd}


def check_grads(fn, args, order=1, modes=("rev", "fwd"), atol=1e-6, rtol=1e-5, eps=1e-6):
    """Check ``fn``'s derivatives at ``args`` up to ``order`` (1 or 2); raise ``AssertionError`` if off.

    Every entry of the Jacobian (and, for order 2, of the Jacobian of the
    Jacobian) is computed in each of ``modes`` and by central differences with
    step ``eps``; entries must agree within ``atol + rtol * |numeric|``, and the
    modes with each other. The error message names the output and the argument
    leaf (``w_0``, ``b`` ...) and shows the analytic against the numeric values.

    >>> import tracegrad as tg
    >>> wrong = tg.custom_jvp(lambda x: x * x)
    >>> wrong.defjvp(lambda primals, tangents: (primals[0] ** 2, tangents[0] * 3.0))
    >>> tg.check_grads(wrong, (1.0,))
    Traceback (most recent call last):
    ...
    AssertionError: check_grads: derivatives of order 1 disagree at x=1.0:
      d out[0] / d x: rev=3.0 fwd=3.0 numeric=2.000000000002
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    unknown = [m for m in modes if m not in _MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of ('rev', 'fwd'), got {modes!r}")
    if not isinstance(args, (tuple, list)):
        raise TypeError("check_grads takes the arguments as a tuple: tg.check_grads(f, (x, y))")
    check_arguments(fn, tuple(args))
    leaves, tree = flatten(tuple(args))
    names = leaf_names(tree[1], parameter_names(fn, len(args)))

    def flat(*xs):
        return flatten(fn(*unflatten(tree, xs)))[0]

    point = ", ".join(f"{n}={x!r}" for n, x in zip(names, leaves))
    outputs = None
    for k in range(1, order + 1):
        outputs = _check(flat, [float(x) for x in leaves], names, outputs, modes, atol, rtol, eps,
                         f"derivatives of order {k} disagree at {point}")
        flat = _jacobian_leaves(flat, len(leaves))


def _jacobian_leaves(flat, n):
    jac = jacrev(flat, argnums=tuple(range(n)))
    return lambda *xs: flatten(jac(*xs))[0]


def _check(flat, x, names, out_names, modes, atol, rtol, eps, title):
    n = len(x)
    f = jit(flat)
    numeric = []  # numeric[i][j]: d out_j / d x_i
    for i in range(n):
        up, down = list(x), list(x)
        up[i] += eps
        down[i] -= eps
        numeric.append([(a - b) / (2 * eps) for a, b in zip(f(*up), f(*down))])
    m = len(numeric[0]) if numeric else 0
    out_names = out_names or [f"out[{j}]" for j in range(m)]
    analytic = {mode: flatten(_MODES[mode](flat, argnums=tuple(range(n)))(*x))[0] for mode in modes}
    lines = []
    for j in range(m):
        for i in range(n):
            values = {mode: analytic[mode][j * n + i] for mode in modes}
            close = all(_close(v, numeric[i][j], atol, rtol) for v in values.values())
            close = close and all(_close(v, values[modes[0]], atol, rtol) for v in values.values())
            if not close:
                shown = " ".join(f"{mode}={v!r}" for mode, v in values.items())
                lines.append(f"  d {out_names[j]} / d {names[i]}: {shown} numeric={numeric[i][j]!r}")
    if lines:
        raise AssertionError(f"check_grads: {title}:\n" + "\n".join(lines))
    return [f"(d {o} / d {name})" for o in out_names for name in names]


def _close(a, b, atol, rtol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= atol + rtol * abs(b)


__all__ = ["check_grads"]
