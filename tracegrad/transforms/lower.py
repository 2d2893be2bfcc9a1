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
from ..ir import REGION_OPS, map_regions
from ..ops import TABLE, native
from ..tracing import new_builder


def lower(graph, keep=None, regions=False):
    """A graph computing the same values as ``graph`` with only the ops that ``keep`` accepts.

    ``keep``: a predicate on ``Op``s or a collection of op names; default ``ops.native``.
    ``regions``: keep the scan nodes (lowering their bodies), for a backend that emits
    loops; else they are unrolled (``unroll_graph``).
    """
    if keep is None:
        keep = native
    elif not callable(keep):
        names = frozenset(keep)
        keep = lambda op: op.name in names  # noqa: E731
    graph = map_regions(graph, lambda body: lower(body, keep, True)) if regions else unroll_graph(graph)
    while True:
        missing = {op for op in {node[0] for node in graph.nodes} - {"input", "const", *REGION_OPS}
                   if not keep(TABLE[op])}
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
            elif op in REGION_OPS:
                append(b.node(op, tuple([env[a] for a in args]), param))
            elif op in keep:
                append(add(op, tuple([env[a] for a in args]), param))
            else:
                extra = (param,) if TABLE[op].has_param else ()
                append(b.node_of(TABLE[op].lower(*[b.tracer(env[a]) for a in args], *extra)))
        return b.graph([env[o] for o in graph.outputs], graph.names)


def unroll_graph(graph):
    """A graph without scan nodes: each replaced by its body, step after step (straight-line code).

    >>> import tracegrad as tg
    >>> g = tg.trace(lambda x: tg.fori_loop(0, 3, lambda i, s: s * x, 1.0), 2.0)
    >>> print(unroll_graph(g))
    { lambda x:f64 .
      v1 = mul x x
      v2 = mul v1 x
      in (v2) }
    """
    if "scan" not in graph.stats():
        return graph
    graph = map_regions(graph, unroll_graph)
    with new_builder() as b:
        env = []  # node of the new graph (or a float, or a region's list of them) for each old node
        for op, args, param in graph.nodes:
            if op == "input":
                env.append(b.tracer(b.input()))
            elif op == "const":
                env.append(param)
            elif op == "scan":
                env.append(param.run([env[a] for a in args]))
            elif op == "part":
                env.append(env[args[0]][param])
            else:
                env.append(TABLE[op](*[env[a] for a in args], param=param))
        return b.graph([b.node_of(env[o]) for o in graph.outputs], graph.names)
