"""Rewrite derived ops into the core ops a backend implements, with each op's ``lower`` facet.

The walk is the usual replay loop: ops in ``keep`` are re-bound as they are, the others
are replaced by their ``lower`` rule; a rule may use other derived ops (softplus uses
maximum), so the walk repeats until only kept ops remain. A constant parameter
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
    """A graph computing the same values as ``graph`` with only the ops in ``keep`` (default: the native ones)."""
    if keep is None:
        keep = {name for name, op in TABLE.items() if native(op)}
    while True:
        missing = {op for op, _, _ in graph.nodes if op not in ("input", "const") and op not in keep}
        if not missing:
            return graph
        for op in missing:
            if TABLE[op].lower is None:
                raise ValueError(f"op {op!r} has no lowering and the backend does not implement it")
        graph = _lower_once(graph, keep)


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
