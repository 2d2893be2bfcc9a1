"""Graph -> sympy expressions, one per output, sharing subexpressions as the graph does.

Each node becomes the expression its op row's ``sympy`` facet builds from the
expressions of its arguments; nothing is differentiated again, so an exported
gradient is as large as its graph. An op with no ``sympy`` facet is first replaced by
its ``lower`` rule; one with neither (a C function) becomes a sympy function named
by the op's ``ident`` that evaluates with the op's ``eval`` when lambdified.

>>> import sympy as sp, tracegrad as tg
>>> g = tg.trace(lambda x, y: tg.sin(x) * y, 0.0, 0.0)
>>> sympy_exprs(g, sp.symbols("x y"))
[y*sin(x)]
"""
import numpy as np
import sympy as sp
import sympy.codegen.cfunctions  # noqa: F401  (sp.codegen.cfunctions.log1p for the log1p row)

from sympy.utilities.lambdify import implemented_function

from ..ops import TABLE
from ..transforms.lower import lower


def sympy_exprs(graph, symbols):
    """The outputs of ``graph`` as sympy expressions of ``symbols`` (one per input)."""
    if len(symbols) != len(graph.inputs):
        raise ValueError(f"the graph has {len(graph.inputs)} inputs, got {len(symbols)} symbols")
    graph = lower(graph, lambda op: op.sympy is not None or op.lower is None)
    env = []
    for op, args, param in graph.nodes:
        if op == "input":
            env.append(symbols[param])
        elif op == "const":
            env.append(_number(param))
        else:
            spec = TABLE[op]
            extra = (param,) if spec.has_param else ()
            ins = [env[a] for a in args]
            try:
                env.append(spec.sympy(sp, *ins, *extra) if spec.sympy else _function(spec)(*ins))
            except (TypeError, ValueError) as e:
                raise ValueError(f"sympy cannot express {op} of {ins} ({e}); "
                                 "keep nan out of comparisons, maximum and minimum") from None
    return [env[o] for o in graph.outputs]


_functions = {}


def _function(op):
    """A sympy function named ``op.ident`` that lambdify evaluates with ``op.eval`` (one per definition)."""
    if _functions.get(op.ident, (None,))[0] is not op:
        _functions[op.ident] = op, implemented_function(op.ident, op.eval)
    return _functions[op.ident][1]


def _number(x):
    """A float constant as sympy: small integers stay exact, others are Floats with all 17 digits."""
    if x != x:
        return sp.nan
    if x in (float("inf"), float("-inf")):
        return sp.oo if x > 0 else -sp.oo
    return sp.Integer(int(x)) if x.is_integer() and abs(x) < 2.0 ** 53 else sp.Float(repr(x), 17)


def symbols_for(graph):
    """One real sympy symbol per input, named as the graph names its inputs (distinct identifiers).

    The names are for display: a symbol called ``exp`` or ``nan`` is a symbol like any other.
    """
    return [sp.Symbol(name, real=True) for name in graph.input_names()]


def compile(graph):
    """A kernel running the lambdified expressions with numpy (IEEE: log(-1) is nan, no raise).

    The expressions are lambdified over generated names ``x0, x1 ...``: no input name reaches
    the generated code, where it could shadow a function (``exp``) or a constant (``nan``).
    """
    symbols = [sp.Symbol(f"x{i}", real=True) for i in range(len(graph.inputs))]
    fn = sp.lambdify(symbols, sympy_exprs(graph, symbols), modules="numpy")

    def kernel(*xs):
        with np.errstate(all="ignore"):
            return [float(v) for v in fn(*[np.float64(x) for x in xs])]
    return kernel


def source(graph):
    return "\n".join(str(e) for e in sympy_exprs(graph, symbols_for(graph)))
