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
from .ops import (abs_ as abs, clamp, cos, exp, log, log1p, maximum, minimum, pow, relu,
                  sigmoid, sign, sin, softplus, sqrt, tanh, where)
from .tracing import trace
from .transforms.passes import optimize
from .value import Value, graph_of
from .viz import draw
from .vmap import vmap
from . import nn

__version__ = "0.1.0"


__all__ = [
    "Function", "Graph", "TracingError", "Value", "abs", "clamp", "cos", "draw", "exp", "grad",
    "graph_of", "jit", "jvp", "nn",
    "log", "log1p", "maximum", "minimum", "pow", "relu", "sigmoid", "sign", "sin", "softplus",
    "sqrt", "tanh", "trace", "value_and_grad", "vjp", "vmap", "where",
    "check_grads", "custom_jvp", "custom_vjp", "export_sympy", "hessian", "hvp", "jacfwd",
    "jacobian", "jacrev", "optimize",
]
