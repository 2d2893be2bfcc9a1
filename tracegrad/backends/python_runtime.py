"""The names that generated Python source uses: ``inf`` and ``nan`` for literals, and the
function each op calls by its ``ident``, bound to the op's float evaluation (which never
raises). ``namespace(graph)`` adds those of a graph's ops, the user's included."""
from .._ieee import inf, nan
from ..ops import TABLE

__all__ = ["inf", "nan"]


def namespace(graph):
    """``{ident: eval}`` for the ops of ``graph``."""
    return {TABLE[op].ident: TABLE[op].eval for op in graph.stats() if op in TABLE}
