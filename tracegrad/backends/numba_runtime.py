"""The names that numba-compiled generated source uses, from each op's form: ``div`` for
IEEE division (``error_model="numpy"``: 1/0 is inf), a C function as ``math.<symbol>``
where numba compiles that to a float function (a libm call, which returns nan / inf
rather than raise), else as a ctypes function (libm's, or the op's ``address``), and
``inf`` / ``nan``. Graphs are lowered to their native ops first."""
import functools
import math
from math import inf, nan

import numba
from numba.core import types
from numba.core.registry import cpu_target

from ..ops import TABLE

__all__ = ["inf", "nan"]


@numba.njit(error_model="numpy", cache=True)
def div(x, y):  # error_model="numpy": 1/0 -> inf, 0/0 -> nan
    return x / y


def namespace(graph):
    """``({ident: function}, cacheable)`` for the ops of a lowered ``graph``.

    ``cacheable`` is False where a ctypes function is called: numba does not cache
    code that holds a function pointer (it may differ in the next process).
    """
    names, cacheable = {}, True
    for name in graph.stats():
        op = TABLE.get(name)
        if op is None or not (op.infix == "/" or op.symbol or op.address is not None):
            continue
        fn = div if op.infix else _math(op.symbol, op.arity) if op.symbol else None
        if fn is None:
            fn, cacheable = op.cfunc, False
        names[op.ident] = fn
    return names, cacheable


@functools.lru_cache(maxsize=None)
def _math(symbol, arity):
    """``math.<symbol>`` if numba compiles it on ``arity`` float64s to a float64, else None."""
    fn = getattr(math, symbol, None)
    if fn is None:
        return None
    context = cpu_target.typing_context
    context.refresh()  # loads numba's typing of the math module, once
    try:
        signature = context.resolve_function_type(context.resolve_value_type(fn), (types.float64,) * arity, {})
    except Exception:  # numba's typing errors have no common base class but Exception
        return None
    return fn if signature is not None and signature.return_type == types.float64 else None
