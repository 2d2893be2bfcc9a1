"""numpy arrays of traced values and Values: ``BoxArray`` and the elementwise helpers.

The numpy half of ``pytree``, imported where arrays appear, so that scalar code never
loads numpy.

>>> import numpy as np
>>> elementwise(lambda a, b: a * b, (np.array([1.0, 2.0]), 3.0))
array([3., 6.])
"""
import numpy as np

from .pytree import is_boxed


def rebuild(shape, values):
    """The array of ``shape`` holding ``values`` (C order): a ``BoxArray`` if any is traced or a
    Value, else float64."""
    if any(is_boxed(v) for v in values):
        return np.array(values, dtype=object).reshape(shape).view(BoxArray)
    return np.array(values, dtype=float).reshape(shape)


def elementwise(fn, args):
    """``fn`` of the elements of the numpy arrays among ``args`` (broadcast together; the other
    arguments as they are), as numpy's operators give for Python objects: a ``BoxArray`` of
    traced values or Values, else a numeric array (a scalar if no argument has a dimension).

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
