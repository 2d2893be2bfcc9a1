"""Flatten nested lists / tuples / dicts / numpy arrays of scalars to a list, and rebuild them.

A tree definition (treedef) is a hashable nested tuple, used as the cache key of
compiled functions. Dict keys are sorted, as in JAX. Arrays rebuild as float64
arrays from floats and as ``BoxArray``s (object arrays) from tracers, so ``np.dot`` and
numpy's ufuncs work while tracing.

>>> leaves, tree = flatten({"w": [1.0, 2.0], "b": 3})
>>> leaves, unflatten(tree, [10.0, 20.0, 30.0])
([3, 1.0, 2.0], {'b': 10.0, 'w': [20.0, 30.0]})
"""
import numbers
import unicodedata

import numpy as np

LEAF = ("leaf",)


def is_boxed(x):
    """True for tracers and ``Value``s: objects that record operations."""
    return getattr(x, "_tg_level", None) is not None


def _check_leaf(x):
    if isinstance(x, (numbers.Real, np.number)) and not isinstance(x, np.complexfloating) or is_boxed(x):
        return x
    raise TypeError(
        f"tracegrad takes floats and nested lists / tuples / dicts / numpy arrays of them, "
        f"got {type(x).__name__} {x!r:.60}; convert it to float or take it out of the arguments")


def flatten(tree):
    """Return ``(leaves, treedef)``."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(x, leaves):
    if type(x) is float:  # the common leaf, first
        leaves.append(x)
        return LEAF
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return (type(x).__name__, tuple(_flatten(v, leaves) for v in x))
    if isinstance(x, dict):
        keys = sorted(x)
        return ("dict", tuple(keys), tuple(_flatten(x[k], leaves) for k in keys))
    if isinstance(x, np.ndarray) and x.ndim > 0:
        if x.dtype.kind not in "biuf" and x.dtype != object:
            raise TypeError(f"tracegrad takes arrays of real numbers, got dtype {x.dtype}; "
                            "convert with np.asarray(x, dtype=float)")
        leaves.extend(_check_leaf(v) for v in x.ravel().tolist())
        return ("array", x.shape)
    leaves.append(_check_leaf(x.item() if isinstance(x, np.ndarray) else x))
    return LEAF


def unflatten(treedef, leaves):
    """Rebuild the structure of ``treedef`` from a flat sequence of leaves."""
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(tree, it):
    kind = tree[0]
    if kind == "leaf":
        return next(it)
    if kind == "list":
        return [_unflatten(t, it) for t in tree[1]]
    if kind == "tuple":
        return tuple(_unflatten(t, it) for t in tree[1])
    if kind == "dict":
        return {k: _unflatten(t, it) for k, t in zip(tree[1], tree[2])}
    shape = tree[1]
    values = [next(it) for _ in range(int(np.prod(shape)))]
    if any(is_boxed(v) for v in values):
        return np.array(values, dtype=object).reshape(shape).view(BoxArray)
    return np.array(values, dtype=float).reshape(shape)


def elementwise(fn, args):
    """``fn`` of the elements of the numpy arrays among ``args`` (broadcast together; the other
    arguments as they are), as numpy's operators give for Python objects: a ``BoxArray`` of
    traced values or Values, else a numeric array (a scalar if no argument has a dimension).

    >>> elementwise(lambda a, b: a * b, (np.array([1.0, 2.0]), 3.0))
    array([3., 6.])
    """
    return _result(np.frompyfunc(fn, len(args), 1)(*map(plain, args)))


def plain(x):
    """``x`` as numpy's own loops take it, with no ``__array_ufunc__`` of ours on the way: a
    ``BoxArray`` as an ndarray, a traced value or a Value in a 0-d object array."""
    if isinstance(x, BoxArray):
        return x.view(np.ndarray)
    if is_boxed(x):
        box = np.empty((), dtype=object)
        box[()] = x
        return box
    return x


def as_array(values):
    """Numbers, traced values or Values (nested lists of them) as tracegrad gives arrays: a
    ``BoxArray`` if any is traced or a Value, else a numeric array.

    >>> as_array([[1.0, 2.0]])
    array([[1., 2.]])
    """
    return _result(np.array(values, dtype=object))


def _result(out):
    """An object array as tracegrad returns it: a ``BoxArray`` if it holds traced values or
    Values, else a numeric array (numpy's bools, for comparisons of Values); anything else as it is."""
    if not isinstance(out, np.ndarray) or out.dtype != object:
        return out
    if any(map(is_boxed, out.flat)):
        return out.view(BoxArray)
    return np.array(out.tolist()).reshape(out.shape)


class BoxArray(np.ndarray):
    """An object array of traced values or Values, as tracegrad makes them: the array arguments
    of a traced function, ``w * x`` of a numpy array and a traced value.

    numpy's elementwise ufuncs apply to each element through the element's own
    ``__array_ufunc__``, so ``np.maximum(a, 0.0)`` records ``maximum`` for each, and their
    reductions (``np.max(a)``, ``a.sum(axis=0)``) fold it along the axis; ``@``, ``np.dot``
    and the rest work as on any object array (the elements' ``+`` and ``*``). Slices,
    ``np.dot``, ``np.concatenate`` and ``np.stack`` give a BoxArray. An array built with
    ``np.array([x, y])`` is numpy's own object array: its loops call the elements' methods
    (``np.arctan(a)`` works) and comparisons (``np.maximum(a, 0.0)`` does not: ``a.view(BoxArray)``).

    >>> import tracegrad as tg
    >>> tg.grad(lambda w: np.maximum(w @ np.array([1.0, 1.0]), 0.0).sum())(np.array([[1.0, 2.0], [-3.0, 1.0]]))
    array([[1., 1.],
           [0., 0.]])
    """

    __array_priority__ = 1.0  # above ndarray's: np.dot(w, a) and np.concatenate give a BoxArray

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.signature is None and method == "__call__" and not kwargs:  # by each element's own
            if ufunc.nout == 1:
                return elementwise(ufunc, inputs)
            return tuple(elementwise(lambda *xs, i=i: ufunc(*xs)[i], inputs) for i in range(ufunc.nout))
        if ufunc.signature is None and method == "reduce" and ufunc.nin == 2 and _foldable(**kwargs):
            return _fold(ufunc, inputs[0].view(np.ndarray), **kwargs)
        arrays = [a.view(np.ndarray) if isinstance(a, BoxArray) else a for a in inputs]
        out = kwargs.get("out")
        if out is not None:  # a += x: the result is in the array given
            kwargs["out"] = tuple(a.view(np.ndarray) if isinstance(a, BoxArray) else a for a in out)
            getattr(ufunc, method)(*arrays, **kwargs)
            return out[0] if len(out) == 1 else out
        return _result(getattr(ufunc, method)(*arrays, **kwargs))


def _foldable(axis=0, dtype=None, keepdims=False, where=True, **rest):
    return (axis is None or isinstance(axis, int)) and dtype in (None, object) and where is True and (
        set(rest) <= {"initial"})


def _fold(ufunc, a, axis=0, dtype=None, keepdims=False, where=True, **initial):
    """``ufunc.reduce(a, axis)`` as ``ufunc(ufunc(a[0], a[1]), a[2]) ...`` along the axis, each call
    by the elements' own ``__array_ufunc__``."""
    kept = tuple(range(a.ndim)) if axis is None else axis  # where keepdims puts the reduced axes back
    parts = list(np.moveaxis(a, axis, 0)) if axis is not None else a.ravel().tolist()
    if not parts and not initial:  # numpy's identity (0 for add) or its error
        return _result(ufunc.reduce(a, axis, keepdims=keepdims))
    out, *parts = [*initial.values(), *parts]
    for part in parts:
        out = elementwise(ufunc, (out, part))
    return _result(np.expand_dims(out, kept)) if keepdims else out


def num_leaves(tree):
    kind = tree[0]
    if kind == "leaf":
        return 1
    if kind == "array":
        return int(np.prod(tree[1]))
    return sum(num_leaves(t) for t in tree[-1])


def leaf_names(trees, prefixes):
    """Unique identifier names for the leaves of several trees: ``x``, ``x_0``, ``w_1``.

    Each tree's names start with its prefix; a dict key replaces the prefix.

    >>> leaf_names([LEAF, flatten({"w": [1.0, 2.0]})[1]], ["x", "params"])
    ['x', 'w_0', 'w_1']
    """
    names = []
    for tree, prefix in zip(trees, prefixes):
        _names(tree, prefix, names)
    return unique_identifiers(names)


def unique_identifiers(names):
    """The names as distinct Python identifiers: NFKC-normalised (as Python reads identifiers,
    so ``ﬁ`` is ``fi``), other characters replaced by ``_``, ``_`` before a leading digit,
    ``_1``, ``_2`` ... after a name already taken.

    >>> unique_identifiers(["θ", "x", "x", "fi", "ﬁ", "2d", "a-b", ""])
    ['θ', 'x', 'x_1', 'fi', 'fi_1', '_2d', 'a_b', '_']
    """
    seen, unique = set(), []
    for name in names:
        name = "".join(c if ("_" + c).isidentifier() else "_" for c in unicodedata.normalize("NFKC", str(name)))
        name = name if name.isidentifier() else "_" + name
        candidate, k = name, 1
        while candidate in seen:
            candidate, k = f"{name}_{k}", k + 1
        seen.add(candidate)
        unique.append(candidate)
    return unique


def _names(tree, prefix, out):
    kind = tree[0]
    if kind == "leaf":
        out.append(prefix)
    elif kind == "dict":
        for key, t in zip(tree[1], tree[2]):
            _names(t, str(key), out)
    elif kind == "array":
        out.extend(f"{prefix}_" + "_".join(map(str, idx)) for idx in np.ndindex(*tree[1]))
    else:
        for i, t in enumerate(tree[1]):
            _names(t, f"{prefix}_{i}", out)
