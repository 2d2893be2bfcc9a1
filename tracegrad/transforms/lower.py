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
from ..ops import TABLE, bind
from ..tracing import new_builder


def lower(graph, keep):
    """A graph computing the same values as ``graph`` with only the ops in ``keep``."""
    while True:
        missing = {op for op, _, _ in graph.nodes if op not in ("input", "const") and op not in keep}
        if not missing:
            return graph
        for op in missing:
            if TABLE[op].lower is None:
                raise ValueError(f"op {op!r} has no lowering and the backend does not implement it")
        graph = _lower_once(graph, keep)


def _lower_once(graph, keep):
    with new_builder() as b:
        env = []
        for op, args, param in graph.nodes:
            if op == "input":
                env.append(b.tracer(b.input()))
            elif op == "const":
                env.append(param)
            else:
                spec, ins = TABLE[op], [env[a] for a in args]
                if op in keep:
                    env.append(bind(spec, *ins, param=param))
                else:
                    extra = (param,) if spec.has_param else ()
                    env.append(spec.lower(*ins, *extra))
        return b.graph([b.node_of(env[o]) for o in graph.outputs], graph.names)
