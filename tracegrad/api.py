"""The user-facing transformations: grad, value_and_grad, jit, jvp, vjp.

Each returns a ``Function``: it flattens its arguments, finds (or traces and
transforms) the graph for their structure, then either runs the compiled kernel on
floats or, called on tracers or ``Value``s, replays the graph into the caller's trace.

>>> import tracegrad as tg
>>> tg.grad(lambda x: x * x)(3.0)
6.0
"""
import functools
import threading

from . import backends
from .ir import evaluate
from .ops import to_float
from .pytree import LEAF, flatten, is_boxed, num_leaves, unflatten
from .tracing import trace_flat
from .transforms import jvp_graph, vjp_graph
from .transforms.substitute import substitute


class Function:
    """A function of pytrees of floats, backed by one graph per argument structure.

    ``make_graph(args) -> (graph, out_tree, captured)`` builds the graph for the
    structure of ``args``. Attributes: ``graph`` (of the last structure called, or
    of one float per parameter), ``source`` (the generated code) and ``backend``.

    >>> import tracegrad as tg
    >>> f = tg.jit(lambda x, y: x * y)      # a Function
    >>> f(2.0, 3.0), len(f.graph.inputs)
    (6.0, 2)
    """

    def __init__(self, fn, make_graph, backend=None, cache_dir=None):
        if backend is not None:
            backends.module(backend)
        self.fn, self.make_graph, self.backend, self.cache_dir = fn, make_graph, backend, cache_dir
        self._entries = {}
        # the fast path, for calls on plain floats of the last call's structure (``_last``):
        # their number, (kernel, one output?, kernel checks argument types itself?), and the
        # kernel alone where its result is the answer and it checks the types (numba, a tuple out)
        self._fast_n, self._fast, self._fast_direct = -1, None, None
        self._last = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn, updated=())

    def _entry(self, args):
        leaves, tree = flatten(args)
        entry = self._entries.get(tree)
        if entry is None:
            graph, out_tree, captured = self.make_graph(args)
            entry = [graph, out_tree, captured, None]
            if not captured:  # a graph that captured outer tracers belongs to that trace only
                with self._lock:
                    self._entries[tree] = entry
        if entry is not self._last:
            self._fast_n = -1
            self._last = entry
        return entry, leaves

    def _tg_trace_flat(self, args):
        """What ``trace_flat(self, args)`` would give, without replaying the graph into a trace."""
        return self.make_graph(args)

    def __call__(self, *args):
        if len(args) == self._fast_n:  # the fast path: plain floats in, straight to the kernel
            direct = self._fast_direct
            if direct is not None:
                try:
                    return direct(*args)
                except TypeError:  # not floats: the general path below
                    pass
            else:
                kernel, single, typed = self._fast
                if typed:  # a numba dispatcher for float64 only rejects anything else itself
                    try:
                        out = kernel(*args)
                    except TypeError:
                        out = None
                    if out is not None:
                        return out[0] if single else out
                else:
                    for a in args:
                        if type(a) is not float:
                            break
                    else:
                        out = kernel(*args)
                        return out[0] if single else out
        entry, leaves = self._entry(args)
        graph, out_tree, captured, kernel = entry
        if captured or any(is_boxed(x) for x in leaves):
            return unflatten(out_tree, evaluate(graph, leaves + list(captured)))
        if kernel is None:
            kernel = entry[3] = backends.compile(graph, self.backend, self.cache_dir)
        out = kernel(*[to_float(x) for x in leaves])
        if all(type(a) is float for a in args) and (out_tree == LEAF or _flat_tuple(out_tree, out)):
            single = out_tree == LEAF
            if hasattr(kernel, "native"):  # llvm: calls on floats enter the machine code directly
                if type(self) is Function:
                    self.__class__ = _native_class(kernel.native(single, Function.__call__.__get__(self)))
            else:
                typed = self.backend == "numba"
                self._fast_n, self._fast = len(args), (kernel, single, typed)
                self._fast_direct = kernel if typed and not single else None
        return unflatten(out_tree, out)

    @property
    def kernel(self):
        """The compiled kernel of ``graph``: for ``backend="numba"`` the njit dispatcher,
        callable from the user's own ``@numba.njit`` code with one float per input,
        returning a tuple of floats."""
        entry = self._default_entry()
        if entry[3] is None:
            entry[3] = backends.compile(entry[0], self.backend, self.cache_dir)
        return entry[3]

    def _default_entry(self):
        if self._last is None:
            self._entry(tuple(0.0 for _ in _positional_parameters(self.fn)))
        return self._last

    @property
    def graph(self):
        """The IR of the last call's argument structure (before any call: one float per parameter)."""
        return self._default_entry()[0]

    @property
    def source(self):
        """The code the backend generates for ``graph``."""
        return backends.source(self.graph, self.backend)

    def __repr__(self):
        return f"<tracegrad.Function {getattr(self.fn, '__name__', self.fn)!r}>"


def _native_class(call):
    """A subclass of ``Function`` whose instances are called through ``call``, a builtin function
    (``Kernel.native``): a call on plain floats runs no Python code at all."""
    return type("Function", (Function,), {"__call__": call, "__doc__": Function.__doc__})


def _flat_tuple(out_tree, out):
    """Whether the kernel's output ``out`` is already ``unflatten(out_tree, out)``."""
    return type(out) is tuple and out_tree[0] == "tuple" and all(t == LEAF for t in out_tree[1])


def _positional_parameters(fn):
    """The required positional parameters of ``fn``, to trace it with one float each."""
    import inspect
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        params = None
    if params is None or any(p.kind == p.VAR_POSITIONAL for p in params):
        raise TypeError("cannot tell how many arguments this function takes (it has *args or no "
                        "signature); call it once with example arguments before reading .graph or .source")
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def _check_callable(fn, name):
    if not callable(fn):
        raise TypeError(f"{name} takes a function, got {type(fn).__name__} {fn!r:.60}")


def _normalize_argnums(argnums, nargs):
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    nums = (argnums,) if single else tuple(argnums) if isinstance(argnums, (tuple, list)) else None
    if nums is None or not nums or not all(isinstance(a, int) and not isinstance(a, bool) for a in nums):
        raise TypeError(f"argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(f"argnums {argnums!r} is out of range for a call with {nargs} arguments")
    return single, tuple(a % nargs for a in nums)


def _leaf_ranges(args):
    """The (start, stop) of each argument's leaves in the flattened argument list."""
    ranges, start = [], 0
    for a in args:
        n = num_leaves(flatten(a)[1])
        ranges.append((start, start + n))
        start += n
    return ranges


def _gradient_graph(fn, args, argnums, with_value):
    single, nums = _normalize_argnums(argnums, len(args))
    graph, out_tree, captured = trace_flat(fn, args)
    if out_tree != LEAF:
        raise TypeError(
            f"grad needs a function with a single scalar output, but it returned a structure of "
            f"{len(graph.outputs)} values; use tg.vjp for several outputs, or sum them into one")
    ranges = _leaf_ranges(args)
    wrt = [k for a in nums for k in range(*ranges[a])]
    grad_graph = vjp_graph(graph, wrt, seed=1.0, keep_outputs=with_value)
    trees = [flatten(args[a])[1] for a in nums]
    grads_tree = trees[0] if single else ("tuple", tuple(trees))
    return grad_graph, (("tuple", (LEAF, grads_tree)) if with_value else grads_tree), captured


def grad(fn=None, argnums=0, *, backend=None):
    """The gradient of a scalar function with respect to argument(s) ``argnums``.

    The gradient has the structure of the argument (a tuple of them for a tuple of
    argnums). Works as a decorator, with or without arguments.

    >>> import tracegrad as tg
    >>> tg.grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 3.0)
    (3.0, 2.0)
    """
    if fn is None:
        return functools.partial(grad, argnums=argnums, backend=backend)
    _check_callable(fn, "grad")
    return Function(fn, lambda args: _gradient_graph(fn, args, argnums, False), backend)


def value_and_grad(fn=None, argnums=0, *, backend=None):
    """Like ``grad``, but return ``(value, gradient)``.

    >>> import tracegrad as tg
    >>> tg.value_and_grad(lambda x: x * x)(3.0)
    (9.0, 6.0)
    """
    if fn is None:
        return functools.partial(value_and_grad, argnums=argnums, backend=backend)
    _check_callable(fn, "value_and_grad")
    return Function(fn, lambda args: _gradient_graph(fn, args, argnums, True), backend)


def jit(fn=None, *, backend=None, cache_dir=None):
    """Trace ``fn`` once per argument structure and run it as compiled code.

    ``backend``: ``"interp"``, ``"python"``, ``"llvm"``, ``"numba"``, or None for the
    default (llvm, whose calls on floats enter the machine code directly).
    ``cache_dir``: where compiled artefacts are kept on disk (default: see
    ``tracegrad.backends.cache``).

    >>> import tracegrad as tg
    >>> f = tg.jit(lambda x: tg.sin(x) ** 2, backend="python")
    >>> f(0.0)
    0.0
    """
    if fn is None:
        return functools.partial(jit, backend=backend, cache_dir=cache_dir)
    _check_callable(fn, "jit")
    return Function(fn, lambda args: trace_flat(fn, args), backend, cache_dir)


def _check_same_structure(a, b, what):
    ta, tb = flatten(a)[1], flatten(b)[1]
    if ta != tb:
        raise ValueError(f"{what} must have the structure of the primals: {tb} against {ta}")


def jvp(fn, primals, tangents):
    """Forward mode: ``(fn(*primals), directional derivative along tangents)``.

    Like ``vjp`` (and ``grad(fn)(x)``), each call traces ``fn`` afresh, so it sees the
    current values of the globals and attributes ``fn`` reads; compiled code is still
    reused, from the cache of kernels by graph.

    >>> import tracegrad as tg
    >>> tg.jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    (6.0, 3.0)
    """
    _check_callable(fn, "jvp")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp takes primals and tangents as tuples: tg.jvp(f, (x, y), (dx, dy))")
    _check_same_structure(tuple(primals), tuple(tangents), "tangents")

    def make_graph(args):
        primals, _ = args
        graph, out_tree, captured = trace_flat(fn, primals)
        n, k = len(graph.inputs) - len(captured), len(captured)
        # jvp_graph's inputs: primals, captures, their tangents; ours: primals, tangents, captures
        feed = [*range(n), *range(2 * n, 2 * n + k), *range(n, 2 * n), *[0.0] * k]
        return substitute(jvp_graph(graph), 2 * n + k, feed), ("tuple", (out_tree, out_tree)), captured
    return Function(fn, make_graph)(tuple(primals), tuple(tangents))


def vjp(fn, *primals):
    """Reverse mode: ``(fn(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` gives one cotangent per primal.

    >>> import tracegrad as tg
    >>> out, pullback = tg.vjp(lambda x, y: [x * y, x + y], 2.0, 3.0)
    >>> out, pullback([1.0, 0.0])
    ([6.0, 5.0], (3.0, 2.0))
    """
    _check_callable(fn, "vjp")
    out = jit(fn)(*primals)

    def make_graph(args):
        args, cts = args
        graph, _, captured = trace_flat(fn, args)
        n, k, m = len(graph.inputs) - len(captured), len(captured), len(graph.outputs)
        adjoint = vjp_graph(graph, list(range(n)), keep_outputs=False)
        # vjp_graph's inputs: primals, captures, cotangents; ours: primals, cotangents, captures
        feed = [*range(n), *range(n + m, n + m + k), *range(n, n + m)]
        return substitute(adjoint, n + m + k, feed), ("tuple", tuple(flatten(a)[1] for a in args)), captured

    pull = Function(fn, make_graph)

    def vjp_fn(cotangent):
        _check_same_structure(out, cotangent, "the cotangent")
        return pull(tuple(primals), cotangent)
    return out, vjp_fn
