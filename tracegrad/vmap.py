"""``vmap``: run a function of floats over the rows of arrays, as one compiled loop.

>>> import numpy as np, tracegrad as tg
>>> tg.vmap(lambda x, y: x * y, in_axes=(0, None))(np.array([1.0, 2.0, 3.0]), 2.0)
array([2., 4., 6.])
"""
import functools
import math
import operator
import os
import sys
import threading

from . import backends
from .api import Function, jit
from .pytree import LEAF, num_leaves

PARALLEL_ROWS = 200_000   # batches at least this long run on two threads
LANE_ROWS = 4096          # batches at least this long run in SIMD lanes (one more compile)
_WORKERS = min(2, os.cpu_count() or 1)


def is_dask(x):
    """Whether ``x`` is a dask array (without importing dask: a dask array means it is loaded).

    >>> import numpy as np
    >>> is_dask(np.ones(2))
    False
    """
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def _batched_leaves(x, axis, path="argument"):
    """The arrays of an argument, in pytree order (lists, tuples, dicts by sorted key); dask arrays stay lazy."""
    import numpy as np
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return [a for i, v in enumerate(x) for a in _batched_leaves(v, axis, f"{path}[{i}]")]
    if isinstance(x, dict):
        return [a for k in sorted(x) for a in _batched_leaves(x[k], axis, f"{path}[{k!r}]")]
    try:
        a = x if is_dask(x) else np.asarray(x)
    except (TypeError, ValueError):
        a = np.asarray(None)
    if a.dtype.kind not in "biuf":  # complex would lose its imaginary part, strings would be parsed
        raise TypeError(f"vmap takes arrays of real numbers, got {type(x).__name__} of dtype {a.dtype} at "
                        f"{path}; convert with np.asarray(x, dtype=float)")
    if any(math.isnan(d) for d in a.shape):
        raise ValueError(f"vmap needs the shape of the dask array at {path}, whose chunk sizes are unknown; "
                         "call x.compute_chunk_sizes() first")
    a = a.astype(float)
    if axis == 0 and a.ndim == 0:
        raise TypeError(f"vmap maps over axis 0 of {path}, but it is a scalar; "
                        "pass an array, or in_axes=None for this argument to broadcast it")
    return [a]


def _row(x, axis):
    """The first row of an argument (its structure per call; a dask array's values are not read)."""
    import numpy as np
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_row(v, axis) for v in x)
    if isinstance(x, dict):
        return {k: _row(v, axis) for k, v in x.items()}
    if is_dask(x):
        return np.zeros(x.shape[1:] if axis == 0 else x.shape)
    a = np.asarray(x, dtype=float)
    return a[0] if axis == 0 else a


def _normalize_axes(in_axes, nargs):
    axes = (in_axes,) * nargs if in_axes is None or isinstance(in_axes, int) else in_axes
    if not isinstance(axes, (tuple, list)) or len(axes) != nargs:
        raise ValueError(f"in_axes must be 0, None, or one of them per argument ({nargs} here), got {in_axes!r}")
    for a in axes:
        if a not in (0, None) or isinstance(a, bool):
            raise ValueError(f"in_axes entries must be 0 (map over rows) or None (broadcast), got {a!r}")
    return tuple(axes)


def _stack(columns):
    import numpy as np
    return np.stack(columns, axis=-1)


def _unflatten_columns(tree, columns, n, stack=_stack):
    """Rebuild an output structure whose leaves are columns of length ``n`` (``stack`` makes an array's)."""
    import numpy as np
    kind = tree[0]
    if kind == "leaf":
        return next(columns)
    if kind in ("list", "tuple"):
        items = [_unflatten_columns(t, columns, n, stack) for t in tree[1]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {k: _unflatten_columns(t, columns, n, stack) for k, t in zip(tree[1], tree[2])}
    shape = tree[1]
    cols = [next(columns) for _ in range(num_leaves(tree))]
    return stack(cols).reshape((n, *shape)) if cols else np.empty((n, *shape))


def vmap(fn, in_axes=0):
    """Map ``fn`` over axis 0 of its array arguments (``in_axes``: 0 or None per argument).

    Arguments may be pytrees of arrays; outputs are numpy arrays with a leading batch
    axis, in the structure ``fn`` returns. The loop runs compiled (llvm), on two threads
    for long batches. ``fn`` may be a ``tg.grad`` / ``tg.jit`` function.

    With dask arrays among the mapped arguments the outputs are lazy dask arrays, one task
    per chunk of rows (the chunks of the first dask argument); each worker rebuilds the
    kernel from the graph's JSON and its own disk cache (see docs/dask.md).

    >>> import numpy as np, tracegrad as tg
    >>> gx, gy = tg.vmap(tg.grad(lambda x, y: x * y, argnums=(0, 1)))(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    >>> gx, gy
    (array([3., 4.]), array([1., 2.]))
    """
    if not callable(fn):
        raise TypeError(f"vmap takes a function, got {type(fn).__name__}")
    return _Mapped(fn if isinstance(fn, Function) else jit(fn), in_axes, fn)


class _Mapped:
    """What ``vmap`` returns. After a call on 1-D float64 arrays (and floats where ``in_axes``
    is None) giving one float or a tuple of floats a row, calls like it on fewer than
    ``LANE_ROWS`` rows run through a native entry (``Kernel.native_rows``) installed as the
    instance's ``__call__``: no Python code on the way; anything else comes back here."""

    def __init__(self, function, in_axes, fn):
        self._function, self._in_axes = function, in_axes
        functools.update_wrapper(self, fn, updated=())

    def __repr__(self):
        return f"<tracegrad.vmap of {getattr(self.__wrapped__, '__name__', self.__wrapped__)!r}>"

    def __call__(self, *args):
        import numpy as np
        axes = _normalize_axes(self._in_axes, len(args))
        if all(a is None for a in axes):
            raise ValueError("vmap needs at least one argument with in_axes=0 to map over")
        leaves = [(a, axis) for x, axis in zip(args, axes) for a in _batched_leaves(x, axis)]
        lengths = {a.shape[0] for a, axis in leaves if axis == 0}
        if len(lengths) != 1:
            raise ValueError(f"vmap arguments mapped over axis 0 must have the same length, got {sorted(lengths)}")
        n = lengths.pop()
        if n == 0:
            raise ValueError("vmap needs at least one row; the mapped arrays are empty")
        function = self._function
        graph, out_tree, captured, _ = function._entry(tuple(_row(x, a) for x, a in zip(args, axes)))[0]
        if captured:
            raise TypeError("vmap cannot run inside a traced function; call it on arrays outside tg.grad/tg.jit")
        if not graph.outputs:  # nothing to compute: the structure, with no leaves
            return _unflatten_columns(out_tree, iter(()), n)
        floats = sum(math.prod(a.shape[1:] if axis == 0 else a.shape) for a, axis in leaves)
        if floats != len(graph.inputs):
            raise ValueError(f"vmap: the rows give {floats} floats, the function takes {len(graph.inputs)}")
        if any(is_dask(a) for a, _ in leaves):
            return _map_dask(graph, out_tree, leaves, n)
        out = _run(graph, leaves, n, function.cache_dir)
        single = out_tree == LEAF
        if type(self) is _Mapped and (single or out_tree == ("tuple", (LEAF,) * len(graph.outputs))) and all(
                type(x) is float if a is None else type(x) is np.ndarray and x.ndim == 1 and x.dtype == np.float64
                for x, a in zip(args, axes)):
            kernel = backends.compile(graph, "llvm", function.cache_dir)
            call = kernel.native_rows(axes, single, LANE_ROWS, _Mapped.__call__.__get__(self))
            self.__class__ = type("mapped", (_Mapped,), {"__call__": call, "__doc__": self.__doc__})
        return _unflatten_columns(out_tree, iter(out), n)


def _run(graph, leaves, n, cache_dir=None, parallel=True):
    """``graph`` over the ``n`` rows of ``leaves`` (``(array, axis)`` pairs): its outputs as ``(outputs, n)``."""
    import numpy as np
    inputs = []
    for a, axis in leaves:
        cols = np.ascontiguousarray(a.reshape(n, -1) if axis == 0 else a.reshape(1, -1), dtype=float)
        inputs += [(cols, j, cols.shape[1] if axis == 0 else 0) for j in range(cols.shape[1])]
    out = np.empty((max(len(graph.outputs), 1), n))
    run_rows(graph, inputs, [(out, n * j, 1) for j in range(len(graph.outputs))], n, cache_dir, parallel)
    return out[:len(graph.outputs)]


def _map_dask(graph, out_tree, leaves, n):
    """The outputs as dask arrays: one ``_rows_block`` task per chunk of rows (of the first dask argument)."""
    import numpy as np
    import dask.array as da
    rows = next(a.chunks[0] for a, axis in leaves if axis == 0 and is_dask(a))
    args = [graph.to_json(), None, [axis for _, axis in leaves], None]
    for j, (a, axis) in enumerate(leaves):
        if axis is None:  # broadcast: the whole array, given to every task
            args += [a, None]
            continue
        chunks = (rows,) + (-1,) * (a.ndim - 1)  # rows as the first dask argument's, the rest whole
        a = a.rechunk(chunks) if is_dask(a) else da.from_array(a, chunks=chunks)
        args += [a, ("i", *(f"k{j}.{d}" for d in range(1, a.ndim)))]
    out = da.blockwise(_rows_block, ("o", "i"), *args, new_axes={"o": len(graph.outputs)}, dtype=float,
                       concatenate=True, meta=np.empty((0, 0)), token="tracegrad-vmap")
    # each output a view of the tasks' blocks (dask's slicing would copy them)
    columns = (out.map_blocks(operator.getitem, j, drop_axis=0, dtype=float, meta=np.empty(0))
               for j in range(len(graph.outputs)))
    return _unflatten_columns(out_tree, columns, n, lambda cols: da.stack(cols, axis=-1).rechunk((rows, -1)))


@functools.lru_cache(maxsize=64)
def graph_from_json(text):
    """``Graph.from_json(text)``, parsed once per process (a worker's tasks share it).

    >>> import tracegrad as tg
    >>> g = tg.trace(lambda x: x * x, 1.0)
    >>> graph_from_json(g.to_json()) == g
    True
    """
    from .ir import Graph
    return Graph.from_json(text)


def _rows_block(text, axes, *blocks):
    """A dask task of ``vmap``: the graph (JSON) over one chunk of rows, compiled on this worker for its CPU.

    Pure: the result depends on the arguments only, so a task lost with its worker is run again.
    """
    n = next(len(b) for b, axis in zip(blocks, axes) if axis == 0)
    return _run(graph_from_json(text), list(zip(blocks, axes)), n, parallel=False)


def run_rows(graph, inputs, outputs, n, cache_dir=None, parallel=True):
    """Run ``graph`` over rows ``0..n`` of columns (``RowCall``'s triples; outputs contiguous).

    The one row loop of vmap and ``Module.predict``: long batches run whole groups of
    rows in SIMD lanes (one more compile), the rest the scalar kernel row by row; on
    two threads past ``PARALLEL_ROWS`` rows unless ``parallel`` is false (a dask worker's
    task: the worker's threads are the parallelism).
    """
    width = backends.llvm_lanes()
    lanes = n - n % width if n >= LANE_ROWS else 0
    if lanes:
        from .backends.llvm_loops import RowMap
        kinds = [1 if stride == 1 else 0 if stride == 0 else None for _, _, stride in inputs]
        RowCall(RowMap(graph, kinds, width), inputs, outputs)(lanes, parallel=parallel)
    RowCall(backends.compile(graph, "llvm", cache_dir), inputs, outputs)(n, lanes, parallel)


class RowCall:
    """A compiled kernel bound to columns of numpy arrays: ``call(n)`` runs rows ``0..n``.

    ``inputs`` and ``outputs`` are ``(array, first element, stride)`` triples over C-contiguous
    float64 arrays; row ``r`` reads ``array.flat[first + r * stride]`` (stride 0 broadcasts).
    The arrays are kept alive and may be refilled in place between calls.

    >>> import numpy as np, tracegrad as tg
    >>> kernel = backends.compile(tg.trace(lambda x, y: x * y, 1.0, 1.0), "llvm")
    >>> x, y, out = np.array([1.0, 2.0]), np.array([10.0]), np.empty(2)
    >>> RowCall(kernel, [(x, 0, 1), (y, 0, 0)], [(out, 0, 1)])(2); out
    array([10., 20.])
    """

    def __init__(self, kernel, inputs, outputs):
        import numpy as np
        def addresses(columns):
            for a, _, _ in columns:
                if a.dtype != np.float64 or not a.flags.c_contiguous:
                    raise TypeError("RowCall needs C-contiguous float64 arrays")
            return (np.array([a.ctypes.data + 8 * i for a, i, _ in columns] or [0], dtype=np.uint64),
                    np.array([s for _, _, s in columns] or [0], dtype=np.int64))
        self.kernel, self._arrays = kernel, [a for a, _, _ in inputs + outputs]
        self._buffers = (*addresses(inputs), *addresses(outputs))

    def __call__(self, n, start=0, parallel=True):
        _run_rows(self.kernel, self._buffers, n, start, parallel)


def _run_rows(kernel, buffers, n, start=0, parallel=True):
    """Run rows 0..n, split over two threads when the batch is long (ctypes releases the GIL)."""
    if n - start < PARALLEL_ROWS or _WORKERS == 1 or not parallel:
        kernel.rows(*buffers, start, n)
        return
    width = getattr(kernel, "width", 1)  # a lane kernel splits at a whole group
    half = start + (n - start) // 2 // width * width
    thread = threading.Thread(target=kernel.rows, args=(*buffers, half, n))
    thread.start()
    kernel.rows(*buffers, start, half)
    thread.join()



