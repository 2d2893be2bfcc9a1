"""Forward mode: push one tangent per input through a graph in a single forward walk.

>>> import tracegrad as tg
>>> g = tg.trace(lambda x: x * x, 3.0)
>>> print(jvp_graph(g))
{ lambda x:f64, t_x:f64 .
  v2 = mul x x
  v3 = mul t_x x
  v4 = add v3 v3
  in (v2, v4) }
"""
from ..ir import evaluate, replay_custom
from ..ops import TABLE, bind, jvp_rule
from ..tracing import new_builder


def jvp_graph(graph, wrt=None):
    """Inputs: the graph's inputs, then one tangent per input (per ``wrt`` position if given).

    Outputs: the outputs, then their tangents.
    """
    wrt = range(len(graph.inputs)) if wrt is None else wrt
    with new_builder() as b:
        xs = [b.tracer(b.input()) for _ in graph.inputs]
        ts = [None] * len(graph.inputs)
        for k in wrt:
            ts[k] = b.tracer(b.input())
        env, tangent = [], []
        regions = {o: region for region in graph.custom for o in region[2] if o is not None}
        for i, (op, args, param) in enumerate(graph.nodes):
            if op == "input":
                env.append(xs[param])
                tangent.append(ts[param])
            elif op == "const":
                env.append(param)
                tangent.append(None)
            else:
                spec = TABLE[op]
                extra = (param,) if spec.has_param else ()
                ins = [env[a] for a in args]
                out = bind(spec, *ins, param=param)
                t_ins = [tangent[a] for a in args]
                env.append(out)
                tangent.append(None if all(t is None for t in t_ins) else jvp_rule(spec)(t_ins, out, *ins, *extra))
            if i in regions:  # a user's rule replaces the derived tangent
                kind, ins, outs, rule = regions[i]
                tangent[i] = _rule_tangent(kind, rule, [env[a] for a in ins], [tangent[a] for a in ins],
                                           outs.index(i))
        replay_custom(graph, env)
        outputs = [env[o] for o in graph.outputs]
        outputs += [0.0 if tangent[o] is None else tangent[o] for o in graph.outputs]
        names = graph.input_names()
        return b.graph([b.node_of(o) for o in outputs], names + [f"t_{names[k]}" for k in wrt])


def _rule_tangent(kind, rule, ins, t_ins, k):
    """The tangent of output ``k`` of a custom rule region, given the tangents of its inputs."""
    if all(t is None for t in t_ins):
        return None
    if kind == "jvp":
        return evaluate(rule, ins + [0.0 if t is None else t for t in t_ins])[k]
    # a vjp rule gives row k of the Jacobian for the cotangent e_k
    seed = [1.0 if j == k else 0.0 for j in range(len(rule.inputs) - len(ins))]
    total = None
    for row, t in zip(evaluate(rule, ins + seed), t_ins):
        if t is not None:
            total = row * t if total is None else total + row * t
    return total
