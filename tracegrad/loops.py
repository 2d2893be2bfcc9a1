"""Loops that stay loops: ``map``, ``scan`` and ``fori_loop`` with JAX's signatures.

Inside a traced function the body is traced once, into a ``scan`` node of the IR
(``ir.Region``): the graph, its derivatives and its compile time follow the body, not the
number of steps. Outside a trace they are plain Python loops (on floats or ``Value``s).
``unroll=True`` (or ``tg.unroll(f)``) records the steps one after another instead, as a
Python loop would: straight-line code, best for a handful of steps.

>>> import tracegrad as tg
>>> def power(x):  # x ** 5 by repeated multiplication
...     return tg.fori_loop(0, 5, lambda i, acc: acc * x, 1.0)
>>> tg.grad(power)(2.0)
80.0
>>> g = tg.trace(power, 2.0)
>>> g.stats()["scan"], g.stats()["mul"]
(1, 0)
"""
import math

from .ir import Graph, Region, apply_region, evaluate
from .pytree import flatten, loaded_numpy, unflatten
from .tracing import _depth, trace_flat
from .transforms.lower import unroll_graph


def scan(f, init, xs=None, length=None, reverse=False, unroll=False, checkpoint=None):
    """Carry a state through ``f`` over steps: ``f(carry, x) -> (carry, y)``, as ``jax.lax.scan``.

    Returns ``(final carry, ys)``. ``xs``: rows, one per step (a list of rows of one
    structure, a numpy array whose leading axis is the steps, or a tuple / dict of
    those, sliced together as JAX does), or None with ``length`` steps. ``ys`` stacks
    the ``y`` of each step as JAX does (arrays with the steps as leading axis), or is a
    list of them where ``xs`` is a list. ``reverse`` runs the steps last to first.

    ``checkpoint``: its gradient stores the carry of every step by default; with
    ``checkpoint=k`` (an int) it stores one carry every ``k`` steps and recomputes the
    others, a segment at a time, as it goes back (``True``: ``k`` about the square root
    of the steps): memory for ``steps / k + k`` carries instead of ``steps``, for one
    more forward pass. The loop is then a loop of segments of ``k`` steps.

    >>> import tracegrad as tg
    >>> tg.scan(lambda c, x: (c + x, c * x), 0.0, [1.0, 2.0, 3.0])
    (6.0, [0.0, 2.0, 9.0])
    >>> tg.grad(lambda a: tg.scan(lambda c, x: (c * a, None), 1.0, length=3)[0])(2.0)
    12.0
    """
    if not callable(f):
        raise TypeError(f"scan takes a function f(carry, x) -> (carry, y), got {type(f).__name__}")
    steps, rows, as_list, example = _rows(xs, length, "scan")
    return _loop(lambda t, c, x: f(c, x), init, steps, rows, as_list, example, reverse, unroll, "scan",
                 _segment(checkpoint, steps, "scan"))


def fori_loop(lower, upper, body, init_val, unroll=False, checkpoint=None):
    """``body(i, val) -> val`` for ``i`` from ``lower`` to ``upper - 1``, as ``jax.lax.fori_loop``.

    ``lower`` and ``upper`` are integers (the number of steps is fixed when traced); ``i``
    is the step as a float (traced inside a trace). ``checkpoint`` as in ``scan``.

    >>> import tracegrad as tg
    >>> tg.fori_loop(1, 4, lambda i, s: s + i, 0.0)
    6.0
    """
    if not callable(body):
        raise TypeError(f"fori_loop takes a function body(i, val) -> val, got {type(body).__name__}")
    lo, hi = (_integer(v, name) for v, name in ((lower, "lower"), (upper, "upper")))
    steps = max(hi - lo, 0)
    carry, _ = _loop(lambda t, c, x: (body(t + lo if lo else t, c), None), init_val, steps, [None] * steps, False, None,
                     False, unroll, "fori_loop", _segment(checkpoint, steps, "fori_loop"))
    return carry


def map(f, xs, unroll=False):
    """``f`` applied to each row of ``xs``, as ``jax.lax.map``; the body is traced once.

    ``xs``: a list of rows of one structure (the result is the list of results), or an
    array whose leading axis is the rows, or a tuple / dict of them (the results are
    stacked as JAX does).

    >>> import numpy as np, tracegrad as tg
    >>> tg.map(lambda row: row[0] * row[1], np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([ 2., 12.])
    >>> tg.grad(lambda w: sum(tg.map(lambda r: r * w, [1.0, 2.0, 3.0])))(5.0)
    6.0
    """
    if not callable(f):
        raise TypeError(f"map takes a function f(row) and rows, got {type(f).__name__}")
    steps, rows, as_list, example = _rows(xs, None, "map")
    return _loop(lambda t, c, x: ((), f(x)), (), steps, rows, as_list, example, False, unroll, "map")[1]


def unroll(fn):
    """``fn`` with its loops unrolled: every step recorded, straight-line code (or a ``Graph``'s
    scan nodes replaced by their steps).

    >>> import tracegrad as tg
    >>> f = lambda x: tg.fori_loop(0, 3, lambda i, s: s * x, 1.0)
    >>> tg.trace(tg.unroll(f), 2.0).stats()["mul"], tg.unroll(f)(2.0)
    (2, 8.0)
    """
    if isinstance(fn, Graph):
        return unroll_graph(fn)
    if not callable(fn):
        raise TypeError(f"unroll takes a function or a Graph, got {type(fn).__name__}")

    def unrolled(*args):
        graph, out_tree, captured = trace_flat(fn, args)
        return unflatten(out_tree, evaluate(unroll_graph(graph), flatten(args)[0] + list(captured)))
    return unrolled


def _integer(v, name):
    np = loaded_numpy()
    if isinstance(v, int if np is None else (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    raise TypeError(f"fori_loop's {name} must be an integer (the number of steps is fixed when traced), "
                    f"got {type(v).__name__} {v!r:.60}")


def _rows(xs, length, name):
    """``(steps, rows, as_list, example)`` of the ``xs`` of a scan or map (``example``: the
    structure of a row, for tracing the body where there are none)."""
    if xs is None:
        if length is None:
            raise TypeError(f"{name} needs xs or length")
        steps = _integer(length, "length")
        if steps < 0:
            raise ValueError(f"{name}'s length must be at least 0, got {steps}")
        return steps, [None] * steps, False, None
    rows, example = _slices(xs, name)
    if length is not None and _integer(length, "length") != len(rows):
        raise ValueError(f"{name}'s length {length} differs from the {len(rows)} rows of xs")
    return len(rows), rows, isinstance(xs, list), example


def _slices(xs, name):
    if isinstance(xs, list):
        return xs, xs[0] if xs else ()
    np = loaded_numpy()
    if np is not None and isinstance(xs, np.ndarray) and xs.ndim > 0:
        return list(xs), np.zeros(xs.shape[1:]) if xs.ndim > 1 else 0.0
    if isinstance(xs, (tuple, dict)) and not hasattr(xs, "_fields") and len(xs):
        keys = sorted(xs) if isinstance(xs, dict) else range(len(xs))
        parts = [_slices(xs[k], name) for k in keys]
        if len({len(p) for p, _ in parts}) != 1:
            raise ValueError(f"the entries of {name}'s xs have different numbers of rows: "
                             f"{[len(p) for p, _ in parts]}")
        pack = (lambda r: dict(zip(keys, r))) if isinstance(xs, dict) else tuple
        return [pack(r) for r in zip(*[p for p, _ in parts])], pack([e for _, e in parts])
    raise TypeError(f"{name} takes its rows as a list, a numpy array (rows along the first axis) or a "
                    f"tuple / dict of them, got {type(xs).__name__} {xs!r:.60}")


def _tree(x):
    """The leaves and structure of ``x``, None being an empty structure (as in JAX)."""
    return flatten(() if x is None else x)


def _segment(checkpoint, steps, name):
    """The steps of a segment for ``checkpoint`` (see ``scan``), or None: store every carry."""
    if checkpoint is None or checkpoint is False:
        return None
    if checkpoint is True:
        return max(1, math.isqrt(steps - 1) + 1) if steps > 1 else None
    np = loaded_numpy()
    if not isinstance(checkpoint, int if np is None else (int, np.integer)):
        raise TypeError(f"{name}'s checkpoint must be True or a number of steps (an int), got "
                        f"{type(checkpoint).__name__} {checkpoint!r:.40}")
    if checkpoint < 1:
        raise ValueError(f"{name}'s checkpoint must be True or a number of steps >= 1, got {checkpoint!r}")
    return int(checkpoint)


def _loop(body, init, steps, rows, as_list, example, reverse, unroll, name, segment=None):
    """The loop of every construct: ``body(t, carry, x) -> (carry, y)`` over ``rows``; with
    ``segment``, traced as a loop over segments of that many steps (``_checkpointed``)."""
    order = list(reversed(range(steps))) if reverse else list(range(steps))
    init_leaves, init_tree = _tree(init)
    if unroll or _depth() == 0:  # a plain Python loop (outside a trace it is what runs)
        carry, ys = init, [None] * steps
        for t in order:
            carry, ys[t] = _checked(body(float(t), carry, rows[t]), init_tree, name)
        return carry, _stack(ys, as_list, _tree(ys[0])[1] if ys and ys[0] is not None else None)
    if segment is not None and segment < steps:
        return _checkpointed(body, init, steps, [rows[t] for t in order], as_list, example, reverse, name, segment)
    x_tree = _tree(example)[1]
    flat_rows = []
    for t in order:
        leaves, tree = _tree(rows[t])
        if tree != x_tree:
            raise TypeError(f"the rows of {name}'s xs must all have one structure: row {t} is {tree}, "
                            f"the first {x_tree}")
        flat_rows.extend(leaves)
    y_tree = []

    def traced(s, carry, x):
        x = None if example is None else x
        new, y = _checked(body(steps - 1.0 - s if reverse else s, carry, x), init_tree, name)
        y_tree.append(None if y is None else _tree(y)[1])
        return new, () if y is None else y
    graph, _, captured = trace_flat(traced, (0.0, init, () if example is None else example))
    region = Region(graph, steps, len(init_leaves), len(captured))
    out = apply_region(region, [*init_leaves, *captured, *flat_rows])
    c, n_y = region.n_carry, region.n_y
    carry = unflatten(init_tree, out[:c])
    if y_tree[0] is None:
        return carry, [None] * steps if as_list else None
    ys = [unflatten(y_tree[0], out[c + s * n_y:c + (s + 1) * n_y]) for s in range(steps)]
    if reverse:
        ys.reverse()
    return carry, _stack(ys, as_list, y_tree[0])


def _checkpointed(body, init, steps, rows, as_list, example, reverse, name, k):
    """``_loop`` as a loop over segments of ``k`` steps (and one of the rest), each a loop: the
    gradient of the outer loop stores the carry a segment starts with, and the vjp of its
    body (the inner loop) recomputes that segment's carries. ``rows`` in the order run."""
    def index(e):  # the step number of the e-th step run
        return (steps - 1.0) - e if reverse else e

    def inner(first, carry, seg_rows, count):
        ys = _loop(lambda t, c, x: body(index(first + t), c, x), carry, count, seg_rows, True, example, False, False,
                   name)
        return ys[0], ys[1] if ys[1] and ys[1][0] is not None else None
    n_seg = steps // k
    segments = [rows[s * k:(s + 1) * k] for s in range(n_seg)] if example is not None else [None] * n_seg
    carry, ys = _loop(lambda t, c, seg: inner(t * float(k), c, seg if seg is not None else [None] * k, k), init,
                      n_seg, segments, True, None if example is None else [example] * k, False, False, name)
    ys = [y for seg in ys if seg is not None for y in seg]
    if steps % k:
        carry, tail = inner(float(n_seg * k), carry, rows[n_seg * k:], steps % k)
        ys += tail or []
    if not ys:
        return carry, [None] * steps if as_list else None
    if reverse:
        ys.reverse()
    return carry, _stack(ys, as_list, _tree(ys[0])[1])


def _checked(result, init_tree, name):
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"the body of {name} must return a pair (carry, y), got {result!r:.80}")
    if _tree(result[0])[1] != init_tree:
        raise TypeError(f"the body of {name} must return a carry of the structure of the initial one: "
                        f"{_tree(result[0])[1]} against {init_tree}")
    return result


def _stack(ys, as_list, tree):
    """The per-step ys as JAX stacks them (leaves become arrays, steps first), or their list."""
    if as_list:
        return list(ys)
    if tree is None:
        return None
    columns = iter(list(zip(*[_tree(y)[0] for y in ys]))) if ys else _empty()
    return _stacked(tree, columns, len(ys))


def _empty():
    while True:
        yield ()


def _stacked(tree, columns, steps):
    kind = tree[0]
    if kind == "leaf":
        return _array(next(columns), steps, ())
    if kind == "array":
        shape = tree[1]
        parts = [next(columns) for _ in range(math.prod(shape))]
        return _array([p[t] for t in range(steps) for p in parts], steps, shape)
    if kind == "dict":
        return {k: _stacked(t, columns, steps) for k, t in zip(tree[1], tree[2])}
    items = [_stacked(t, columns, steps) for t in tree[1]]
    return items if kind == "list" else tuple(items)


def _array(values, steps, shape):
    import numpy as np
    values = list(values)
    dtype = float if all(isinstance(v, (float, int, np.number)) for v in values) else object
    return np.array(values, dtype=dtype).reshape((steps, *shape))


__all__ = ["map", "scan", "fori_loop", "unroll"]
