"""Flatten nested lists / tuples / dicts / numpy arrays of scalars to a list, and rebuild them.

A tree definition (treedef) is a hashable nested tuple, used as the cache key of
compiled functions. Dict keys are sorted, as in JAX. Arrays rebuild as float64
arrays from floats and as ``BoxArray``s (object arrays) from tracers, so ``np.dot`` and
numpy's ufuncs work while tracing (``arrays``). numpy is imported only where an array
is made: until a process imports it, no argument can be a numpy object (``loaded_numpy``),
so scalar code never loads it.

>>> leaves, tree = flatten({"w": [1.0, 2.0], "b": 3})
>>> leaves, unflatten(tree, [10.0, 20.0, 30.0])
([3, 1.0, 2.0], {'b': 10.0, 'w': [20.0, 30.0]})
"""
import itertools
import math
import numbers
import sys
import unicodedata

LEAF = ("leaf",)
_ARRAYS = ("BoxArray", "as_array", "elementwise", "plain")  # in ``arrays``, which imports numpy


def __getattr__(name):
    if name in _ARRAYS:
        from . import arrays
        return getattr(arrays, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def loaded_numpy():
    """numpy if this process has imported it, else None (then no object is a numpy array or scalar)."""
    return sys.modules.get("numpy")


def is_boxed(x):
    """True for tracers and ``Value``s: objects that record operations."""
    return getattr(x, "_tg_level", None) is not None


def _check_leaf(x):
    np = loaded_numpy()
    if np is None:
        if isinstance(x, numbers.Real) or is_boxed(x):
            return x
    elif isinstance(x, (numbers.Real, np.number)) and not isinstance(x, np.complexfloating) or is_boxed(x):
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
    np = loaded_numpy()
    if np is not None and isinstance(x, np.ndarray) and x.ndim > 0:
        if x.dtype.kind not in "biuf" and x.dtype != object:
            raise TypeError(f"tracegrad takes arrays of real numbers, got dtype {x.dtype}; "
                            "convert with np.asarray(x, dtype=float)")
        leaves.extend(_check_leaf(v) for v in x.ravel().tolist())
        return ("array", x.shape)
    leaves.append(_check_leaf(x.item() if np is not None and isinstance(x, np.ndarray) else x))
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
    from .arrays import rebuild
    return rebuild(tree[1], [next(it) for _ in range(math.prod(tree[1]))])


def num_leaves(tree):
    kind = tree[0]
    if kind == "leaf":
        return 1
    if kind == "array":
        return math.prod(tree[1])
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
        out.extend(f"{prefix}_" + "_".join(map(str, idx)) for idx in itertools.product(*map(range, tree[1])))
    else:
        for i, t in enumerate(tree[1]):
            _names(t, f"{prefix}_{i}", out)
