"""Symbolic tracing: a ``Tracer`` records every operation on it into the current ``Builder``.

Nested traces (``grad(grad(f))``) each get their own builder, one level deeper; a
tracer of an enclosing trace that shows up in an inner one is *captured*: it becomes an
extra input of the inner graph, and replaying the inner graph feeds it back.

>>> import tracegrad as tg
>>> print(tg.trace(lambda x: tg.sin(x) * x, 1.0))
{ lambda x:f64 .
  v1 = sin x
  v2 = mul v1 x
  in (v2) }
"""
import gc
import inspect
import threading

from .errors import TracingError, check_arguments, user_location
from .ir import Builder
from .ops import ADD, DIV, EQ, GE, GT, LE, LT, MUL, NE, NEG, POWC, SUB, Arithmetic, bind, innermost, pow, to_float
from .pytree import LEAF, flatten, is_boxed, leaf_names, loaded_numpy, unflatten
from .value import Value

_state = threading.local()


class TraceBuilder(Builder):
    """A builder at a nesting level, which turns foreign tracers into captured inputs."""

    def __init__(self, level):
        super().__init__()
        self.level = level
        self.open = True
        self.captured = []      # tracers of enclosing traces, in order of capture
        self._captures = {}     # (id(builder), index) -> input node

    def tracer(self, index):
        return Tracer(self, index)

    def node_of(self, x):
        """The node for a tracer, float or foreign tracer (captured as a new input)."""
        if not isinstance(x, Tracer):
            return self.const(to_float(x))
        if x.builder is self:
            return x.index
        if not x.builder.open or x.builder.level >= self.level:
            raise TracingError(
                f"a traced value escaped from the function that traced it (used at {user_location()}); "
                "return it from that function instead of keeping it in a variable")
        key = (id(x.builder), x.index)
        if key not in self._captures:
            self._captures[key] = self.input()
            self.captured.append(x)
        return self._captures[key]


def _operator(op, swap=False):
    """The method ``self (op) other`` (``other (op) self`` if ``swap``) of a ``Tracer``."""
    name = op.name

    def method(self, other):
        b, t = self.builder, type(other)
        if b.open:
            if t is Tracer and other.builder is b:
                x = other.index
            elif t is float or t is int:
                x = b.const(to_float(other))
            else:
                x = None
            if x is not None:
                return Tracer(b, b.add(name, (x, self.index) if swap else (self.index, x)))
        return bind(op, other, self) if swap else bind(op, self, other)
    return method


class Tracer(Arithmetic):
    """A symbolic float inside a traced function; arithmetic on it records IR nodes."""

    __slots__ = ("builder", "index", "_tg_level")

    def __init__(self, builder, index):
        self.builder, self.index, self._tg_level = builder, index, builder.level

    def _tg_bind(self, op, args, param):
        """Record ``op(*args)`` in this tracer's builder: ``bind`` calls it on the innermost tracer."""
        builder = self.builder
        if not builder.open:
            raise TracingError(
                f"a traced value escaped from the function that traced it (used at {user_location()}); "
                "return it from that function instead of keeping it in a variable")
        try:
            nodes = tuple([a.index if type(a) is Tracer and a.builder is builder else builder.node_of(a)
                           for a in args])
        except TypeError:
            np = loaded_numpy()
            if np is None or not any(isinstance(a, np.ndarray) for a in args):
                raise
            from .arrays import elementwise
            return elementwise(lambda *xs: bind(op, *xs, param=param), args)  # w * x: one op per element
        return Tracer(builder, builder.add(op.name, nodes, param))

    @staticmethod
    def _tg_evaluate_nodes(graph, args):
        """``evaluate_nodes`` on tracers (and numbers): one replay in the innermost builder, which
        captures the tracers of enclosing traces."""
        builder = innermost(args).builder
        if not builder.open:
            return None
        env = builder.replay(graph, [a if type(a) is float else builder.node_of(a) for a in args])
        return [Tracer(builder, x) if type(x) is int else x for x in env]

    def _tg_region(self, region, args):
        """Record a scan node (``ir.Region``) on ``args`` in this trace: a tracer per output."""
        b = self.builder
        index = b.region(region, tuple([b.node_of(a) for a in args]))
        return [Tracer(b, b.part(index, k)) for k in range(region.n_out)]

    def _tg_custom(self, region, env):
        """Record a custom derivative rule replayed into this trace (see ``Graph.custom``)."""
        kind, ins, outs, rule = region
        b = self.builder
        region = (kind, tuple(b.node_of(env[i]) for i in ins),
                  tuple(None if o is None else b.node_of(env[o]) for o in outs), rule)
        if region not in b.custom:
            b.custom.append(region)

    # The arithmetic operators on a tracer and a Python number or a tracer of the same open
    # trace (what a traced function and every vjp rule mostly do) record the node directly:
    # what ``bind`` would record, without its search for the innermost operand.
    __add__, __radd__ = _operator(ADD), _operator(ADD, swap=True)
    __sub__, __rsub__ = _operator(SUB), _operator(SUB, swap=True)
    __mul__, __rmul__ = _operator(MUL), _operator(MUL, swap=True)
    __truediv__, __rtruediv__ = _operator(DIV), _operator(DIV, swap=True)

    def __pow__(self, other):
        b, t = self.builder, type(other)
        if (t is float or t is int) and b.open:
            return Tracer(b, b.add("powc", (self.index,), to_float(other)))
        return pow(self, other)

    def __neg__(self):
        b = self.builder
        return Tracer(b, b.add("neg", (self.index,))) if b.open else bind(NEG, self)

    def __lt__(self, other): return bind(LT, self, other)
    def __le__(self, other): return bind(LE, self, other)
    def __gt__(self, other): return bind(GT, self, other)
    def __ge__(self, other): return bind(GE, self, other)
    def __eq__(self, other): return bind(EQ, self, other)
    def __ne__(self, other): return bind(NE, self, other)
    __hash__ = None

    def __bool__(self):
        raise TracingError(
            f"`if` or `while` on a traced value at {user_location()} cannot be recorded: the branch "
            "would be fixed at trace time; use tg.where(cond, a, b) (e.g. tg.where(x > 0, a, b)), "
            "or tg.maximum / tg.minimum / tg.clamp")

    def __float__(self, *_):
        raise TracingError(
            f"a traced value was converted to a Python number at {user_location()} (float(), int(), "
            "round(), math.*, a format like f'{x:.3f}' or an index need its value, which a trace does "
            "not have); use the tracegrad functions instead, e.g. tg.sin(x) for math.sin(x), "
            "and format the result of the compiled function")

    __int__ = __index__ = __complex__ = __round__ = __trunc__ = __floor__ = __ceil__ = __float__

    def __format__(self, spec):
        return self.__float__() if spec else repr(self)

    def __getattr__(self, name):  # only for names a Tracer lacks: Value's data, grad, a method added by hand
        if not hasattr(Value, name):
            raise AttributeError(f"'Tracer' object has no attribute {name!r}")
        raise TracingError(
            f"`.{name}` of a traced value at {user_location()}: it is an attribute of Value that traced values "
            "do not have. An op written micrograd-style (computed from `.data`, with a hand-written `_backward`) "
            "cannot be traced or compiled; define it with tg.defop(name, arity, eval=..., vjp=...), which works "
            "on Values and in traced code alike")

    def __repr__(self):
        return f"Tracer(v{self.index})"


def _depth():
    return getattr(_state, "depth", 0)


class new_builder:
    """Context manager: a fresh ``TraceBuilder`` one level deeper than the current one.

    The outermost one pauses Python's cyclic garbage collector, if it runs: a trace
    makes hundreds of thousands of small objects that reference counting frees, and
    collections in between would only scan them again (a quarter of the tracing time).
    """

    def __enter__(self):
        _state.depth = _depth() + 1
        self.paused = _state.depth == 1 and gc.isenabled()
        if self.paused:
            gc.disable()
        self.builder = TraceBuilder(_state.depth)
        return self.builder

    def __exit__(self, *exc):
        _state.depth -= 1
        self.builder.open = False
        if self.paused:
            gc.enable()


def parameter_names(fn, count):
    """The names of ``fn``'s first ``count`` positional parameters, ``x0, x1 ...`` where unknown."""
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"x{i}" for i in range(count)]


def trace_flat(fn, args):
    """Trace ``fn(*args)``; return ``(graph, out_tree, captured)``.

    The graph's inputs are the leaves of ``args`` followed by the captured tracers
    of enclosing traces. A function with ``_tg_trace_flat`` (``tg.grad(f)`` and the
    like) gives its graph itself.
    """
    if hasattr(fn, "_tg_trace_flat"):
        return fn._tg_trace_flat(args)
    check_arguments(fn, args)
    leaves, in_tree = flatten(tuple(args))
    with new_builder() as b:
        inputs = [b.tracer(b.input()) for _ in leaves]
        out = fn(*unflatten(in_tree, inputs))
        out_leaves, out_tree = flatten(out)
        outputs = [b.node_of(o) for o in out_leaves]
        names = leaf_names(in_tree[1] + (LEAF,) * len(b.captured),
                           parameter_names(fn, len(args)) + ["captured"] * len(b.captured))
        return b.graph(outputs, names), out_tree, b.captured  # in the block: the collector still paused


def trace(fn, *args):
    """Trace ``fn`` on example arguments (only their structure matters) and return its IR ``Graph``.

    >>> import tracegrad as tg
    >>> g = tg.trace(lambda x, y: x * y + 1.0, 2.0, 3.0)
    >>> len(g.inputs), len(g.outputs)
    (2, 1)
    """
    if not callable(fn):
        raise TypeError(f"trace takes a function and example arguments, got {type(fn).__name__}")
    return trace_flat(fn, args)[0]


__all__ = ["Tracer", "trace", "trace_flat", "TracingError", "is_boxed"]
