"""tracegrad: trace a Python function of floats into scalar IR, differentiate it, compile it.

>>> import tracegrad as tg
>>> tg.grad(lambda x, y: tg.tanh(x * y), argnums=(0, 1))(0.0, 2.0)
(2.0, 0.0)
"""
from .api import Function, grad, jit, jvp, value_and_grad, vjp
from .check import check_grads
from .custom import custom_jvp, custom_vjp
from .derivatives import hessian, hvp, jacfwd, jacobian, jacrev
from .export import export_sympy
from .errors import TracingError
from .ir import Graph
from .loops import fori_loop, map, scan, unroll
from .ops import PUBLIC as _MATH_FUNCTIONS, defop
from .tracing import trace
from .transforms.passes import optimize
from .value import Value, graph_of
from .viz import draw
from .vmap import vmap

__version__ = "0.1.0"

globals().update(_MATH_FUNCTIONS)  # tg.exp, tg.atan2 ...: one per row of the op table that is public


def __getattr__(name):
    """``tg.nn`` and ``tg.logsumexp``, imported on first use: ``nn`` loads numpy, scalar code does not."""
    if name in ("nn", "logsumexp"):
        import importlib
        nn = importlib.import_module(f"{__name__}.nn")
        return nn if name == "nn" else nn.logsumexp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), "nn", "logsumexp"})


__all__ = [
    "Function", "Graph", "fori_loop", "map", "scan", "unroll", "TracingError", "Value", "defop", "draw", "grad", "graph_of", "jit", "jvp", "nn",
    "trace", "value_and_grad", "vjp", "vmap", "check_grads", "custom_jvp", "custom_vjp", "export_sympy",
    "hessian", "hvp", "jacfwd", "jacobian", "jacrev", "logsumexp", "optimize", *sorted(_MATH_FUNCTIONS),
]
