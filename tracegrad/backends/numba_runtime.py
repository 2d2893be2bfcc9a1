"""The names that numba-compiled generated source uses: ``math`` functions (numba compiles
them to libm calls, which return nan / inf rather than raise), ``div`` with IEEE
division, and ``inf`` / ``nan``. Graphs are lowered to these core ops first."""
from math import cos, exp, inf, log, log1p, nan, sin, sqrt, tanh
from math import pow as pow

import numba

__all__ = ["cos", "div", "exp", "inf", "log", "log1p", "nan", "pow", "sin", "sqrt", "tanh"]


@numba.njit(error_model="numpy", cache=True)
def div(x, y):  # error_model="numpy": 1/0 -> inf, 0/0 -> nan
    return x / y
