"""Jacobians, Hessians and Hessian-vector products, as ordinary ``Function``s.

Each builds one graph per argument structure from the traced function: ``jacrev``
one reverse sweep per output, replayed into one builder so that they share the forward
computation; ``jacfwd`` one forward sweep that carries a tangent per input, where a node
holds only the tangents of the inputs it depends on (the Hessian of a function with a
sparse Hessian stays linear in size and build time). The results compose
with ``jit``, ``grad`` and each other (``hessian`` is ``jacfwd(jacrev(f))``).

>>> import tracegrad as tg
>>> tg.jacobian(lambda x, y: [x * y, x + y], argnums=(0, 1))(2.0, 3.0)
[(3.0, 2.0), (1.0, 1.0)]
>>> tg.hessian(lambda x: x ** 3)(2.0)
12.0
"""
import functools

from .api import Function, _check_callable, _leaf_ranges, _normalize_argnums, grad, jit, jvp
from .ir import Graph, evaluate
from .pytree import LEAF, flatten
from .tracing import new_builder, trace_flat
from .transforms import vjp_graph
from .transforms.jvp import forward_sweep
from .transforms.passes import dce


def _jacobian_graph(fn, args, argnums, mode):
    single, nums = _normalize_argnums(argnums, len(args))
    graph, out_tree, captured = trace_flat(fn, args)
    ranges = _leaf_ranges(args)
    wrt = [k for a in nums for k in range(*ranges[a])]
    with new_builder() as b:
        xs = [b.tracer(b.input()) for _ in graph.inputs]
        if mode == "rev":
            rows = []
            for out in graph.outputs:  # one reverse sweep per output, over the nodes it needs
                one = dce(Graph(graph.nodes, graph.inputs, (out,), graph.names, graph.custom))
                rows.append(evaluate(vjp_graph(one, wrt, seed=1.0, keep_outputs=False), xs))
        else:  # one forward sweep, each input of wrt a direction of its own
            seeds = [{} for _ in graph.inputs]
            for k in wrt:
                seeds[k] = {k: 1.0}
            tangents = forward_sweep(graph, xs, seeds)[1]
            rows = [[tangents[o].get(k) for k in wrt] for o in graph.outputs]  # None: zero
        zero = b.const(0.0)  # most entries of a large sparse Jacobian
        outputs = [zero if d is None else b.node_of(d) for row in rows for d in row]
        jac = b.graph(outputs, graph.names)
    trees = [flatten(args[a])[1] for a in nums]
    in_tree = trees[0] if single else ("tuple", tuple(trees))
    return jac, _nest(out_tree, in_tree), captured


def _nest(out_tree, in_tree):
    """The tree of a Jacobian: ``out_tree`` with each leaf replaced by ``in_tree``."""
    kind = out_tree[0]
    if kind == "leaf":
        return in_tree
    if kind == "array":
        if in_tree[0] == "array":
            return ("array", out_tree[1] + in_tree[1])
        return _nest(_as_lists(out_tree[1]), in_tree)
    if kind == "dict":
        return ("dict", out_tree[1], tuple(_nest(t, in_tree) for t in out_tree[2]))
    return (kind, tuple(_nest(t, in_tree) for t in out_tree[1]))


def _as_lists(shape):
    if not shape:
        return LEAF
    return ("list", (_as_lists(shape[1:]),) * shape[0])


def _jacobian_function(fn, argnums, backend, mode, name):
    _check_callable(fn, name)
    return Function(fn, lambda args: _jacobian_graph(fn, args, argnums, mode), backend)


def jacrev(fn, argnums=0, *, backend=None):
    """The Jacobian by reverse mode (one sweep per output): best for few outputs.

    The result has ``fn``'s output structure, each leaf replaced by the structure of
    the argument(s) ``argnums``.

    >>> import tracegrad as tg
    >>> tg.jacrev(lambda x: [x * x, tg.sin(x)])(0.0)
    [0.0, 1.0]
    """
    return _jacobian_function(fn, argnums, backend, "rev", "jacrev")


def jacfwd(fn, argnums=0, *, backend=None):
    """The Jacobian by forward mode (one sweep per input): best for few inputs.

    >>> import tracegrad as tg
    >>> tg.jacfwd(lambda x, y: x * y, argnums=(0, 1))(2.0, 3.0)
    (3.0, 2.0)
    """
    return _jacobian_function(fn, argnums, backend, "fwd", "jacfwd")


jacobian = jacrev


def hessian(fn, argnums=0, *, backend=None):
    """The Hessian of a scalar function, as ``jacfwd(jacrev(fn))``: forward over reverse.

    >>> import tracegrad as tg
    >>> tg.hessian(lambda x, y: x * x * y, argnums=(0, 1))(1.0, 2.0)
    ((4.0, 2.0), (2.0, 0.0))
    """
    _check_callable(fn, "hessian")
    return jacfwd(jacrev(fn, argnums), argnums, backend=backend)


def hvp(fn, *, backend=None):
    """Hessian-vector products without forming the Hessian: ``hvp(fn)(primals, tangents)``.

    ``primals`` and ``tangents`` are tuples with one entry per argument of ``fn``; the
    result is a tuple of the same structure. Costs a small multiple of one gradient.

    >>> import tracegrad as tg
    >>> tg.hvp(lambda x, y: x * x * y)((1.0, 2.0), (1.0, 0.0))
    (4.0, 2.0)
    """
    _check_callable(fn, "hvp")

    @functools.wraps(fn)
    def product(primals, tangents):
        if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
            raise TypeError("hvp takes primals and tangents as tuples: tg.hvp(f)((x, y), (dx, dy))")
        gradient = grad(fn, argnums=tuple(range(len(primals))))
        return jvp(gradient, tuple(primals), tuple(tangents))[1]
    return jit(product, backend=backend)


__all__ = ["jacobian", "jacfwd", "jacrev", "hessian", "hvp"]
