"""The names that generated Python source uses: one function per op (its float
evaluation, which never raises), and ``inf`` / ``nan`` for literals."""
from .._ieee import inf, nan
from ..ops import TABLE

globals().update({name: op.eval for name, op in TABLE.items()})
__all__ = sorted(TABLE) + ["inf", "nan"]
