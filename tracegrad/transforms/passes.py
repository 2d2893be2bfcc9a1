"""Graph -> Graph optimisation passes, and ``optimize`` which runs them all.

- ``dce``: drop nodes no output needs (inputs stay).
- ``fold_constants``: evaluate nodes whose arguments are all constants.
- ``cse``: rebuild through the hash-consing ``Builder``, so equal nodes become one.
- ``simplify``: algebraic identities that are exact in IEEE arithmetic (signed
  zeros, inf and nan included): negations move outwards and are absorbed by
  ``add`` / ``sub`` (``a + -b -> a - b``) or by a constant factor
  (``-(2*x) -> -2*x``), and constant factors merge where no rounding can differ
  (``100*(2*x) -> 200*x``: the inner factor a power of two, the outer at least 1).
- ``stabilize``: numerically stable forms, ``log(1 + exp(x)) -> softplus(x)``,
  ``log(sigmoid(x)) -> -softplus(-x)``, ``log(1 + x) -> log1p(x)``. These change
  results on purpose where the original loses accuracy or overflows
  (``log(1 + exp(1000))`` is inf, ``softplus(1000)`` is 1000; ``log1p(-0.0)`` is -0.0).

>>> import tracegrad as tg
>>> g = tg.trace(lambda x: tg.log(1.0 + tg.exp(x)) + -(2.0 * x), 0.0)
>>> print(optimize(g))
{ lambda x:f64 .
  v1 = softplus x
  v3 = mul 2.0 x
  v4 = sub v1 v3
  in (v4) }
"""
import math
from collections import Counter

from ..ir import REGION_OPS, Builder, Graph, map_regions
from ..ops import TABLE, bind


def dce(graph):
    """Remove the nodes that no output depends on.

    >>> import tracegrad as tg
    >>> g = Graph((("input", (), 0), ("sin", (0,), None)), (0,), (0,))
    >>> len(dce(g).nodes)
    1
    """
    b = Builder()  # the builder's own freezing step keeps what the outputs need
    b.nodes, b.inputs, b.custom = list(graph.nodes), list(graph.inputs), list(graph.custom)
    return b.graph(list(graph.outputs), graph.names)


def fold_constants(graph):
    """Replace each node whose arguments are all constants by its value.

    >>> g = Graph((("const", (), 2.0), ("exp", (0,), None)), (), (1,))
    >>> fold_constants(g).nodes
    (('const', (), 7.38905609893065),)
    """
    nodes = list(graph.nodes)
    for i, (op, args, param) in enumerate(nodes):
        if op not in ("input", "const", *REGION_OPS) and all(nodes[a][0] == "const" for a in args):
            value = bind(TABLE[op], *[nodes[a][2] for a in args], param=param)
            nodes[i] = ("const", (), value)
    return dce(Graph(tuple(nodes), graph.inputs, graph.outputs, graph.names, graph.custom))


def _rebuild(graph, rule=None):
    """Replay ``graph`` into a fresh ``Builder`` (CSE, exact folds), letting ``rule`` rewrite nodes.

    ``rule(b, op, args, param, i)`` (``args`` in ``b``, ``i`` the node's index in ``graph``)
    returns a node index of ``b``, or None to keep the node. The outputs of custom rule
    regions stay nodes of their own.
    """
    b = Builder()
    positions = {graph.nodes[i][2]: i for i in graph.inputs}
    new = {positions[k]: b.input() for k in range(len(graph.inputs))}
    region_outs = {o for region in graph.custom for o in region[2]}
    for i, (op, args, param) in enumerate(graph.nodes):
        if op == "input":
            continue
        if op == "const":
            new[i] = b.const(param)
        else:
            args = tuple(new[a] for a in args)
            if op in REGION_OPS:
                new[i] = b.node(op, args, param)
                continue
            index = rule(b, op, args, param, i) if rule else None
            new[i] = b.add(op, args, param) if index is None else index
        if i in region_outs:
            new[i] = b.distinct(new[i])
    for kind, ins, outs, rule in graph.custom:
        b.custom.append((kind, tuple(new[i] for i in ins), tuple(o if o is None else new[o] for o in outs), rule))
    return b.graph([new[o] for o in graph.outputs], graph.names)


def cse(graph):
    """Merge equal nodes (``x*y`` and ``y*x`` too) by rebuilding through the hash-consing builder."""
    return _rebuild(graph)


def _const(b, index):
    op, _, param = b.nodes[index]
    return param if op == "const" and param == param else None


def _is_neg(b, index):
    return b.nodes[index][0] == "neg"


def _power_of_two(c):
    return c != 0.0 and math.isfinite(c) and math.frexp(abs(c))[0] == 0.5


def _push_negations(b, op, args, param, _):
    """Rewrites of ``simplify``'s first sweep; each is exact in IEEE arithmetic."""
    if op in ("mul", "div"):
        for k in (0, 1):  # (-a) * b = -(a * b); a / (-b) = -(a / b)
            if _is_neg(b, args[k]):
                inner = list(args)
                inner[k] = b.nodes[args[k]][1][0]
                product = _push_negations(b, op, tuple(inner), None, None)  # the other factor too
                return b.add("neg", (b.add(op, tuple(inner)) if product is None else product,))
    if op == "mul":
        for k in (0, 1):
            c, x = _const(b, args[k]), args[1 - k]
            if c is None:
                continue
            if c < 0.0:  # c*x = -((-c)*x): constant factors stay positive inside
                return b.add("neg", (b.add("mul", (b.const(-c), x)),))
            inner = b.nodes[x]
            if inner[0] == "mul" and abs(c) >= 1.0:  # c * (2^k * y) = (c * 2^k) * y, no rounding differs
                for j in (0, 1):
                    c2 = _const(b, inner[1][j])
                    if c2 is not None and _power_of_two(c2) and abs(c2) >= 1.0 and math.isfinite(c * c2):
                        return b.add("mul", (b.const(c * c2), inner[1][1 - j]))
    if op == "add":
        for k in (0, 1):  # a + (-b) = a - b
            if _is_neg(b, args[k]):
                return b.add("sub", (args[1 - k], b.nodes[args[k]][1][0]))
    if op == "sub" and _is_neg(b, args[1]):  # a - (-b) = a + b
        return b.add("add", (args[0], b.nodes[args[1]][1][0]))
    return None


def _negated(b, new, graph, old, uses, depth=8):
    """``-node`` as a product with one constant factor negated, or None.

    Only single-use products qualify (``new`` is the node in ``b``, ``old`` the same
    node in ``graph``), so no node is duplicated: -(c*x) = (-c)*x, -(a*(c*x)) = a*((-c)*x).
    """
    op, factors, _ = b.nodes[new]
    if op != "mul" or graph.nodes[old][0] != "mul" or uses[old] != 1 or depth == 0:
        return None
    for k in (0, 1):
        c = _const(b, factors[k])
        if c is not None:
            return b.add("mul", (b.const(-c), factors[1 - k]))
    for k in (0, 1):
        inner = _negated(b, factors[k], graph, graph.nodes[old][1][k], uses, depth - 1)
        if inner is not None:
            return b.add("mul", (inner, factors[1 - k]) if k == 0 else (factors[0], inner))
    return None


def _absorb_negations(graph):
    uses = _uses(graph)

    def rule(b, op, args, param, old):
        if op == "neg":
            return _negated(b, args[0], graph, graph.nodes[old][1][0], uses)
        return None
    return rule


def _uses(graph):
    counts = Counter(a for _, args, _ in graph.nodes for a in args)
    counts.update(graph.outputs)
    return counts


def simplify(graph):
    """IEEE-exact algebraic simplification (see the module docstring).

    >>> import tracegrad as tg
    >>> print(simplify(tg.trace(lambda x, y: x + -(3.0 * (2.0 * y)), 0.0, 0.0)))
    { lambda x:f64, y:f64 .
      v3 = mul 6.0 y
      v4 = sub x v3
      in (v4) }
    """
    pushed = _rebuild(graph, _push_negations)
    return _rebuild(pushed, _absorb_negations(pushed))


def _stable(b, op, args, param, _):
    if op != "log":
        return None
    x = args[0]
    op_x, args_x, _ = b.nodes[x]
    if op_x == "sigmoid":  # log(sigmoid(y)) = -softplus(-y)
        return b.add("neg", (b.add("softplus", (b.add("neg", args_x),)),))
    if op_x == "add":
        for k in (0, 1):
            if _const(b, args_x[k]) == 1.0:
                y = args_x[1 - k]
                if b.nodes[y][0] == "exp":  # log(1 + exp(z)) = softplus(z)
                    return b.add("softplus", b.nodes[y][1])
                return b.add("log1p", (y,))  # log(1 + y) = log1p(y)
    return None


def stabilize(graph):
    """Rewrite ``log(1 + exp(x))``, ``log(sigmoid(x))``, ``log(1 + x)`` into stable forms.

    >>> import tracegrad as tg
    >>> print(stabilize(tg.trace(lambda x: tg.log(tg.sigmoid(x)), 0.0)))
    { lambda x:f64 .
      v1 = neg x
      v2 = softplus v1
      v3 = neg v2
      in (v3) }
    """
    return _rebuild(graph, _stable)


def optimize(graph):
    """Run the passes (stabilize, fold, simplify, CSE, DCE) until the graph stops shrinking.

    >>> import tracegrad as tg
    >>> g = tg.trace(tg.grad(lambda x: 100.0 * (x * x - 1.0) ** 2), 0.0)
    >>> len(optimize(g).nodes) <= len(g.nodes)
    True
    """
    graph = map_regions(graph, optimize)
    for _ in range(4):
        before = len(graph.nodes)
        graph = dce(cse(simplify(fold_constants(stabilize(graph)))))
        if len(graph.nodes) >= before:
            break
    return graph


__all__ = ["dce", "fold_constants", "cse", "simplify", "stabilize", "optimize"]
