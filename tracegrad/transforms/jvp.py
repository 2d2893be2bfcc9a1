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
from ..ir import Region, apply_region, evaluate, evaluate_nodes, replay_custom
from ..ops import TABLE, jvp_rule
from ..tracing import new_builder, trace_flat


def jvp_graph(graph, wrt=None):
    """Inputs: the graph's inputs, then one tangent per input (per ``wrt`` position if given).

    Outputs: the outputs, then their tangents.
    """
    wrt = range(len(graph.inputs)) if wrt is None else wrt
    with new_builder() as b:
        xs = [b.tracer(b.input()) for _ in graph.inputs]
        seeds = [{} for _ in graph.inputs]
        for k in wrt:
            seeds[k] = {0: b.tracer(b.input())}  # a single direction, 0
        env, tangents = forward_sweep(graph, xs, seeds)
        outputs = [env[o] for o in graph.outputs] + [tangents[o].get(0, 0.0) for o in graph.outputs]
        names = graph.input_names()
        return b.graph([b.node_of(o) for o in outputs], names + [f"t_{names[k]}" for k in wrt])


def forward_sweep(graph, xs, seeds):
    """Replay ``graph`` on ``xs`` and push tangents along several directions at once.

    ``seeds[k]`` maps each direction to the tangent of input ``k``. Returns the value of
    every node and its tangents, a dict holding only the directions with a nonzero one
    (a node that depends on few inputs carries few directions).
    """
    env, tangents = evaluate_nodes(graph, xs), []
    none = {}  # no tangent (shared, never written)
    regions = {o: region for region in graph.custom for o in region[2] if o is not None}
    for i, (op, args, param) in enumerate(graph.nodes):
        if op == "input":
            tangents.append(seeds[param])
        elif op == "const":
            tangents.append(none)
        elif op == "scan":  # the tangent of a loop is a loop (a list of tangents, one per output)
            t_args = [tangents[a] for a in args]
            tangents.append({d: _scan_jvp(param, [env[a] for a in args], [ts.get(d) for ts in t_args])
                             for d in _directions(t_args)} or none)
        elif op == "part":
            tangent = {d: ts[param] for d, ts in tangents[args[0]].items() if ts[param] is not None}
            tangents.append(tangent or none)
        else:
            spec = TABLE[op]
            extra = (param,) if spec.has_param else ()
            ins = [env[a] for a in args]
            out = env[i]
            t_args = [tangents[a] for a in args]
            tangent = {}
            for d in _directions(t_args):
                t = jvp_rule(spec)([ts.get(d) for ts in t_args], out, *ins, *extra)
                if t is not None:
                    tangent[d] = t
            tangents.append(tangent or none)
        if i in regions:  # a user's rule replaces the derived tangent
            kind, ins, outs, rule = regions[i]
            t_args = [tangents[a] for a in ins]
            tangent = {}
            for d in _directions(t_args):
                t = _rule_tangent(kind, rule, [env[a] for a in ins], [ts.get(d) for ts in t_args],
                                  outs.index(i))
                if t is not None:
                    tangent[d] = t
            tangents[i] = tangent or none
    replay_custom(graph, env)
    return env, tangents


def _scan_jvp(r, args, t_args):
    """The tangents of the outputs of a scan node of region ``r``: one scan carrying the values
    and their tangents together, its body the body's jvp."""
    n_c, n_k, n_x, n_y = r.n_carry, r.n_const, r.n_x, r.n_y
    forward = jvp_graph(r.body, range(1, len(r.body.inputs)))  # inputs: step, c, x, k, then their tangents

    def step(t, carry, row, consts):
        out = evaluate(forward, [t, *carry[:n_c], *row[:n_x], *consts[:n_k], *carry[n_c:], *row[n_x:],
                                 *consts[n_k:]])
        m = n_c + n_y
        return [*out[:n_c], *out[m:m + n_c]], [*out[n_c:m], *out[m + n_c:]]
    body = trace_flat(step, (0.0, [0.0] * (2 * n_c), [0.0] * (2 * n_x), [0.0] * (2 * n_k)))[0]
    zero = [0.0 if t is None else t for t in t_args]
    carry, consts, rows = r.split(args)
    t_carry, t_consts, t_rows = r.split(zero)
    flat = [*carry, *t_carry, *consts, *t_consts]
    for row, t_row in zip(rows, t_rows):
        flat += [*row, *t_row]
    out = apply_region(Region(body, r.length, 2 * n_c, 2 * n_k), flat)
    tangents = out[n_c:2 * n_c]
    for t in range(r.length):
        start = 2 * n_c + t * 2 * n_y + n_y
        tangents += out[start:start + n_y]
    return tangents


def _directions(tangents):
    """The directions of a node's arguments' tangents, in order of first appearance."""
    if len(tangents) == 1:
        return tangents[0]
    return dict.fromkeys(d for ts in tangents for d in ts)


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
