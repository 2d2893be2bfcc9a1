"""One line per primitive: how to call it in tracegrad and in PyTorch, and where to test it.

Adding an op to ``tracegrad/ops.py`` means adding its line here.
"""
import math

import numpy as np
import torch

import tracegrad as tg

INF, NAN = math.inf, math.nan
EDGE = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -3.7, 30.0, -30.0, 700.0, -750.0, 1e-300, 1e300, INF, -INF, NAN]
_SOME = [0.0, -0.0, 1.0, -1.5, 2.0, 0.5, 3.0, INF, -INF, NAN]
PAIRS = [(x, y) for x in _SOME for y in _SOME]
SOFTPLUS_EDGE = EDGE + [-709.0, -709.79, -710.0, -800.0, -1e308, 20.0, 20.5, 36.0, 40.0]
POSITIVE = [1e-300, 0.3, 1.0, 2.0, 7.5, 1e10, 1e300]  # where log/sqrt/pow are smooth
TRIPLES = [(x, lo, hi) for x in (-2.0, 0.0, 0.5, 1.0, 3.0, NAN) for lo, hi in ((0.0, 1.0), (1.0, 0.0), (-1.0, -1.0))]
CONDS = [(c, a, b) for c in (0.0, 1.0, -0.0, NAN, 2.0) for a, b in ((1.0, 2.0), (INF, NAN), (-0.0, 0.0))]


UNIT = EDGE + [0.99, -0.999999, 1.0 - 2.0 ** -53, -1.0 + 2.0 ** -53, 1.0 + 2.0 ** -52]  # asin, atanh ...
QUOTIENTS = PAIRS + [(5.5, 2.0), (-5.5, 2.0), (5.5, -2.0), (1e300, 3.0), (7.0, 0.5), (-0.0, 3.0), (3.0, 1e-300)]


def _t(c):
    return c != 0  # tracegrad conditions are floats: true where nonzero (nan too)


class _Cbrt(torch.autograd.Function):
    """torch has no cbrt: C's value (numpy's cbrt), and the derivative 1 / (3 cbrt(x)^2) as JAX has it."""

    @staticmethod
    def forward(ctx, x):
        out = torch.tensor(np.cbrt(x.item()), dtype=torch.float64)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved_tensors
        return g / (3.0 * (out * out))


# name, tracegrad function, torch function, points
OPS = [
    ("add", lambda x, y: x + y, lambda x, y: x + y, PAIRS),
    ("sub", lambda x, y: x - y, lambda x, y: x - y, PAIRS),
    ("mul", lambda x, y: x * y, lambda x, y: x * y, PAIRS),
    ("div", lambda x, y: x / y, lambda x, y: x / y, PAIRS),
    ("neg", lambda x: -x, lambda x: -x, EDGE),
    ("powc", lambda x: x ** 3, lambda x: x ** 3, EDGE),
    ("powc_half", lambda x: x ** 0.5, lambda x: x ** 0.5, EDGE),
    ("powc_neg", lambda x: x ** -2, lambda x: x ** -2, EDGE),
    ("powc_zero", lambda x: x ** 0, lambda x: x ** 0, EDGE),
    ("pow", lambda x, y: x ** y, lambda x, y: x ** y, PAIRS),
    ("pow_positive", lambda x, y: x ** y, lambda x, y: x ** y,
     [(x, y) for x in POSITIVE for y in (-1.5, 0.0, 0.5, 2.0, 3.0)]),
    ("exp", tg.exp, torch.exp, EDGE),
    ("log", tg.log, torch.log, EDGE + POSITIVE),
    ("log1p", tg.log1p, torch.log1p, EDGE + [-0.999, -1.0 + 1e-12]),
    ("sqrt", tg.sqrt, torch.sqrt, EDGE + POSITIVE),
    ("sin", tg.sin, torch.sin, EDGE),
    ("cos", tg.cos, torch.cos, EDGE),
    ("tanh", tg.tanh, torch.tanh, EDGE),
    ("sigmoid", tg.sigmoid, torch.sigmoid, EDGE),
    # F.softplus returns x itself from its threshold (20) up: above it, logaddexp is the exact oracle;
    # below -709.78 only F.softplus's double backward is right (0; logaddexp's gives nan)
    ("softplus", tg.softplus, torch.nn.functional.softplus, [x for x in SOFTPLUS_EDGE if not x >= 20.0]),
    ("softplus_large", tg.softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x)),
     [x for x in SOFTPLUS_EDGE if x >= 20.0]),
    ("relu", tg.relu, torch.relu, EDGE),
    ("sign", tg.sign, torch.sign, EDGE),
    ("abs", tg.abs, torch.abs, EDGE),
    ("maximum", tg.maximum, torch.maximum, PAIRS),
    ("minimum", tg.minimum, torch.minimum, PAIRS),
    ("lt", lambda x, y: tg.where(x < y, 1.0, 0.0), lambda x, y: (x < y).double(), PAIRS),
    ("le", lambda x, y: tg.where(x <= y, 1.0, 0.0), lambda x, y: (x <= y).double(), PAIRS),
    ("gt", lambda x, y: x > y, lambda x, y: (x > y).double(), PAIRS),
    ("ge", lambda x, y: x >= y, lambda x, y: (x >= y).double(), PAIRS),
    ("eq", lambda x, y: x == y, lambda x, y: (x == y).double(), PAIRS),
    ("ne", lambda x, y: x != y, lambda x, y: (x != y).double(), PAIRS),
    ("where", tg.where, lambda c, a, b: torch.where(_t(c), a, b), CONDS),
    ("clamp", tg.clamp, torch.clamp, TRIPLES),
    ("tan", tg.tan, torch.tan, EDGE + [1.5707963267948966, -1.57]),
    ("asin", tg.asin, torch.asin, UNIT),
    ("acos", tg.acos, torch.acos, UNIT),
    ("atan", tg.atan, torch.atan, EDGE),
    ("atan2", tg.atan2, torch.atan2, PAIRS + [(1e-300, -1e-300), (1e300, 1e300)]),
    ("sinh", tg.sinh, torch.sinh, EDGE + [710.0, -711.0]),
    ("cosh", tg.cosh, torch.cosh, EDGE + [710.0, -711.0]),
    ("asinh", tg.asinh, torch.asinh, EDGE),
    ("acosh", tg.acosh, torch.acosh, EDGE + [1.0 + 2.0 ** -52, 1.5, 1e10]),
    ("atanh", tg.atanh, torch.atanh, UNIT),
    ("expm1", tg.expm1, torch.expm1, EDGE + [1e-10, 709.0, 710.0]),
    ("exp2", tg.exp2, torch.exp2, EDGE + [1023.5, 1024.0, -1075.0]),
    ("log2", tg.log2, torch.log2, EDGE + POSITIVE + [8.0]),
    ("log10", tg.log10, torch.log10, EDGE + POSITIVE + [1000.0]),
    ("erf", tg.erf, torch.erf, EDGE + [6.0, -27.0]),
    ("erfc", tg.erfc, torch.erfc, EDGE + [6.0, 26.0, 27.5]),
    ("hypot", tg.hypot, torch.hypot, PAIRS + [(1e300, 1e300), (3.0, 4.0), (1e-300, 1e-300)]),
    ("cbrt", tg.cbrt, _Cbrt.apply, EDGE + [8.0, -27.0]),
    ("floor", tg.floor, torch.floor, EDGE + [2.0, -2.0, 1e16 + 2]),
    ("ceil", tg.ceil, torch.ceil, EDGE + [2.0, -2.0, -0.2]),
    ("trunc", tg.trunc, torch.trunc, EDGE + [-0.2, 4.9]),
    ("copysign", tg.copysign, torch.copysign, PAIRS),
    ("fmod", tg.fmod, torch.fmod, QUOTIENTS),
]
