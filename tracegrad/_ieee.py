"""Scalar float functions with IEEE-754 semantics: they return nan or inf, never raise.

CPython's ``math`` raises where IEEE returns a value (``math.log(-1)``, ``math.exp(1000)``,
``1.0 / 0.0``). Every evaluation in tracegrad (interpreter, generated Python, eager
``Value``) goes through these helpers instead.

>>> log(-1.0), exp(1000.0), div(1.0, -0.0)
(nan, inf, -inf)
"""
import math


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
        import numpy as np
        with np.errstate(all="ignore"):
            return float(np.power(np.float64(x), np.float64(y)))


def sign(x):
    if x > 0.0:
        return 1.0
    return -1.0 if x < 0.0 else 0.0




def _logarithm(fn):
    return lambda x: fn(x) if x > 0.0 else -inf if x == 0.0 else nan


def _overflowing(fn, sign):  # fn that overflows to ±inf: sign(x) gives the sign
    def guarded(x):
        try:
            return fn(x)
        except OverflowError:
            return math.copysign(inf, sign(x))
    return guarded


def _rounding(fn):  # a float, and the sign of x on a zero (floor(-0.0), ceil(-0.5) are -0.0), as in C
    return lambda x: math.copysign(float(fn(x)), x) if math.isfinite(x) else x


log, log2, log10 = _logarithm(math.log), _logarithm(math.log2), _logarithm(math.log10)
sinh = _overflowing(math.sinh, lambda x: x)
cosh, expm1 = _overflowing(math.cosh, abs), _overflowing(math.expm1, abs)
exp2 = _overflowing(getattr(math, "exp2", lambda x: math.pow(2.0, x)), abs)  # math.exp2: Python 3.11+
floor, ceil, trunc = _rounding(math.floor), _rounding(math.ceil), _rounding(math.trunc)


def tan(x):
    return nan if math.isinf(x) else math.tan(x)


def asin(x):
    return math.asin(x) if -1.0 <= x <= 1.0 else nan


def acos(x):
    return math.acos(x) if -1.0 <= x <= 1.0 else nan


def acosh(x):
    return math.acosh(x) if x >= 1.0 else nan


def atanh(x):
    if -1.0 < x < 1.0:
        return math.atanh(x)
    return math.copysign(inf, x) if abs(x) == 1.0 else nan


def fmod(x, y):
    try:
        return math.fmod(x, y)
    except ValueError:  # fmod(x, 0), fmod(inf, y)
        return nan


def copysign(x, y):
    """|x| with the sign of y, where a nan y counts as positive: the sign bit of a nan is not the
    same in every backend (0/0 is -nan on x86 hardware, +nan when LLVM folds it)."""
    return math.copysign(x, y) if y == y else abs(x)


# These never raise and are C's own functions: atan, atan2, asinh, erf, erfc, cbrt (Python
# 3.11+; None before, and the row then calls C's cbrt). hypot is C's too: CPython's
# math.hypot is its own algorithm, an ulp off C's now and then.
atan, atan2, asinh, erf, erfc = math.atan, math.atan2, math.asinh, math.erf, math.erfc
cbrt = getattr(math, "cbrt", None)
