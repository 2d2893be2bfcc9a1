"""The table of primitives: one ``defop`` row per scalar operation, with every facet.

Each row gives an op's name and arity, its evaluation on floats (IEEE, never raising),
its vjp rule, its sympy counterpart, its Python source template, and optionally a
jvp rule, an integer-free parameter (``powc``'s exponent) and a *lowering* into simpler
primitives for backends that only implement the core. Rules are written with the
functions of this module, so one rule serves floats (eager ``Value``), tracers
(adjoint IR) and, by tracing the rule itself, higher derivatives.

``bind(op, *args)`` applies an op to floats or to boxed values: a type that defines
``_tg_bind(op, args, param)`` and a ``_tg_level`` (tracers, ``Value``) takes over; the
method is called on the ``innermost`` of the arguments.

>>> import tracegrad as tg
>>> tg.exp(0.0), tg.maximum(1.0, 2.0), tg.where(0.0, 1.0, 2.0)
(1.0, 2.0, 2.0)
"""
import inspect
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import _ieee


@dataclass(frozen=True)
class Op:
    """One primitive: see the module docstring for the meaning of each facet."""

    name: str
    arity: int
    eval: Callable
    vjp: Callable
    sympy: Callable
    source: str
    jvp: Optional[Callable] = None
    has_param: bool = False
    lower: Optional[Callable] = None
    commutative: bool = False
    infix: Optional[str] = None
    prefix: Optional[str] = None
    compare: Optional[str] = None
    select: bool = False
    symbol: Optional[str] = None
    address: Optional[int] = None
    builtin: bool = True

    @property
    def ident(self):
        return self.name

    def __repr__(self):
        return f"Op({self.name})"


TABLE: dict = {}


def defop(name, arity, eval, vjp, sympy, source=None, **facets):
    """Add a primitive to the table and return it."""
    if source is None:
        holes = ", ".join(f"{{{i}}}" for i in range(arity))
        source = f"{name}({holes}, {{p}})" if facets.get("has_param") else f"{name}({holes})"
    op = Op(name, arity, eval, vjp, sympy, source, **facets)
    TABLE[name] = op
    return op


# ---------------------------------------------------------------- binding

def to_float(x):
    """Coerce a Python or numpy real number to float; anything else is a TypeError."""
    if type(x) is float:
        return x
    if isinstance(x, (numbers.Real, np.number)) and not isinstance(x, (np.complexfloating, complex)):
        try:
            return float(x)
        except OverflowError:
            raise ValueError(f"the integer {x} is too large for a float64") from None
    raise TypeError(
        f"tracegrad works on real numbers, got {type(x).__name__} {x!r}; "
        "pass a float, an int or a numpy real scalar")


def innermost(values):
    """The boxed value of the deepest level among ``values`` (the first on a tie), or None."""
    box = None
    for a in values:
        if type(a) is not float:
            level = getattr(a, "_tg_level", None)
            if level is not None and (box is None or level > box._tg_level):
                box = a
    return box


def bind(op, *args, param=None):
    """Apply ``op`` to floats or to boxed values (tracers, ``Value``)."""
    box = innermost(args)
    if box is not None:
        return box._tg_bind(op, args, param)
    floats = [to_float(a) for a in args]
    return op.eval(*floats, param) if op.has_param else op.eval(*floats)


class Masked:
    """A cotangent that only exists where ``cond`` holds (the chosen side of a ``where``).

    The reverse-mode transform carries the mask down to the inputs, so a nan or inf
    on the side not taken never multiplies into the gradient.
    """

    __slots__ = ("cond", "value", "negate")

    def __init__(self, cond, value, negate):
        self.cond, self.value, self.negate = cond, value, negate


def masked(cond, g, negate=False):
    """The cotangent ``g`` where ``cond`` (or, with ``negate``, its negation) holds, else a strong zero."""
    if getattr(cond, "_tg_level", None) is None:
        return g if bool(to_float(cond)) != negate else None
    return Masked(cond, g, negate)


def derived_jvp(op):
    """Forward mode from reverse mode: a scalar op's vjp is linear in the cotangent."""
    def jvp(tangents, out, *args):
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            term = op.vjp(t, out, *args)[i]
            if term is not None:
                total = term if total is None else total + term
        return total
    return jvp


def jvp_rule(op):
    return op.jvp or derived_jvp(op)


_EXAMPLE_ARGS = {1: (0.5,), 2: (0.5, 2.0), 3: (1.0, 2.0, 3.0)}
_PARAMETERS = {1: ("x",), 2: ("x", "y"), "where": ("cond", "a", "b"), "clamp": ("x", "lo", "hi")}


def _function(op, summary="", example=None):
    """The function of ``op`` (``tg.exp`` ...), with a docstring whose example is evaluated now.

    Without a ``summary`` it is an internal function, used by the rules (``div``, ``lt`` ...).
    """
    def fn(*args):
        return bind(op, *args)
    args = example or _EXAMPLE_ARGS[op.arity]
    call = f"{op.name}({', '.join(map(repr, args))})"
    setup = "import tracegrad as tg" if summary else f"from tracegrad.ops import {op.name}"
    call = f"tg.{call}" if summary else call
    fn.__name__ = fn.__qualname__ = op.name
    names = _PARAMETERS.get(op.name) or _PARAMETERS[op.arity]
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in names])
    fn.__doc__ = (f"{summary or 'The op ' + repr(op.name) + ' of the table.'}\n\nWorks on floats, traced values "
                  f"and ``Value``s; IEEE results, never raises.\n\n>>> {setup}\n>>> {call}\n{op.eval(*args)!r}\n")
    return fn


def _compare(name, test, sympy_rel, symbol):
    return defop(
        name, 2, lambda x, y: 1.0 if test(x, y) else 0.0,
        vjp=lambda g, out, x, y: (None, None),
        sympy=lambda sp, x, y: sp.Piecewise((1.0, sympy_rel(sp)(x, y)), (0.0, True)),
        source=f"(1.0 if {{0}} {symbol} {{1}} else 0.0)")


# ---------------------------------------------------------------- the table
# Rules mirror PyTorch's derivative formulas (tools/autograd/derivatives.yaml), in
# the same order of operations, so that results agree bit for bit where they can.

ADD = defop("add", 2, lambda x, y: x + y, commutative=True,
            vjp=lambda g, out, x, y: (g, g),
            sympy=lambda sp, x, y: x + y, source="{0} + {1}")
SUB = defop("sub", 2, lambda x, y: x - y,
            vjp=lambda g, out, x, y: (g, -g),
            sympy=lambda sp, x, y: x - y, source="{0} - {1}")
MUL = defop("mul", 2, lambda x, y: x * y, commutative=True,
            vjp=lambda g, out, x, y: (g * y, g * x),
            sympy=lambda sp, x, y: x * y, source="{0} * {1}")
DIV = defop("div", 2, _ieee.div,
            vjp=lambda g, out, x, y: (div(g, y), -g * div(out, y)),
            sympy=lambda sp, x, y: x / y)
NEG = defop("neg", 1, lambda x: -x,
            vjp=lambda g, out, x: (-g,),
            sympy=lambda sp, x: -x, source="-{0}")
def _powc(x, p):
    """``x ** p`` for a constant p, as PyTorch computes it: p = 0.5 is sqrt, p = 2 is x*x, ..."""
    if p == 2.0:
        return x * x
    if p == 3.0:
        return x * x * x
    if p == 0.5:
        return sqrt(x)
    if p == -0.5:
        return div(1.0, sqrt(x))
    if p == -1.0:
        return div(1.0, x)
    if p == -2.0:
        return div(1.0, x * x)
    return bind(POW, x, p)


POWC = defop("powc", 1, _powc, has_param=True,  # x ** p, p a constant
             vjp=lambda g, out, x, p: (None,) if p == 0.0 else (g * (p * bind(POWC, x, param=p - 1.0)),),
             sympy=lambda sp, x, p: x ** (sp.Integer(int(p)) if p.is_integer() else sp.Float(p)),
             jvp=lambda ts, out, x, p: None if p == 0.0 else ts[0] * (p * bind(POWC, x, param=p - 1.0)),
             lower=_powc)
POW = defop("pow", 2, _ieee.pow,  # x ** y, both traced
            vjp=lambda g, out, x, y: (
                where(y == 0.0, 0.0, g * (y * pow(x, y - 1.0))),
                g * where((x == 0.0) * (y >= 0.0), 0.0, out * log(x))),
            sympy=lambda sp, x, y: x ** y)
EXP = defop("exp", 1, _ieee.exp,
            vjp=lambda g, out, x: (g * out,), sympy=lambda sp, x: sp.exp(x))
LOG = defop("log", 1, _ieee.log,
            vjp=lambda g, out, x: (div(g, x),), sympy=lambda sp, x: sp.log(x))
LOG1P = defop("log1p", 1, _ieee.log1p,
              vjp=lambda g, out, x: (div(g, x + 1.0),),
              sympy=lambda sp, x: sp.codegen.cfunctions.log1p(x))  # accurate when lambdified
SQRT = defop("sqrt", 1, _ieee.sqrt,
             vjp=lambda g, out, x: (div(g, 2.0 * out),), sympy=lambda sp, x: sp.sqrt(x))
SIN = defop("sin", 1, _ieee.sin,
            vjp=lambda g, out, x: (g * cos(x),), sympy=lambda sp, x: sp.sin(x))
COS = defop("cos", 1, _ieee.cos,
            vjp=lambda g, out, x: (g * -sin(x),), sympy=lambda sp, x: sp.cos(x))
TANH = defop("tanh", 1, _ieee.tanh,
             vjp=lambda g, out, x: (g * (1.0 - out * out),), sympy=lambda sp, x: sp.tanh(x))
SIGMOID = defop("sigmoid", 1, lambda x: 1.0 / (1.0 + _ieee.exp(-x)),  # never overflows: 1/inf = 0
                vjp=lambda g, out, x: ((g * (1.0 - out)) * out,),
                sympy=lambda sp, x: 1 / (1 + sp.exp(-x)),
                lower=lambda x: div(1.0, 1.0 + exp(-x)))
SOFTPLUS = defop("softplus", 1,  # log(1 + exp(x)), stable: as torch.logaddexp(x, 0)
                 lambda x: x if x != x else max(x, 0.0) + _ieee.log1p(_ieee.exp(-abs(x))),
                 # softplus' = sigmoid = exp(-softplus(-x)): no derivative of this overflows (0 * inf),
                 # so softplus'' = sigmoid(x) sigmoid(-x) is 0 below -709.78 and accurate above 20
                 vjp=lambda g, out, x: (g * exp(-softplus(-x)),),
                 sympy=lambda sp, x: sp.log(1 + sp.exp(x)),
                 lower=lambda x: maximum(x, 0.0) + log1p(exp(-abs(x))))
RELU = defop("relu", 1, lambda x: 0.0 if x < 0.0 else x,  # relu(-0.0) = -0.0, relu(nan) = nan
             vjp=lambda g, out, x: (where(out <= 0.0, 0.0, g),),  # relu'(0) = 0
             sympy=lambda sp, x: sp.Max(x, 0),
             lower=lambda x: where(x < 0.0, 0.0, x))
SIGN = defop("sign", 1, _ieee.sign,  # sign(0) = sign(nan) = 0, as PyTorch
             vjp=lambda g, out, x: (None,), sympy=lambda sp, x: sp.sign(x),
             lower=lambda x: where(x > 0.0, 1.0, where(x < 0.0, -1.0, 0.0)))
ABS = defop("abs", 1, abs,
            vjp=lambda g, out, x: (g * sign(x),),  # abs'(0) = 0
            sympy=lambda sp, x: sp.Abs(x))
MAXIMUM = defop("maximum", 2, lambda x, y: x if x >= y or x != x else y,  # nan wins; ties: x
                vjp=lambda g, out, x, y: (where(x < y, 0.0, where(x == y, g * 0.5, g)),
                                          where(x > y, 0.0, where(x == y, g * 0.5, g))),
                sympy=lambda sp, x, y: sp.Max(x, y),
                lower=lambda x, y: where(x != x, x, where(x >= y, x, y)))
MINIMUM = defop("minimum", 2, lambda x, y: x if x <= y or x != x else y,
                vjp=lambda g, out, x, y: (where(x > y, 0.0, where(x == y, g * 0.5, g)),
                                          where(x < y, 0.0, where(x == y, g * 0.5, g))),
                sympy=lambda sp, x, y: sp.Min(x, y),
                lower=lambda x, y: where(x != x, x, where(x <= y, x, y)))
LT = _compare("lt", lambda x, y: x < y, lambda sp: sp.StrictLessThan, "<")
LE = _compare("le", lambda x, y: x <= y, lambda sp: sp.LessThan, "<=")
GT = _compare("gt", lambda x, y: x > y, lambda sp: sp.StrictGreaterThan, ">")
GE = _compare("ge", lambda x, y: x >= y, lambda sp: sp.GreaterThan, ">=")
EQ = _compare("eq", lambda x, y: x == y, lambda sp: sp.Eq, "==")
NE = _compare("ne", lambda x, y: x != y, lambda sp: sp.Ne, "!=")
WHERE = defop("where", 3, lambda c, x, y: x if c else y,  # c is true where nonzero (nan too)
              vjp=lambda g, out, c, x, y: (None, masked(c, g), masked(c, g, negate=True)),
              jvp=lambda ts, out, c, x, y: None if ts[1] is None and ts[2] is None else where(
                  c, 0.0 if ts[1] is None else ts[1], 0.0 if ts[2] is None else ts[2]),
              sympy=lambda sp, c, x, y: sp.Piecewise((x, sp.Ne(c, 0)), (y, True)),
              source="({1} if {0} else {2})")
CLAMP = defop("clamp", 3,  # as torch.clamp(x, lo, hi): min(max(x, lo), hi), so hi wins if lo > hi
              lambda x, lo, hi: TABLE["minimum"].eval(TABLE["maximum"].eval(x, lo), hi),
              vjp=lambda g, out, x, lo, hi: (
                  where((x >= lo) * (x <= hi), g, 0.0),   # '*' of 0/1 flags: and
                  where((x < lo) * (lo < hi), g, 0.0),
                  where((x > hi) + (hi < lo), g, 0.0)),  # '+' of 0/1 flags: or
              sympy=lambda sp, x, lo, hi: sp.Min(sp.Max(x, lo), hi),
              lower=lambda x, lo, hi: minimum(maximum(x, lo), hi))

# TEMPORARY (the rows branch gives each row its form)
import dataclasses as _dc
for _n, _f in [("add", dict(infix="+")), ("sub", dict(infix="-")), ("mul", dict(infix="*")), ("div", dict(infix="/")),
               ("neg", dict(prefix="-")), ("pow", dict(symbol="pow")), ("exp", dict(symbol="exp")),
               ("log", dict(symbol="log")), ("log1p", dict(symbol="log1p")), ("sqrt", dict(symbol="sqrt")),
               ("sin", dict(symbol="sin")), ("cos", dict(symbol="cos")), ("tanh", dict(symbol="tanh")),
               ("abs", dict(symbol="fabs")), ("where", dict(select=True)), ("lt", dict(compare="<")),
               ("le", dict(compare="<=")), ("gt", dict(compare=">")), ("ge", dict(compare=">=")),
               ("eq", dict(compare="==")), ("ne", dict(compare="!="))]:
    for _k, _v in _f.items():
        object.__setattr__(TABLE[_n], _k, _v)


def native(op):
    return bool(op.infix or op.prefix or op.compare or op.select or op.symbol or op.address)


# The public math functions: tg.exp(x) works on floats, tracers and Values alike.
add, sub, mul, div, neg = map(_function, (ADD, SUB, MUL, DIV, NEG))
exp = _function(EXP, "e to the power x.")
log = _function(LOG, "Natural logarithm: nan below 0, -inf at 0.")
log1p = _function(LOG1P, "log(1 + x), accurate for small x.")
sqrt = _function(SQRT, "Square root: nan below 0; sqrt(-0.0) is -0.0.")
sin = _function(SIN, "Sine (radians): nan at ±inf.")
cos = _function(COS, "Cosine (radians): nan at ±inf.")
tanh = _function(TANH, "Hyperbolic tangent; its derivative reuses the output: 1 - tanh(x)**2.")
sigmoid = _function(SIGMOID, "Logistic sigmoid 1 / (1 + exp(-x)), never overflowing.")
softplus = _function(SOFTPLUS, "log(1 + exp(x)), computed stably as max(x, 0) + log1p(exp(-|x|)).")
relu = _function(RELU, "max(x, 0); relu'(0) = 0 as in PyTorch.", (-0.5,))
sign = _function(SIGN, "-1, 0 or 1 (0 for nan, as PyTorch); its derivative is 0.", (-0.5,))
abs_ = _function(ABS, "Absolute value; abs'(0) = 0 as in PyTorch.", (-0.5,))
maximum = _function(MAXIMUM, "The larger of x and y; nan if either is nan; ties split the gradient evenly.")
minimum = _function(MINIMUM, "The smaller of x and y; nan if either is nan; ties split the gradient evenly.")
where = _function(WHERE, "a where cond is nonzero (nan counts as true), else b: ``where(cond, a, b)``.\n\n"
                  "The branch not taken gets a strong-zero gradient, so a nan or inf there never\n"
                  "reaches the result's gradient. Use it instead of ``if`` on traced values.")
clamp = _function(CLAMP, "min(max(x, lo), hi) as torch.clamp: ``clamp(x, lo, hi)``; hi wins if lo > hi.",
                  (1.5, 0.0, 1.0))
lt, le, gt, ge, eq, ne = map(_function, (LT, LE, GT, GE, EQ, NE))


def pow(x, y):
    """``x ** y``; a constant exponent records ``powc``, a traced one ``pow``.

    >>> pow(2.0, 3)
    8.0
    """
    if isinstance(y, np.ndarray):  # x ** array: each element as below
        return np.frompyfunc(pow, 2, 1)(x, y)
    if getattr(y, "_tg_level", None) is None:
        return bind(POWC, x, param=to_float(y))
    return bind(POW, x, y)


class Arithmetic:
    """Operators and micrograd-style methods shared by tracers and ``Value``."""

    __slots__ = ()
    __array_priority__ = 1000  # np.float64(2) * x defers to x.__rmul__

    def __add__(self, other): return bind(ADD, self, other)
    def __radd__(self, other): return bind(ADD, other, self)
    def __sub__(self, other): return bind(SUB, self, other)
    def __rsub__(self, other): return bind(SUB, other, self)
    def __mul__(self, other): return bind(MUL, self, other)
    def __rmul__(self, other): return bind(MUL, other, self)
    def __truediv__(self, other): return bind(DIV, self, other)
    def __rtruediv__(self, other): return bind(DIV, other, self)
    def __pow__(self, other): return pow(self, other)
    def __rpow__(self, other): return bind(POW, other, self)
    def __neg__(self): return bind(NEG, self)
    def __pos__(self): return self
    def __abs__(self): return bind(ABS, self)

    def exp(self): return bind(EXP, self)
    def log(self): return bind(LOG, self)
    def log1p(self): return bind(LOG1P, self)
    def sqrt(self): return bind(SQRT, self)
    def sin(self): return bind(SIN, self)
    def cos(self): return bind(COS, self)
    def tanh(self): return bind(TANH, self)
    def sigmoid(self): return bind(SIGMOID, self)
    def softplus(self): return bind(SOFTPLUS, self)
    def relu(self): return bind(RELU, self)
    def abs(self): return bind(ABS, self)
    def clamp(self, lo, hi): return bind(CLAMP, self, lo, hi)
