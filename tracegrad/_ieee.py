"""Scalar float functions with IEEE-754 semantics: they return nan or inf, never raise.

CPython's ``math`` raises where IEEE returns a value (``math.log(-1)``, ``math.exp(1000)``,
``1.0 / 0.0``). Every evaluation in tracegrad (interpreter, generated Python, eager
``Value``) goes through these helpers instead.

>>> log(-1.0), exp(1000.0), div(1.0, -0.0)
(nan, inf, -inf)
"""
import math

import numpy as np

inf = math.inf
nan = math.nan
_EXP_MAX = 709.782712893384  # largest x with a finite exp(x)


def div(x, y):
    if y == 0.0:
        if x == 0.0 or x != x:
            return nan
        return math.copysign(inf, x) * math.copysign(1.0, y)
    return x / y


def exp(x):
    return inf if x > _EXP_MAX else math.exp(x)


def log(x):
    if x > 0.0:
        return math.log(x)
    return -inf if x == 0.0 else nan


def log1p(x):
    if x > -1.0:
        return math.log1p(x)
    return -inf if x == -1.0 else nan


def sqrt(x):
    return math.sqrt(x) if x >= 0.0 else nan


def sin(x):
    return nan if math.isinf(x) else math.sin(x)


def cos(x):
    return nan if math.isinf(x) else math.cos(x)


def tanh(x):
    return math.tanh(x)


def pow(x, y):
    try:
        return math.pow(x, y)
    except (OverflowError, ValueError):
        with np.errstate(all="ignore"):
            return float(np.power(np.float64(x), np.float64(y)))


def sign(x):
    if x > 0.0:
        return 1.0
    return -1.0 if x < 0.0 else 0.0

