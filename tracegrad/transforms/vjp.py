"""Reverse mode: build the adjoint graph of a graph with one backward walk.

Cotangents are accumulated per node; ``None`` is a structural zero and is never
materialised. A cotangent that comes out of a ``where`` carries its mask (the
condition under which it exists) down to the inputs, where it becomes
``where(cond, g, 0.0)``: a nan or inf on the side not taken cannot leak into the
gradient, while ordinary arithmetic keeps IEEE rules.

>>> import tracegrad as tg
>>> g = tg.trace(lambda x: x * x, 3.0)
>>> print(vjp_graph(g, wrt=[0], seed=1.0, keep_outputs=False))
{ lambda x:f64 .
  v1 = add x x
  in (v1) }
"""
from ..ir import Graph, Region, apply_region, evaluate, evaluate_nodes, replay_custom
from ..ops import TABLE, Masked, where
from ..tracing import new_builder, trace_flat


def _depends(graph, wrt):
    """For each node, whether it depends on one of the ``wrt`` inputs (the outputs of a custom
    rule region do if its inputs do, as the rule says, whatever the body computes)."""
    dep = [False] * len(graph.nodes)
    for i in wrt:
        dep[graph.inputs[i]] = True
    region_ins = {o: region[1] for region in graph.custom for o in region[2] if o is not None}
    for i, (_, args, _) in enumerate(graph.nodes):
        for a in (*args, *region_ins.get(i, ())):
            if dep[a]:
                dep[i] = True
                break
    return dep


def vjp_graph(graph, wrt, seed=None, keep_outputs=True):
    """The adjoint of ``graph`` with respect to the inputs at positions ``wrt``.

    Inputs of the result: the graph's inputs, then (if ``seed`` is None) one cotangent
    per output. Outputs: the graph's outputs (if ``keep_outputs``), then the
    cotangent of each ``wrt`` input. A float ``seed`` is used as every output's cotangent.
    """
    graph, stored = _store_carries(graph)
    with new_builder() as b:
        xs = [b.tracer(b.input()) for _ in graph.inputs]
        if seed is None:
            seeds = [b.tracer(b.input()) for _ in graph.outputs]
        else:
            seeds = [seed] * len(graph.outputs)
        env = evaluate_nodes(graph, xs)
        replay_custom(graph, env)
        depends = _depends(graph, wrt)
        # node -> its cotangent, or once a masked one arrives {mask: cotangent}, where a mask
        # is a tuple of (cond node, negate) and the unmasked cotangent has the mask ()
        adjoint = {}
        conds = {}    # cond node -> its tracer

        def accumulate(node, mask, ct):
            slot = adjoint.get(node)
            if type(slot) is not dict:
                if not mask:
                    adjoint[node] = ct if slot is None else slot + ct
                    return
                slot = adjoint[node] = {} if slot is None else {(): slot}
            slot[mask] = ct if mask not in slot else slot[mask] + ct

        for out, ct in zip(graph.outputs, seeds):
            if depends[out]:
                accumulate(out, (), ct)
        frozen, regions = _regions(graph)
        scan_cts = {}  # scan node -> {output position: cotangent}
        for i in reversed(range(len(graph.nodes))):
            for kind, ins, outs, rule in regions.get(i, ()):  # a user's rule replaces the walk inside
                cts = [None if o is None else _materialise(adjoint.pop(o, None), conds) for o in outs]
                if all(ct is None for ct in cts):
                    continue
                for a, ct in zip(ins, _apply_vjp_rule(kind, rule, [env[a] for a in ins], cts)):
                    if depends[a]:
                        accumulate(a, (), ct)
            op, args, param = graph.nodes[i]
            if op == "scan":  # the adjoint of a loop is a loop: a reverse scan
                cts = scan_cts.pop(i, None)
                if cts:
                    region, carries = stored.get(i, (param, []))
                    for a, ct in zip(args, _scan_vjp(region, param, [env[a] for a in args],
                                                     [env[c] for c in carries], cts)):
                        if ct is not None and depends[a]:
                            accumulate(a, (), ct)
                continue
            if i not in adjoint or i in frozen:
                continue
            if op in ("input", "const"):
                continue
            if op == "part":
                ct = _materialise(adjoint.pop(i), conds)
                if ct is not None:
                    scan_cts.setdefault(args[0], {})[param] = ct
                continue
            spec = TABLE[op]
            rule, ins = spec.vjp, [env[a] for a in args]
            if spec.has_param:
                ins.append(param)
            slot = adjoint.pop(i)
            for mask, g in slot.items() if type(slot) is dict else (((), slot),):
                for a, ct in zip(args, rule(g, env[i], *ins)):
                    if ct is None or not depends[a]:
                        continue
                    if type(ct) is Masked:
                        cond = b.node_of(ct.cond)
                        conds[cond] = ct.cond
                        accumulate(a, tuple(sorted(mask + ((cond, ct.negate),))), ct.value)
                    elif not mask and a not in adjoint:  # the first cotangent of a: accumulate's common case
                        adjoint[a] = ct
                    else:
                        accumulate(a, mask, ct)
        grads = [_materialise(adjoint.get(graph.inputs[k]), conds) for k in wrt]
        grads = [0.0 if g is None else g for g in grads]
        outputs = ([env[o] for o in graph.outputs] if keep_outputs else []) + grads
        return b.graph([b.node_of(o) for o in outputs], graph.names + _ct_names(graph, seed))


def _store_carries(graph):
    """``graph`` with each scan (that has a carry and steps) also yielding the carry it starts
    each step with, for its reverse scan: ``(graph, {scan node: (its region, the part nodes of
    the stored carries, step after step)})``."""
    nodes, stored = list(graph.nodes), {}
    for i, (op, args, r) in enumerate(graph.nodes):
        if op == "scan" and r.n_carry and r.length:
            body = r.body
            carry_in = body.inputs[1:1 + r.n_carry]
            nodes[i] = ("scan", args, r.with_body(Graph(body.nodes, body.inputs, body.outputs + carry_in,
                                                        body.names, body.custom)))
            stored[i] = (r, [])
    if not stored:
        return graph, stored
    for i, (op, args, k) in enumerate(nodes):
        if op == "part" and args[0] in stored:
            r = stored[args[0]][0]
            nodes[i] = ("part", args, _stored_position(r, k))
    for i, (r, parts) in stored.items():
        n_c, n_y, args = r.n_carry, r.n_y, (i,)
        parts.extend(range(len(nodes), len(nodes) + r.length * n_c))
        nodes.extend(("part", args, n_c + t * (n_y + n_c) + n_y + j) for t in range(r.length) for j in range(n_c))
    return Graph(tuple(nodes), graph.inputs, graph.outputs, graph.names, graph.custom), stored


def _stored_position(r, k):
    """Where output ``k`` of the region ``r`` is among the outputs of its carry-storing form."""
    if k < r.n_carry:
        return k
    t, j = divmod(k - r.n_carry, r.n_y)
    return r.n_carry + t * (r.n_y + r.n_carry) + j


def _scan_vjp(r, stored_region, args, carries, cts):
    """The cotangents of the args of a scan node of region ``r`` (one per arg, in order), from
    ``cts`` (output position in ``stored_region`` -> cotangent) and the stored ``carries``.

    A reverse scan: its carry is the carry's cotangent and the sums of the constants'
    cotangents; step s runs the body's vjp at step T-1-s on the carry stored there.
    """
    n_c, n_k, n_x, n_y, steps = r.n_carry, r.n_const, r.n_x, r.n_y, r.length
    back = vjp_graph(r.body, list(range(1, len(r.body.inputs))), keep_outputs=False)

    def step(s, carry, row, consts):  # back's inputs: step, carry, row, constants, cotangents of outputs
        c_t, x_t, ct_y = row[:n_c], row[n_c:n_c + n_x], row[n_c + n_x:]
        g = evaluate(back, [(steps - 1.0) - s, *c_t, *x_t, *consts, *carry[:n_c], *ct_y])
        return [*g[:n_c], *[a + b for a, b in zip(carry[n_c:], g[n_c + n_x:])]], g[n_c:n_c + n_x]
    body = trace_flat(step, (0.0, [0.0] * (n_c + n_k), [0.0] * (n_c + n_x + n_y), [0.0] * n_k))[0]
    carry0, consts, rows = r.split(args)
    zero = 0.0
    flat = [*[cts.get(j, zero) for j in range(n_c)], *[zero] * n_k, *consts]
    for t in reversed(range(steps)):
        ys = [cts.get(_stored_position(r, n_c + t * n_y + j), zero) for j in range(n_y)]
        flat += [*carries[t * n_c:(t + 1) * n_c], *rows[t], *ys]
    out = apply_region(Region(body, steps, n_c + n_k, n_k), flat)
    ct_xs = out[:n_c + n_k]
    for t in range(steps):
        start = n_c + n_k + (steps - 1 - t) * n_x
        ct_xs += out[start:start + n_x]
    return ct_xs


def _regions(graph):
    """The nodes whose derived vjp a rule replaces, and the regions by their first output node.

    A region is applied at its first output, once all cotangents of its outputs are in (its
    outputs are nodes of their own, after its inputs: ``Graph.verify``).
    """
    frozen, regions = set(), {}
    for region in graph.custom:
        outs = [o for o in region[2] if o is not None]
        frozen.update(outs)
        regions.setdefault(min(outs), []).append(region)
    return frozen, regions


def _apply_vjp_rule(kind, rule, ins, cts):
    cts = [0.0 if ct is None else ct for ct in cts]
    if kind == "vjp":
        return evaluate(rule, ins + cts)
    # a jvp rule is linear in the tangents: its transpose is its vjp in the tangents
    n = len(ins)
    transpose = vjp_graph(rule, list(range(n, 2 * n)), keep_outputs=False)
    return evaluate(transpose, ins + [0.0] * n + cts)


def _by_mask(slot):
    """The (mask, cotangent) pairs of a node's ``adjoint`` entry."""
    return slot.items() if type(slot) is dict else [((), slot)]


def _materialise(slot, conds):
    if slot is None:
        return None
    total = None
    for mask, g in _by_mask(slot):
        for cond, negate in mask:
            g = where(conds[cond], 0.0, g) if negate else where(conds[cond], g, 0.0)
        total = g if total is None else total + g
    return total


def _ct_names(graph, seed):
    if seed is not None or len(graph.names) != len(graph.inputs):
        return ()
    return tuple(f"ct_{i}" for i in range(len(graph.outputs)))
