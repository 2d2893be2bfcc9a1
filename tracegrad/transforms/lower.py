"""Rewrite derived ops into the ops a backend implements, with each op's ``lower`` facet.

By default the ops kept are the native ones (``ops.native``: those with a form that
compiled code computes directly, an operator or a C function); a backend may keep
others (a predicate on the ``Op``, or a set of names). The walk is the usual replay
loop: kept ops are re-bound as they are, the others are replaced by their ``lower``
rule; a rule may use other derived ops (softplus uses maximum), so the walk repeats
until only kept ops remain. A constant parameter
(``powc``'s exponent) reaches the rule as a float.

>>> import tracegrad as tg
>>> print(lower(tg.trace(lambda x: tg.relu(x), 1.0), keep={"where", "lt"}))
{ lambda x:f64 .
  v2 = lt x 0.0
  v3 = where v2 0.0 x
  in (v3) }
"""
from ..ops import TABLE, native
from ..tracing import new_builder


def lower(graph, keep=None):
    """A graph computing the same values as ``graph`` with only the ops that ``keep`` accepts.

    ``keep``: a predicate on ``Op``s or a collection of op names; default ``ops.native``.
    """
    if keep is None:
        keep = native
    elif not callable(keep):
        names = frozenset(keep)
        keep = lambda op: op.name in names  # noqa: E731
    while True:
        missing = {op for op in {node[0] for node in graph.nodes} - {"input", "const"} if not keep(TABLE[op])}
        if not missing:
            return graph
        for op in missing:
            if TABLE[op].lower is None:
                raise ValueError(f"op {op!r} has no lowering and the backend does not implement it")
        graph = _lower_once(graph, {op for op, _, _ in graph.nodes} - missing)


def _lower_once(graph, keep):
    """One walk: kept ops are copied node to node, the others traced through their rule."""
    with new_builder() as b:
        env = []  # node of the new graph for each node of the old one
        append, add = env.append, b.add
        for op, args, param in graph.nodes:
            if op == "input":
                append(b.input())
            elif op == "const":
                append(b.const(param))
            elif op in keep:
                append(add(op, tuple([env[a] for a in args]), param))
            else:
                extra = (param,) if TABLE[op].has_param else ()
                append(b.node_of(TABLE[op].lower(*[b.tracer(env[a]) for a in args], *extra)))
        return b.graph([env[o] for o in graph.outputs], graph.names)
