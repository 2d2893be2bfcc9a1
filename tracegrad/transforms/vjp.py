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
from ..ir import evaluate, evaluate_nodes, replay_custom
from ..ops import TABLE, Masked, where
from ..tracing import new_builder


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
        for i in reversed(range(len(graph.nodes))):
            for kind, ins, outs, rule in regions.get(i, ()):  # a user's rule replaces the walk inside
                cts = [None if o is None else _materialise(adjoint.pop(o, None), conds) for o in outs]
                if all(ct is None for ct in cts):
                    continue
                for a, ct in zip(ins, _apply_vjp_rule(kind, rule, [env[a] for a in ins], cts)):
                    if depends[a]:
                        accumulate(a, (), ct)
            if i not in adjoint or i in frozen:
                continue
            op, args, param = graph.nodes[i]
            if op in ("input", "const"):
                continue
            spec = TABLE[op]
            extra = (param,) if spec.has_param else ()
            for mask, g in _by_mask(adjoint.pop(i)):
                cts = spec.vjp(g, env[i], *[env[a] for a in args], *extra)
                for a, ct in zip(args, cts):
                    if ct is None or not depends[a]:
                        continue
                    if isinstance(ct, Masked):
                        cond = b.node_of(ct.cond)
                        conds[cond] = ct.cond
                        mask_a, ct = tuple(sorted(mask + ((cond, ct.negate),))), ct.value
                    else:
                        mask_a = mask
                    accumulate(a, mask_a, ct)
        grads = [_materialise(adjoint.get(graph.inputs[k]), conds) for k in wrt]
        grads = [0.0 if g is None else g for g in grads]
        outputs = ([env[o] for o in graph.outputs] if keep_outputs else []) + grads
        return b.graph([b.node_of(o) for o in outputs], graph.names + _ct_names(graph, seed))


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
