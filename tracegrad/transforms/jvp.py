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
        for op, args, param in graph.nodes:
            if op == "input":
                env.append(xs[param])
                tangent.append(ts[param])
                continue
            if op == "const":
                env.append(param)
                tangent.append(None)
                continue
            spec = TABLE[op]
            extra = (param,) if spec.has_param else ()
            ins = [env[a] for a in args]
            out = bind(spec, *ins, param=param)
            t_ins = [tangent[a] for a in args]
            env.append(out)
            tangent.append(None if all(t is None for t in t_ins) else jvp_rule(spec)(t_ins, out, *ins, *extra))
        outputs = [env[o] for o in graph.outputs]
        outputs += [0.0 if tangent[o] is None else tangent[o] for o in graph.outputs]
        names = graph.input_names()
        return b.graph([b.node_of(o) for o in outputs], names + [f"t_{names[k]}" for k in wrt])
