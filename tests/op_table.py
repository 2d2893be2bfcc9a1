"""One line per primitive: how to call it in tracegrad and in PyTorch, and where to test it.

Adding an op to ``tracegrad/ops.py`` means adding its line here.
"""
import math

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


def _t(c):
    return c != 0  # tracegrad conditions are floats: true where nonzero (nan too)


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
]
