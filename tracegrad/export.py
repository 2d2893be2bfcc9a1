"""``export_sympy``: a traced function (or its gradient) as sympy expressions.

>>> import tracegrad as tg
>>> tg.export_sympy(lambda x, y: x * y + tg.sin(x))
x*y + sin(x)
>>> tg.export_sympy(tg.grad(lambda x, y: x * y + tg.sin(x)))
y + cos(x)
"""
import inspect

from .api import Function, jit


def export_sympy(fn, *example_args, cse=False):
    """``fn`` as sympy: one expression for a scalar output, a ``sympy.Matrix`` for several.

    Symbols are named after ``fn``'s parameters (pytree leaves as ``w_0``, ``b`` ...)
    and are real. Without example arguments, each positional parameter is one float.
    With ``cse=True`` return ``(replacements, exprs)`` as ``sympy.cse`` does, where
    ``exprs`` is a list with one expression per output.

    >>> import tracegrad as tg
    >>> repl, exprs = tg.export_sympy(lambda x: [tg.exp(x) * x, tg.exp(x)], cse=True)
    >>> repl, exprs
    ([(x0, exp(x))], [x*x0, x0])
    """
    if not callable(fn):
        raise TypeError(f"export_sympy takes a function, got {type(fn).__name__}")
    import sympy as sp  # imported here: `import tracegrad` must not load sympy
    from .backends.sympy import symbols_for, sympy_exprs
    function = fn if isinstance(fn, Function) else jit(fn)
    if not example_args and _takes_varargs(fn):
        raise TypeError("export_sympy of a function with *args needs example arguments: "
                        "tg.export_sympy(f, 1.0, 2.0)")
    if example_args:
        function._entry(tuple(example_args))
    graph = function.graph
    exprs = sympy_exprs(graph, symbols_for(graph))
    if cse:
        return sp.cse(exprs)
    return exprs[0] if len(exprs) == 1 else sp.Matrix(exprs)


def _takes_varargs(fn):
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind == p.VAR_POSITIONAL for p in parameters)
