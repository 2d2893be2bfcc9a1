"""The table of primitives: one ``defop`` row per scalar operation, with every facet.

A row gives an op's name and arity, its evaluation on floats (IEEE, never raising), its
vjp rule (optionally a jvp rule), its sympy counterpart, and *how compiled code computes
it*, its form: an infix, prefix or compare operator, a select, a C function of doubles
(``symbol`` in libm, or a user's ``address``), or else a ``lower`` rule composing other
ops. Backends derive their code from the form; there is no list of op names outside this
module. Rules are written with the functions of this module, so one rule serves floats
(eager ``Value``), tracers (adjoint IR) and, by tracing the rule itself, higher
derivatives. ``tg.defop`` is public: users add their own primitives the same way.
A row's ``numpy`` facet names the numpy ufuncs that compute it: ``np.arctan2(y, x)`` on
traced values or Values records ``atan2`` (see ``Arithmetic.__array_ufunc__``).

``bind(op, *args)`` applies an op to floats or to boxed values: a type that defines
``_tg_bind(op, args, param)`` and a ``_tg_level`` (tracers, ``Value``) takes over; the
method is called on the ``innermost`` of the arguments.

>>> import tracegrad as tg
>>> tg.exp(0.0), tg.maximum(1.0, 2.0), tg.where(0.0, 1.0, 2.0)
(1.0, 2.0, 2.0)
"""
import ctypes
import hashlib
import inspect
import keyword
import numbers
import secrets
from dataclasses import dataclass
from typing import Callable, Optional

from . import _ieee
from .errors import TracingError
from .pytree import loaded_numpy

INFIX = ("+", "-", "*", "/")
PREFIX = ("-",)
COMPARE = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(frozen=True, eq=False)
class Op:
    """One primitive: a row of ``TABLE``, made by ``defop`` (see there for each facet).

    ``builtin`` marks the package's own rows. ``ident`` is the name generated code uses
    for the op: its name for a built-in, ``op_`` and a hash of the name for a user's op
    (no user string reaches generated code). ``token`` identifies a user op's definition:
    graph fingerprints include it, so compiled code of an earlier definition of the same
    name is never reused. ``cfunc`` is the ctypes function of a ``symbol`` or ``address``.
    An op is callable: ``op(x)`` is ``bind(op, x)``.
    """

    name: str
    arity: int
    eval: Callable
    vjp: Callable
    jvp: Optional[Callable] = None
    sympy: Optional[Callable] = None
    symbol: Optional[str] = None
    address: Optional[int] = None
    lower: Optional[Callable] = None
    infix: Optional[str] = None
    prefix: Optional[str] = None
    compare: Optional[str] = None
    select: bool = False
    has_param: bool = False
    commutative: bool = False
    numpy: tuple = ()
    builtin: bool = False
    ident: str = ""
    token: str = ""
    cfunc: Optional[Callable] = None

    def __call__(self, *args, param=None):
        return bind(self, *args, param=param)

    def __repr__(self):
        return f"Op({self.name})"


TABLE: dict = {}
UFUNCS: dict = {}  # numpy ufunc name -> the op it records on traced values and Values (the rows' numpy facets)
_BUILTINS = None  # the names of the package's own rows, set once the table below is built


def native(op):
    """Whether compiled code computes ``op`` directly (it has a form), rather than through ``lower``."""
    return bool(op.infix or op.prefix or op.compare or op.select or op.symbol) or op.address is not None


_LIBM = []


def libm():
    """The C math library, through ctypes (loaded on first use)."""
    def names():
        yield from ("libm.so.6", "libm.dylib")
        import ctypes.util
        yield ctypes.util.find_library("m") or "ucrtbase"
    for name in names() if not _LIBM else ():
        try:
            _LIBM.append(ctypes.CDLL(name))
            break
        except OSError:
            continue
    if not _LIBM:
        raise OSError("tracegrad cannot find the C math library (libm) with ctypes")
    return _LIBM[0]


def defop(name, arity, eval=None, vjp=None, jvp=None, sympy=None, *, symbol=None, address=None, lower=None,
          infix=None, prefix=None, compare=None, select=False, has_param=False, commutative=False, numpy=None):
    """Define a primitive: add a row to the op table and return its ``Op`` (call it like a function).

    - ``eval(*floats)``: the value on floats, IEEE (nan / inf, never an exception).
      Default: the C function of ``symbol`` or ``address`` through ctypes, else ``lower``.
    - ``vjp(g, out, *args)``: one cotangent per argument (None: zero), written with
      tracegrad's ops, so that it differentiates again. Without one, differentiating
      the op is a ``ValueError``; ``jvp(tangents, out, *args)`` defaults to one from ``vjp``.
    - ``sympy(sp, *exprs)``: the op as a sympy expression (optional).
    - How compiled backends compute it, one of: ``symbol``, the name of a libm function of
      ``arity`` doubles returning a double; ``address``, the address of such a C function
      of your own (``ctypes.cast(fn, ctypes.c_void_p).value``; keep ``fn`` alive);
      ``lower``, a function of the arguments written with tracegrad's ops (compiled as
      that composition). The package's own rows also use ``infix``, ``prefix``,
      ``compare`` and ``select``.
    - ``has_param``: the op takes a constant parameter after its arguments (``powc``'s
      exponent); such ops need ``lower``. ``commutative``: a binary op with
      ``op(x, y) == op(y, x)`` (one node for both orders).
    - ``numpy``: the name (or a tuple of names) of the numpy ufuncs that compute the op,
      of ``arity`` arguments: ``np.<name>`` on traced values and Values then records it.

    ``name`` is an identifier, not one of the package's own ops; defining a name again
    replaces your earlier definition (code compiled for the old one is not reused).

    >>> import math, tracegrad as tg
    >>> erf = tg.defop("my_erf", 1, eval=math.erf, symbol="erf",     # a user's own name; "erf" is built in
    ...                vjp=lambda g, out, x: (g * (2 / math.sqrt(math.pi)) * tg.exp(-x * x),),
    ...                sympy=lambda sp, x: sp.erf(x))
    >>> round(tg.jit(tg.grad(lambda x: erf(x) * x), backend="llvm")(0.3), 12)
    0.638005032345
    >>> softsign = tg.defop("softsign", 1, eval=lambda x: x / (1 + abs(x)),
    ...                     lower=lambda x: x / (1 + tg.abs(x)),          # compiled as a composition
    ...                     vjp=lambda g, out, x: (g / (1 + tg.abs(x)) ** 2,))
    >>> x = tg.Value(1.0); y = softsign(x); y.backward(); y.data, x.grad
    (0.5, 0.25)
    """
    if not isinstance(name, str) or not name.isidentifier() or name in ("input", "const"):
        raise ValueError(f"an op name must be a Python identifier (not 'input' or 'const'), got {name!r:.80}")
    if _BUILTINS is not None and name in _BUILTINS:
        raise ValueError(f"{name!r} is one of tracegrad's own ops and cannot be redefined; choose another name")
    if isinstance(arity, bool) or not isinstance(arity, int) or not 1 <= arity <= 3:
        raise ValueError(f"arity must be 1, 2 or 3, got {arity!r}")
    for facet, rule in (("eval", eval), ("vjp", vjp), ("jvp", jvp), ("sympy", sympy), ("lower", lower)):
        if rule is not None and not callable(rule):
            raise TypeError(f"{facet} of op {name!r} must be a function, got {type(rule).__name__}")
    forms = [f for f, v in (("symbol", symbol), ("address", address), ("infix", infix), ("prefix", prefix),
                            ("compare", compare), ("select", select)) if v is not None and v is not False]
    if len(forms) + (lower is not None) != 1:
        raise ValueError(f"op {name!r} needs exactly one way for compiled code to compute it: symbol=, "
                         f"address= or lower= (got {', '.join(forms + ['lower'] * (lower is not None)) or 'none'})")
    checks = {"infix": (infix in INFIX and arity == 2, f"one of {INFIX} with arity 2"),
              "prefix": (prefix in PREFIX and arity == 1, "'-' with arity 1"),
              "compare": (compare in COMPARE and arity == 2, f"one of {COMPARE} with arity 2"),
              "select": (select is True and arity == 3, "True with arity 3")}
    for form in forms:
        if form in checks and not checks[form][0]:
            raise ValueError(f"{form} of op {name!r} must be {checks[form][1]}")
    if has_param and lower is None:
        raise ValueError(f"op {name!r} has a parameter, so compiled code needs lower=(*args, param)")
    if commutative and arity != 2:
        raise ValueError(f"only a binary op can be commutative ({name!r} has arity {arity})")
    ufuncs = _ufuncs(name, arity, numpy)  # their names
    cfunc = _cfunction(name, arity, symbol, address) if symbol is not None or address is not None else None
    if eval is None:
        eval = cfunc if cfunc is not None else lower
    op = Op(name, arity, eval, vjp or _no_vjp(name), jvp, sympy, symbol, address, lower, infix, prefix, compare,
            select, has_param, commutative, ufuncs, builtin=_BUILTINS is None,
            ident=name if _BUILTINS is None else "op_" + hashlib.sha256(name.encode()).hexdigest()[:12],
            token="" if _BUILTINS is None else secrets.token_hex(16), cfunc=cfunc)
    TABLE[name] = op
    for ufunc in [u for u, o in UFUNCS.items() if o.name == name]:  # an earlier definition's
        del UFUNCS[ufunc]
    UFUNCS.update(dict.fromkeys(ufuncs, op))
    return op


def _ufuncs(name, arity, numpy):
    """The names of the numpy ufuncs named by an op's ``numpy`` facet (a name or a tuple of names).

    A user's row is checked against numpy here (importing it); the package's own rows
    are checked by the tests, so that ``import tracegrad`` does not load numpy.
    """
    names = (numpy,) if isinstance(numpy, str) else () if numpy is None else numpy
    if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"numpy of op {name!r} must be the name of a numpy ufunc or a tuple of names, "
                        f"got {numpy!r:.80}")
    if _BUILTINS is None:
        return names
    import numpy as np
    ufuncs = []
    for n in names:
        ufunc = getattr(np, n, None)
        if not isinstance(ufunc, np.ufunc) or (ufunc.nin, ufunc.nout, ufunc.signature) != (arity, 1, None):
            raise ValueError(f"numpy of op {name!r} must name numpy ufuncs of {arity} argument(s) and one result "
                             f"(such as 'arctan2'); np.{n:.40} is not one")
        if ufunc.__name__ in UFUNCS and UFUNCS[ufunc.__name__].name != name:
            raise ValueError(f"np.{ufunc.__name__} already records op {UFUNCS[ufunc.__name__].name!r}; "
                             f"op {name!r} cannot take it")
        ufuncs.append(ufunc.__name__)
    return tuple(ufuncs)


def ufunc_op(ufunc):
    """The op that the numpy ufunc ``ufunc`` records on traced values and Values, or None."""
    op = UFUNCS.get(getattr(ufunc, "__name__", None))
    return op if op is not None and getattr(loaded_numpy(), ufunc.__name__, None) is ufunc else None


def _cfunction(name, arity, symbol, address):
    """The C function ``double f(double, ...)`` of a ``symbol`` in libm or at an ``address``, via ctypes."""
    if symbol is not None:
        if not isinstance(symbol, str) or not symbol.isidentifier() or keyword.iskeyword(symbol):
            raise ValueError(f"symbol of op {name!r} must be the name of a C function, got {symbol!r:.80}")
        try:
            fn = libm()[symbol]  # a new function object: its argtypes are its own
        except AttributeError:
            raise ValueError(f"symbol {symbol!r} of op {name!r} is not a function of the C math library; "
                             "for a C function of your own, give address=") from None
        fn.argtypes, fn.restype = [ctypes.c_double] * arity, ctypes.c_double
        return fn
    if isinstance(address, bool) or not isinstance(address, int) or address <= 0:
        raise TypeError(f"address of op {name!r} must be a positive int, the address of a C function of doubles "
                        f"(ctypes.cast(fn, ctypes.c_void_p).value), got {address!r:.80}")
    return ctypes.CFUNCTYPE(ctypes.c_double, *[ctypes.c_double] * arity)(address)


def _no_vjp(name):
    def vjp(g, out, *args):
        raise ValueError(f"op {name!r} has no derivative rule: define it with tg.defop(..., vjp=...); "
                         "for a derivative that is zero: vjp=lambda g, out, x: (None,)")
    return vjp


# ---------------------------------------------------------------- binding

def to_float(x):
    """Coerce a Python or numpy real number to float; anything else is a TypeError."""
    if type(x) is float:
        return x
    np = loaded_numpy()
    if isinstance(x, numbers.Real) if np is None else (
            isinstance(x, (numbers.Real, np.number)) and not isinstance(x, (np.complexfloating, complex))):
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


PUBLIC = {}   # the public math functions (tg.exp ...), by name
_METHODS = {}  # and those that are also methods of traced values and Values (x.exp() ...)


def _function(op, summary="", example=None, names=None, method=True):
    """The function of ``op`` (``tg.exp`` ...), with a docstring whose example is evaluated now.

    With a ``summary`` it is public: ``PUBLIC`` (so ``tracegrad.exp``) and, with
    ``method``, a method of traced values and ``Value`` (``x.exp()``). Without one it is
    internal, used by the rules (``div``, ``lt`` ...).
    """
    def fn(*args):
        return bind(op, *args)
    args = example or {1: (0.5,), 2: (0.5, 2.0), 3: (1.0, 2.0, 3.0)}[op.arity]
    names = names or ("x", "y", "z")[:op.arity]
    call = f"{op.name}({', '.join(map(repr, args))})"
    setup = "import tracegrad as tg" if summary else f"from tracegrad.ops import {op.name}"
    call = f"tg.{call}" if summary else call
    fn.__name__ = fn.__qualname__ = op.name
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in names])
    fn.__doc__ = (f"{summary or 'The op ' + repr(op.name) + ' of the table.'}\n\nWorks on floats, traced values "
                  f"and ``Value``s; IEEE results, never raises.\n\n>>> {setup}\n>>> {call}\n{op.eval(*args)!r}\n")
    if summary:
        PUBLIC[op.name] = fn
        if method:
            _METHODS[op.name] = op
    return fn


def _compare(name, test, sympy_rel, symbol, ufunc):
    return defop(name, 2, lambda x, y: 1.0 if test(x, y) else 0.0, compare=symbol, numpy=ufunc,
                 vjp=lambda g, out, x, y: (None, None),
                 sympy=lambda sp, x, y: sp.Piecewise((1.0, sympy_rel(sp)(x, y)), (0.0, True)))


def _zero(g, out, x):
    return (None,)


# ---------------------------------------------------------------- the table
# Rules mirror PyTorch's derivative formulas (tools/autograd/derivatives.yaml), in
# the same order of operations, so that results agree bit for bit where they can.

ADD = defop("add", 2, lambda x, y: x + y, commutative=True, infix="+", numpy="add",
            vjp=lambda g, out, x, y: (g, g), sympy=lambda sp, x, y: x + y)
SUB = defop("sub", 2, lambda x, y: x - y, infix="-", numpy="subtract",
            vjp=lambda g, out, x, y: (g, -g), sympy=lambda sp, x, y: x - y)
MUL = defop("mul", 2, lambda x, y: x * y, commutative=True, infix="*", numpy="multiply",
            vjp=lambda g, out, x, y: (g * y, g * x), sympy=lambda sp, x, y: x * y)
DIV = defop("div", 2, _ieee.div, infix="/", numpy="divide",  # IEEE: x / 0 is ±inf or nan, where Python's / raises
            vjp=lambda g, out, x, y: (div(g, y), -g * div(out, y)), sympy=lambda sp, x, y: x / y)
NEG = defop("neg", 1, lambda x: -x, prefix="-", numpy="negative",
            vjp=lambda g, out, x: (-g,), sympy=lambda sp, x: -x)


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


POWC = defop("powc", 1, _powc, has_param=True, lower=_powc,  # x ** p, p a constant
             vjp=lambda g, out, x, p: (None,) if p == 0.0 else (g * (p * bind(POWC, x, param=p - 1.0)),),
             sympy=lambda sp, x, p: x ** (sp.Integer(int(p)) if p.is_integer() else sp.Float(p)),
             jvp=lambda ts, out, x, p: None if p == 0.0 else ts[0] * (p * bind(POWC, x, param=p - 1.0)))
POW = defop("pow", 2, _ieee.pow, symbol="pow", numpy=("power", "float_power"),  # x ** y; np.power: tg.pow
            vjp=lambda g, out, x, y: (
                where(y == 0.0, 0.0, g * (y * bind(POW, x, y - 1.0))),  # pow even where y is a float
                g * where((x == 0.0) * (y >= 0.0), 0.0, out * log(x))),
            sympy=lambda sp, x, y: x ** y)
EXP = defop("exp", 1, _ieee.exp, symbol="exp", numpy="exp",
            vjp=lambda g, out, x: (g * out,), sympy=lambda sp, x: sp.exp(x))
LOG = defop("log", 1, _ieee.log, symbol="log", numpy="log",
            vjp=lambda g, out, x: (div(g, x),), sympy=lambda sp, x: sp.log(x))
LOG1P = defop("log1p", 1, _ieee.log1p, symbol="log1p", numpy="log1p",
              vjp=lambda g, out, x: (div(g, x + 1.0),),
              sympy=lambda sp, x: sp.codegen.cfunctions.log1p(x))  # accurate when lambdified
SQRT = defop("sqrt", 1, _ieee.sqrt, symbol="sqrt", numpy="sqrt",
             vjp=lambda g, out, x: (div(g, 2.0 * out),), sympy=lambda sp, x: sp.sqrt(x))
SIN = defop("sin", 1, _ieee.sin, symbol="sin", numpy="sin",
            vjp=lambda g, out, x: (g * cos(x),), sympy=lambda sp, x: sp.sin(x))
COS = defop("cos", 1, _ieee.cos, symbol="cos", numpy="cos",
            vjp=lambda g, out, x: (g * -sin(x),), sympy=lambda sp, x: sp.cos(x))
TANH = defop("tanh", 1, _ieee.tanh, symbol="tanh", numpy="tanh",
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
SIGN = defop("sign", 1, _ieee.sign, numpy="sign",  # sign(0) = sign(nan) = 0, as PyTorch (np.sign(nan): nan)
             vjp=_zero, sympy=lambda sp, x: sp.sign(x),
             lower=lambda x: where(x > 0.0, 1.0, where(x < 0.0, -1.0, 0.0)))
ABS = defop("abs", 1, abs, symbol="fabs", numpy=("absolute", "fabs"),
            vjp=lambda g, out, x: (g * sign(x),),  # abs'(0) = 0
            sympy=lambda sp, x: sp.Abs(x))
MAXIMUM = defop("maximum", 2, lambda x, y: x if x >= y or x != x else y, numpy="maximum",  # nan wins; ties: x
                vjp=lambda g, out, x, y: (where(x < y, 0.0, where(x == y, g * 0.5, g)),
                                          where(x > y, 0.0, where(x == y, g * 0.5, g))),
                sympy=lambda sp, x, y: sp.Max(x, y),
                lower=lambda x, y: where(x != x, x, where(x >= y, x, y)))
MINIMUM = defop("minimum", 2, lambda x, y: x if x <= y or x != x else y, numpy="minimum",
                vjp=lambda g, out, x, y: (where(x > y, 0.0, where(x == y, g * 0.5, g)),
                                          where(x < y, 0.0, where(x == y, g * 0.5, g))),
                sympy=lambda sp, x, y: sp.Min(x, y),
                lower=lambda x, y: where(x != x, x, where(x <= y, x, y)))
LT = _compare("lt", lambda x, y: x < y, lambda sp: sp.StrictLessThan, "<", "less")
LE = _compare("le", lambda x, y: x <= y, lambda sp: sp.LessThan, "<=", "less_equal")
GT = _compare("gt", lambda x, y: x > y, lambda sp: sp.StrictGreaterThan, ">", "greater")
GE = _compare("ge", lambda x, y: x >= y, lambda sp: sp.GreaterThan, ">=", "greater_equal")
EQ = _compare("eq", lambda x, y: x == y, lambda sp: sp.Eq, "==", "equal")
NE = _compare("ne", lambda x, y: x != y, lambda sp: sp.Ne, "!=", "not_equal")
WHERE = defop("where", 3, lambda c, x, y: x if c else y, select=True,  # c is true where nonzero (nan too)
              vjp=lambda g, out, c, x, y: (None, masked(c, g), masked(c, g, negate=True)),
              jvp=lambda ts, out, c, x, y: None if ts[1] is None and ts[2] is None else where(
                  c, 0.0 if ts[1] is None else ts[1], 0.0 if ts[2] is None else ts[2]),
              sympy=lambda sp, c, x, y: sp.Piecewise((x, sp.Ne(c, 0)), (y, True)))
CLAMP = defop("clamp", 3,  # as torch.clamp(x, lo, hi): min(max(x, lo), hi), so hi wins if lo > hi
              lambda x, lo, hi: TABLE["minimum"].eval(TABLE["maximum"].eval(x, lo), hi),
              vjp=lambda g, out, x, lo, hi: (
                  where((x >= lo) * (x <= hi), g, 0.0),   # '*' of 0/1 flags: and
                  where((x < lo) * (lo < hi), g, 0.0),
                  where((x > hi) + (hi < lo), g, 0.0)),  # '+' of 0/1 flags: or
              sympy=lambda sp, x, lo, hi: sp.Min(sp.Max(x, lo), hi),
              lower=lambda x, lo, hi: minimum(maximum(x, lo), hi))

# The internal functions the rules use, and the public math functions: tg.exp(x) works
# on floats, tracers and Values alike, and x.exp() on tracers and Values.
add, sub, mul, div, neg, lt, le, gt, ge, eq, ne = map(_function, (ADD, SUB, MUL, DIV, NEG, LT, LE, GT, GE, EQ, NE))
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
                  "reaches the result's gradient. Use it instead of ``if`` on traced values.",
                  names=("cond", "a", "b"), method=False)
clamp = _function(CLAMP, "min(max(x, lo), hi) as torch.clamp: ``clamp(x, lo, hi)``; hi wins if lo > hi.",
                  (1.5, 0.0, 1.0), names=("x", "lo", "hi"))

# The functions of Python's math module: C's function (symbol) and PyTorch's derivative.
# One row each; its public function and method come with it.
_LN2, _LN10, _2_SQRTPI = 0.6931471805599453, 2.3025850929940456, 1.1283791670955126
_function(defop("tan", 1, _ieee.tan, symbol="tan", numpy="tan", vjp=lambda g, out, x: (g * (1.0 + out * out),),
                sympy=lambda sp, x: sp.tan(x)), "Tangent (radians): nan at ±inf.")
_function(defop("asin", 1, _ieee.asin, symbol="asin", numpy="arcsin",
                vjp=lambda g, out, x: (div(g, sqrt(1.0 - x * x)),),
                sympy=lambda sp, x: sp.asin(x)), "Arcsine: nan outside [-1, 1]; its derivative is inf at ±1.")
_function(defop("acos", 1, _ieee.acos, symbol="acos", numpy="arccos",
                vjp=lambda g, out, x: (-div(g, sqrt(1.0 - x * x)),),
                sympy=lambda sp, x: sp.acos(x)), "Arccosine: nan outside [-1, 1]; its derivative is -inf at ±1.")
_function(defop("atan", 1, _ieee.atan, symbol="atan", numpy="arctan", vjp=lambda g, out, x: (div(g, x * x + 1.0),),
                sympy=lambda sp, x: sp.atan(x)), "Arctangent: ±pi/2 at ±inf.")
def _atan2_vjp(g, out, y, x):  # as PyTorch: no gradient where x*x + y*y is 0 (or underflows to it)
    square = y * y + x * x
    r = where(square == 0.0, 0.0, div(1.0, square))
    return g * x * r, g * -y * r


_function(defop("atan2", 2, _ieee.atan2, symbol="atan2", numpy="arctan2", vjp=_atan2_vjp,
                sympy=lambda sp, y, x: sp.atan2(y, x)),
          "The angle of the point (x, y) as C's atan2(y, x): ``atan2(y, x)``, in [-pi, pi].", names=("y", "x"))
_function(defop("sinh", 1, _ieee.sinh, symbol="sinh", numpy="sinh", vjp=lambda g, out, x: (g * cosh(x),),
                sympy=lambda sp, x: sp.sinh(x)), "Hyperbolic sine: ±inf past ±710.")
_function(defop("cosh", 1, _ieee.cosh, symbol="cosh", numpy="cosh", vjp=lambda g, out, x: (g * sinh(x),),
                sympy=lambda sp, x: sp.cosh(x)), "Hyperbolic cosine: inf past ±710.")
_function(defop("asinh", 1, _ieee.asinh, symbol="asinh", numpy="arcsinh",
                vjp=lambda g, out, x: (div(g, sqrt(x * x + 1.0)),),
                sympy=lambda sp, x: sp.asinh(x)), "Inverse hyperbolic sine.")
_function(defop("acosh", 1, _ieee.acosh, symbol="acosh", numpy="arccosh",
                vjp=lambda g, out, x: (div(g, sqrt(x * x - 1.0)),),
                sympy=lambda sp, x: sp.acosh(x)),
          "Inverse hyperbolic cosine: nan below 1; its derivative is inf at 1.", (2.0,))
_function(defop("atanh", 1, _ieee.atanh, symbol="atanh", numpy="arctanh",
                vjp=lambda g, out, x: (div(g * 1.0, 1.0 - x * x),),
                sympy=lambda sp, x: sp.atanh(x)), "Inverse hyperbolic tangent: ±inf at ±1, nan beyond.")
_function(defop("expm1", 1, _ieee.expm1, symbol="expm1", numpy="expm1", vjp=lambda g, out, x: (g * (out + 1.0),),
                sympy=lambda sp, x: sp.codegen.cfunctions.expm1(x)), "exp(x) - 1, accurate for small x.")
_function(defop("exp2", 1, _ieee.exp2, symbol="exp2", numpy="exp2", vjp=lambda g, out, x: (g * out * _LN2,),
                sympy=lambda sp, x: sp.codegen.cfunctions.exp2(x)), "2 to the power x.")
_function(defop("log2", 1, _ieee.log2, symbol="log2", numpy="log2", vjp=lambda g, out, x: (div(g, x * _LN2),),
                sympy=lambda sp, x: sp.codegen.cfunctions.log2(x)), "Base-2 logarithm: nan below 0, -inf at 0.")
_function(defop("log10", 1, _ieee.log10, symbol="log10", numpy="log10", vjp=lambda g, out, x: (div(g, x * _LN10),),
                sympy=lambda sp, x: sp.codegen.cfunctions.log10(x)), "Base-10 logarithm: nan below 0, -inf at 0.")
_function(defop("erf", 1, _ieee.erf, symbol="erf", vjp=lambda g, out, x: (_2_SQRTPI * exp(-(x * x)) * g,),
                sympy=lambda sp, x: sp.erf(x)), "The error function.")
_function(defop("erfc", 1, _ieee.erfc, symbol="erfc", vjp=lambda g, out, x: (-_2_SQRTPI * exp(-(x * x)) * g,),
                sympy=lambda sp, x: sp.erfc(x)), "1 - erf(x), accurate where erf(x) is near 1.")
_function(defop("hypot", 2, symbol="hypot", numpy="hypot",  # C's hypot (CPython's is its own algorithm)
                commutative=True,
                vjp=lambda g, out, x, y: (div(g * x, out), div(g * y, out)),
                sympy=lambda sp, x, y: sp.codegen.cfunctions.hypot(x, y)),
          "sqrt(x*x + y*y) without overflow: inf if x or y is.")
_function(defop("cbrt", 1, _ieee.cbrt, symbol="cbrt", numpy="cbrt",
                vjp=lambda g, out, x: (div(g, 3.0 * (out * out)),),
                sympy=lambda sp, x: sp.real_root(x, 3)),
          "Cube root, of negative numbers too; its derivative is inf at 0.")
_function(defop("floor", 1, _ieee.floor, symbol="floor", numpy="floor", vjp=_zero,
                sympy=lambda sp, x: sp.floor(x)),
          "The largest integer <= x, as a float; its derivative is 0.", (-0.5,))
_function(defop("ceil", 1, _ieee.ceil, symbol="ceil", numpy="ceil", vjp=_zero, sympy=lambda sp, x: sp.ceiling(x)),
          "The smallest integer >= x, as a float (ceil(-0.5) is -0.0); its derivative is 0.", (-0.5,))
_function(defop("trunc", 1, _ieee.trunc, symbol="trunc", numpy="trunc", vjp=_zero,
                sympy=lambda sp, x: sp.sign(x) * sp.floor(sp.Abs(x))),
          "x rounded toward 0, as a float; its derivative is 0.", (-1.5,))
_function(defop("copysign", 2, _ieee.copysign, numpy="copysign",  # a nan's sign differs between
                # backends, so nan counts as +
                lower=lambda x, y: where((y < 0.0) + (div(1.0, y) < 0.0), -abs_(x), abs_(x)),
                vjp=lambda g, out, x, y: (where(x == 0.0, 0.0, g * div(out, x)), None),
                sympy=lambda sp, x, y: sp.Piecewise((-sp.Abs(x), y < 0), (sp.Abs(x), True))),
          "|x| with the sign of y (-0.0 is negative; nan is positive); the derivative in y is 0.", (2.0, -0.0))
_function(defop("fmod", 2, _ieee.fmod, symbol="fmod", numpy="fmod",  # in sympy: fmod(x, y), this row's eval
                vjp=lambda g, out, x, y: (g, -g * trunc(div(x, y)))),
          "The remainder of x / y with the sign of x, as C's fmod; nan for y = 0.", (5.5, 2.0))
floor, trunc = PUBLIC["floor"], PUBLIC["trunc"]
cosh, sinh = PUBLIC["cosh"], PUBLIC["sinh"]
_BUILTINS = frozenset(TABLE)


def pow(x, y):
    """``x ** y``; a constant exponent records ``powc``, a traced one ``pow``.

    >>> pow(2.0, 3)
    8.0
    """
    np = loaded_numpy()
    if np is not None and isinstance(y, np.ndarray):  # x ** array: each element as below
        from .arrays import elementwise
        return elementwise(pow, (x, y))
    if getattr(y, "_tg_level", None) is None:
        return bind(POWC, x, param=to_float(y))
    return bind(POW, x, y)


PUBLIC["pow"], PUBLIC["abs"] = pow, PUBLIC.pop("abs")


class Arithmetic:
    """Operators, numpy's ufuncs and micrograd-style methods shared by tracers and ``Value``.

    Besides the operators, each public math function is a method: ``x.exp()``,
    ``x.atan2(y)``, ``x.clamp(lo, hi)`` ..., also under its numpy names (``x.arctan2(y)``),
    which numpy's loops over object arrays call.
    """

    __slots__ = ()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """numpy's ufuncs: ``np.arctan2(y, x)`` records the row whose ``numpy`` facet names
        ``arctan2`` (through its public function: ``np.power(x, 2)`` is ``tg.pow``, powc), and
        with numpy arrays among the arguments one per element, as the operators do
        (``np.float64(2) * x`` and ``w * x`` come here too). ``np.square``, ``np.reciprocal``
        and ``np.positive`` are numpy's ``x * x``, ``1 / x`` and ``+x``. Any other ufunc is a
        TypeError that names it.

        >>> import numpy as np, tracegrad as tg
        >>> tg.grad(lambda x: np.arctan2(x, 1.0) + np.maximum(x, 0.0) + np.square(x))(0.0)
        1.5
        """
        import numpy as np
        op = ufunc_op(ufunc)
        if op is None or method != "__call__" or kwargs:
            return _object_loop(op, ufunc, method, inputs, kwargs)
        return PUBLIC.get(op.name, op)(*[np.asarray(a) if isinstance(a, (list, tuple)) else a for a in inputs])

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


def _method(op):
    def method(self, *args):
        return bind(op, self, *args)
    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"``tg.{op.name}(self, ...)``."
    return method


# ufuncs without a row that numpy computes with the operators on Python objects (x * x, 1 / x, +x)
_OPERATOR_UFUNCS = ("square", "reciprocal", "positive")


def _object_loop(op, ufunc, method, inputs, kwargs):
    """``ufunc`` as numpy computes it for Python objects (its loop over dtype object calls their
    operators) where that records rows: a row's ufunc with ``out=`` (``a += x``) or a method
    (``np.multiply.outer``), an operator ufunc, ``np.matmul`` and the like (numpy says what they
    need); else a TypeError naming it."""
    import numpy as np
    from .arrays import plain
    operator = ufunc.__name__ in _OPERATOR_UFUNCS and getattr(np, ufunc.__name__) is ufunc
    if op is not None or operator or ufunc.signature is not None:
        try:
            return getattr(ufunc, method)(*map(plain, inputs), **kwargs)
        except (TypeError, TracingError):  # a comparison that needs bool(x), a float array out=
            pass
    if op is None:
        raise TypeError(f"np.{ufunc.__name__} has no tracegrad op, so it cannot take traced values or Values; "
                        f"define one with tg.defop(name, {ufunc.nin}, eval=..., vjp=..., numpy={ufunc.__name__!r}) "
                        "(see docs/adding-ops.md), or write it with tracegrad's functions")
    what = ", ".join(f"{k}=" for k in kwargs) if kwargs else f"the method .{method}"
    raise TypeError(f"np.{ufunc.__name__} records op {op.name!r} on traced values and Values in a plain call "
                    f"np.{ufunc.__name__}(...), not with {what}; drop it (a += x on a float array a is "
                    "np.add(a, x, out=a): write a = a + x)")


for _name, _op in _METHODS.items():
    for _alias in {_name, *_op.numpy}:  # x.atan2(y) and x.arctan2(y)
        setattr(Arithmetic, _alias, _method(_op))
