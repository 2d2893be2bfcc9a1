"""The eager, micrograd-compatible ``Value``: a float that remembers how it was made.

A ``Value`` records its op (a row of the op table), its arguments and the op's
parameter in its own slots: no closures, so a graph of Values has no reference cycles
and is freed by reference counting alone, and no argument tuple, so each node is one
object for Python's cyclic garbage collector to scan, which is most of what an eager
step costs beyond the arithmetic. ``backward()`` walks the graph in reverse
topological order (iteratively: a million-node chain works) and asks the op table for
each node's local derivatives.

Nodes that no table row made pass their gradient on as micrograd's do: a node built as
``Value(data, children, op)`` runs the ``_backward`` function assigned to it, and the
eager call of a ``custom_vjp`` / ``custom_jvp`` function runs the user's rule.

>>> x = Value(-4.0, label="x")
>>> y = (2 * x + 2 + x).relu() + x * x
>>> y.backward()
>>> y, x.grad
(Value(data=16.0, grad=1.0), -8.0)
"""
import functools
import gc

from .errors import TracingError, user_location
from .ir import Builder
from .ops import ADD, MUL, POWC, SUB, TABLE, Arithmetic, Op, bind, to_float, ufunc_op
from .pytree import is_boxed, loaded_numpy

# How micrograd (and its draw_dot) names ops; other ops show their table name.
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "relu": "ReLU"}


class _Kind:
    """The ``_fn`` of a Value that no table row made; ``_c`` is its micrograd ``_op`` string.

    ``LEAF``: no arguments (``_a`` is ``()``). ``HAND``: built as ``Value(data, children, op)``;
    ``_a`` is the tuple of children, ``_b`` the ``_backward`` function assigned to it (None:
    it passes nothing on). ``VJP``: the eager call of a custom_vjp / custom_jvp function;
    ``_a`` is the tuple of its Value arguments, ``_b(g)`` gives one cotangent per argument.
    """

    __slots__ = ("kind", "arity")
    has_param = False

    def __init__(self, kind, arity):
        self.kind, self.arity = kind, arity  # arity -1: any number of arguments, in the tuple _a

    def __repr__(self):
        return f"_Kind({self.kind})"

    def __reduce__(self):  # pickle and copy by name: there is one of each
        return self.kind.upper()


LEAF, HAND, VJP = _Kind("leaf", 0), _Kind("hand", -1), _Kind("vjp", -1)


class Value(Arithmetic):
    """A scalar with a gradient, micrograd's ``Value`` made fast and safe.

    ``Value(data, _children=(), _op='', label='')``: the middle two are for micrograd
    code that builds nodes by hand; such a node passes its gradient on by the function
    assigned to its ``_backward`` (none by default, as micrograd's ``lambda: None``).

    Equality and hashing are by identity (micrograd code keeps Values in sets);
    ``<``, ``<=``, ``>``, ``>=`` compare ``data`` and return ``bool``.

    >>> a = Value(2.0); b = a ** 3 - 1 / a; b.backward()
    >>> b.data, a.grad, a < b, a == Value(2.0)
    (7.5, 12.25, True, False)
    """

    # A computed Value: _fn is the Op that made it; _a, _b, _c are its arguments
    # (Values, or floats for constants), then the op's parameter if it has one
    # (powc: _a = x, _b = p), so that ``fn.vjp(g, out, a, b)`` is the table's call;
    # _b is None for a unary op, _c is set by ternary ops only.
    # Any other Value: _fn is LEAF, HAND or VJP (see _Kind).
    # Arguments live in slots, not in a tuple: one object per node for the cyclic
    # garbage collector to scan, not two.
    __slots__ = ("data", "grad", "_fn", "_a", "_b", "_c", "_label")
    _tg_level = 0

    def __init__(self, data, _children=(), _op="", label=""):
        if is_boxed(data) and not isinstance(data, Value):
            raise TracingError(
                f"Value() got a traced value at {user_location()}: an op written micrograd-style (a Value "
                "and a hand-written _backward) cannot be traced or compiled; define it with "
                "tg.defop(name, arity, eval=..., vjp=...) and call that instead")
        self.data = to_float(data)
        self.grad = 0.0
        children = tuple(a for a in _children if isinstance(a, Value))
        self._fn, self._a, self._b, self._c = HAND if children else LEAF, children, None, str(_op)
        self._label = label

    @staticmethod
    def _tg_bind(op, args, param):
        if len(args) == 1 and type(args[0]) is Value and op.name in _UNARY:  # tg.relu(v) ...
            return _UNARY[op.name](args[0])
        try:
            data = [a.data if isinstance(a, Value) else to_float(a) for a in args]
        except TypeError:
            np = loaded_numpy()
            if np is None or not any(isinstance(a, np.ndarray) for a in args):
                raise
            from .arrays import elementwise
            return elementwise(lambda *xs: bind(op, *xs, param=param), args)  # w * x: one op per element
        slots = [a if isinstance(a, Value) else d for a, d in zip(args, data)]
        if op.has_param:
            if op.arity > 2:
                raise TypeError(f"op {op.name!r} has three arguments and a parameter; an eager Value holds "
                                "three at most: make the parameter an argument")
            data.append(param)
            slots.append(param)
        out = _new(Value)
        out.data = op.eval(*data)
        out.grad = 0.0
        out._fn = op
        out._a = slots[0]
        out._b = slots[1] if len(slots) > 1 else None
        if len(slots) > 2:
            out._c = slots[2]
        return out

    # ------------------------------------------------------------ the graph

    @property
    def label(self):
        """A name for display (``draw``, ``graph_of``); never part of any generated code."""
        try:
            return self._label
        except AttributeError:  # computed Values get no label until one is given
            return ""

    @label.setter
    def label(self, text):
        self._label = text

    @property
    def op(self):
        """The name of the op that made this Value (``"mul"``, ``"powc"`` ...; for a node built
        by hand its ``_op``, for a custom_vjp call the function's name); ``""`` for a leaf."""
        fn = self._fn
        return fn.name if type(fn) is Op else "" if fn is LEAF else self._c

    @property
    def _args(self):
        """The op's arguments in order: Values, and floats for constants (the parameter left out)."""
        fn = self._fn
        if type(fn) is not Op:
            return self._a
        if fn.arity == 3:
            return self._a, self._b, self._c
        return (self._a, self._b)[:fn.arity]

    @property
    def parents(self):
        """The Values this one was computed from, in argument order (constants left out)."""
        return tuple(a for a in self._args if type(a) is not float)

    @property
    def param(self):
        """The op's constant parameter (``powc``'s exponent), else None."""
        fn = self._fn
        if type(fn) is not Op or not fn.has_param:
            return None
        return self._b if fn.arity == 1 else self._c  # the slot after the arguments

    @property
    def _prev(self):  # micrograd's name, read by its draw_dot
        return set(self.parents)

    @property
    def _op(self):  # micrograd's name and symbols: '+', '*', '**2', 'ReLU'
        fn = self._fn
        if type(fn) is not Op:
            return self._c
        if fn is POWC:
            return f"**{self._b:g}"
        return _SYMBOLS.get(fn.name, fn.name)

    def backward(self):
        """Add d(self)/d(node) to the ``grad`` of every Value this one depends on.

        As in micrograd, ``self.grad`` is set to 1 and gradients accumulate across
        calls: call ``zero_grad`` (or set ``grad = 0``) between steps. Each node's
        local derivatives come from its op's ``vjp`` rule in the table; a node built by
        hand runs its ``_backward``.
        """
        order = _topological_order(self)
        self.grad = 1.0
        # the steps of unary and binary rows, inlined (most nodes); every other node: _step
        for v in reversed(order):
            fn, a, b = v._fn, v._a, v._b
            arity = fn.arity
            if arity == 2 and not fn.has_param:  # a constant argument is a float, it takes no gradient
                ga, gb = fn.vjp(v.grad, v.data, a if type(a) is float else a.data,
                                b if type(b) is float else b.data)
                if ga is not None and type(a) is not float:
                    a.grad += ga
                if gb is not None and type(b) is not float:
                    b.grad += gb
            elif arity == 1:  # a is a Value; b is the parameter or None
                ga, = fn.vjp(v.grad, v.data, a.data, b) if fn.has_param else fn.vjp(v.grad, v.data, a.data)
                if ga is not None:
                    a.grad += ga
            else:
                _step(v)

    @property
    def _backward(self):
        """micrograd's per-node step: a function that adds this node's share of the gradient
        (from its ``grad``) to its arguments' ``grad``; for a leaf it does nothing.

        Assign a function of no arguments to give a node built by hand its derivative, as
        micrograd code does; ``backward()`` then runs it.

        >>> a, b = Value(2.0), Value(3.0)
        >>> out = Value(a.data * b.data, (a, b), "*")
        >>> def _backward():
        ...     a.grad += b.data * out.grad
        ...     b.grad += a.data * out.grad
        >>> out._backward = _backward
        >>> out.backward()
        >>> a.grad, b.grad
        (3.0, 2.0)
        """
        if self._fn is HAND:
            return self._b or _nothing
        return functools.partial(_step, self)

    @_backward.setter
    def _backward(self, function):
        if not callable(function):
            raise TypeError(f"_backward must be a function of no arguments (micrograd style), "
                            f"got {type(function).__name__} {function!r:.60}")
        self._a, self._c = self.parents, self._op
        self._fn, self._b = HAND, function

    def topological_sort(self):
        """Every Value this one depends on, itself last, each after its arguments (leaves included).

        ``backward()`` visits these nodes in reverse order; the walk is iterative, so a
        graph of any depth works. Running each node's ``_backward`` in that order, after
        setting ``grad`` to 1, is what ``backward()`` does:

        >>> x = Value(3.0, label="x"); y = x * x + x
        >>> [v.op or v.label for v in y.topological_sort()]
        ['x', 'mul', 'add']
        >>> y.grad = 1.0
        >>> for v in reversed(y.topological_sort()):
        ...     v._backward()
        >>> x.grad
        7.0
        """
        return _topological_order(self, leaves=True)

    def zero_grad(self):
        """Set the gradient of this Value and of every Value it depends on to 0.

        >>> x = Value(3.0); y = x * x; y.backward(); y.zero_grad(); x.grad
        0.0
        """
        self.grad = 0.0
        for v in _topological_order(self):
            for a in v.parents:
                a.grad = 0.0

    # ------------------------------------------------------------ Python protocol

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """numpy's ufuncs record their rows (see ``Arithmetic.__array_ufunc__``), except that
        comparisons (``np.less`` ...) compare ``data`` and give bools, as ``<`` does."""
        op = ufunc_op(ufunc)
        if op is not None and op.compare:
            return getattr(ufunc, method)(*map(_data, inputs), **kwargs)
        return Arithmetic.__array_ufunc__(self, ufunc, method, *inputs, **kwargs)

    def __lt__(self, other): return self.data < _data(other)
    def __le__(self, other): return self.data <= _data(other)
    def __gt__(self, other): return self.data > _data(other)
    def __ge__(self, other): return self.data >= _data(other)

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


_new = object.__new__


def _nothing():
    """The ``_backward`` of a leaf, or of a node built by hand without one."""


def _step(v):
    """Node ``v``'s part of ``backward()``: add its local gradients to its arguments' ``grad``."""
    fn = v._fn
    if fn is LEAF:
        return
    if fn is HAND:
        if v._b is not None:
            v._b()
        return
    if fn is VJP:
        args, cts = v._a, v._b(v.grad)
    else:
        args = v._args
        data = [x if type(x) is float else x.data for x in args]
        cts = fn.vjp(v.grad, v.data, *data, v.param) if fn.has_param else fn.vjp(v.grad, v.data, *data)
    for x, ct in zip(args, cts):
        if ct is not None and type(x) is not float:
            x.grad += ct


def custom_value(data, args, vjp, name):
    """A Value computed outside the op table, from the Values ``args``: ``vjp(g)`` gives one
    cotangent (or None) per argument. The eager call of a custom_vjp function makes these.

    >>> x = Value(2.0); y = custom_value(4.0, (x,), lambda g: (g * 4.0,), "square")
    >>> y.backward(); y.op, x.grad
    ('square', 4.0)
    """
    out = _new(Value)
    out.data, out.grad = to_float(data), 0.0
    out._fn, out._a, out._b, out._c = VJP, tuple(args), vjp, name
    return out


def _data(x):
    """What a Value compares with: a number, or a numpy array compared element by element."""
    np = loaded_numpy()
    return x.data if isinstance(x, Value) else x if np is not None and isinstance(x, np.ndarray) else to_float(x)


# ---------------------------------------------------------------- fast dispatch
# Arithmetic's methods go through ops.bind, which serves every boxed type. A Value
# with a Value or float operand is the hot case of eager training, so Value gets the
# same methods specialised to it: the formula is still the table row's eval.

def _binary(op, reflected):
    evaluate = op.eval
    general = Arithmetic.__dict__[f"__{'r' if reflected else ''}{op.name}__"]

    def method(self, other):
        kind = type(other)
        if kind is Value:
            y = other.data
        elif kind is float:
            y = other
        else:  # ints, numpy scalars, tracers, wrong types: the general path
            return general(self, other)
        out = _new(Value)
        out.grad = 0.0
        out._fn = op
        if reflected:
            out.data = evaluate(y, self.data)
            out._a = other
            out._b = self
        else:
            out.data = evaluate(self.data, y)
            out._a = self
            out._b = other
        return out
    method.__name__ = general.__name__
    return method


def _unary(op):
    evaluate = op.eval

    def method(self):
        out = _new(Value)
        out.data = evaluate(self.data)
        out.grad = 0.0
        out._fn = op
        out._a = self
        out._b = None
        return out
    method.__name__ = op.name
    return method


for _op in (ADD, SUB, MUL):
    setattr(Value, f"__{_op.name}__", _binary(_op, False))
    setattr(Value, f"__r{_op.name}__", _binary(_op, True))
# Every unary op without a parameter, by op name (for _tg_bind) and as a method.
_UNARY = {op.name: _unary(op) for op in TABLE.values() if op.arity == 1 and not op.has_param}
for _name, _method in _UNARY.items():
    if _name in Arithmetic.__dict__:
        setattr(Value, _name, _method)
Value.__neg__, Value.__abs__ = _UNARY["neg"], _UNARY["abs"]


class gc_paused:
    """Context manager: Python's cyclic garbage collector is paused inside, restored after.

    Values make no reference cycles, so their graphs are freed by reference counting.
    The collector still scans every live Value a few times as it ages; pausing it
    while a model builds one sample's graph (``MLP.__call__``) gives it larger, fewer
    batches, and nearly halves its full collections in an eager training step.

    >>> with gc_paused():
    ...     y = (Value(2.0) * 3.0).tanh()
    """

    def __enter__(self):
        self.enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            gc.enable()


def _topological_order(root, leaves=False):
    """The computed (non-leaf) Values that ``root`` depends on, parents before children;
    with ``leaves``, the leaves too (each where the search first reaches it).

    Iterative depth-first search in argument order (a node is placed after its first
    argument's subtree, then its second's ...), so the order is deterministic.
    """
    if root._fn is LEAF and not leaves:
        return []
    stop = None if leaves else LEAF  # the arguments not to visit: leaves, or none
    order, seen = [], set()
    stack = [root]
    pop, push, place, mark = stack.pop, stack.append, order.append, seen.add
    while stack:
        v = pop()
        if v is _PLACE:  # the arguments of the node below are placed: place it
            place(pop())
            continue
        if v in seen:  # a second entry of a node placed since
            continue
        mark(v)
        push(v)
        push(_PLACE)
        arity = v._fn.arity  # push the arguments that are Values, unless stop, last first
        if arity >= 2:
            if arity == 3:
                c = v._c
                if type(c) is not float and c._fn is not stop and c not in seen:
                    push(c)
            b = v._b
            if type(b) is not float and b._fn is not stop and b not in seen:
                push(b)
        elif arity < 1:  # a leaf (with leaves=True), or a node whose arguments are the tuple _a
            for a in reversed(v._a):
                if a._fn is not stop and a not in seen:
                    push(a)
            continue
        a = v._a
        if type(a) is not float and a._fn is not stop and a not in seen:
            push(a)
    return order


_PLACE = object()


def graph_of(outputs, inputs=()):
    """The IR ``Graph`` of a Value graph: ``inputs`` (leaf Values) in order, other leaves constants.

    ``outputs`` is a Value or a list of them. The graph can be compiled with
    ``tracegrad.backends.compile`` or differentiated like a traced function.

    >>> import tracegrad as tg
    >>> x = Value(3.0, label="x"); y = x * x + 1
    >>> g = graph_of(y, inputs=[x])
    >>> print(g)
    { lambda x:f64 .
      v1 = mul x x
      v3 = add v1 1.0
      in (v3) }
    >>> tg.ir.evaluate(g, [5.0])
    [26.0]
    """
    single = isinstance(outputs, Value)
    if not (single or isinstance(outputs, (list, tuple))) or not isinstance(inputs, (list, tuple)):
        raise TypeError("graph_of takes a Value or a list of Values, and a list of input Values: "
                        f"got {type(outputs).__name__} and {type(inputs).__name__}")
    outputs = [outputs] if single else list(outputs)
    for v in list(inputs) + outputs:
        if not isinstance(v, Value):
            raise TypeError(f"graph_of takes Values, got {type(v).__name__} {v!r:.60}")
    b = Builder()
    index = {}
    for x in inputs:
        if x._fn is not LEAF:
            raise ValueError(f"graph_of inputs must be leaf Values, but {x!r} was computed by {x.op!r}")
        if x in index:
            raise ValueError(f"{x!r} is listed twice in graph_of's inputs")
        index[x] = b.input()

    def node_of(a):
        if not isinstance(a, Value):
            return b.const(a)
        if a not in index:
            index[a] = b.const(a.data)
        return index[a]

    for out in outputs:
        for v in _topological_order(out):
            if type(v._fn) is not Op:
                raise TracingError(_opaque(v))
            if v not in index:
                index[v] = b.add(v._fn.name, tuple(node_of(a) for a in v._args), v.param)
    labels = [x.label for x in inputs]
    names = labels if _valid_names(labels) else ()
    return b.graph([node_of(o) for o in outputs], names).verify()


def _opaque(v):
    """Why the Value ``v``, which no table row made, cannot become an IR node."""
    what = f"{v!r} (op {v.op!r}" + (f", label {v.label!r})" if v.label else ")")
    if v._fn is VJP:
        return (f"{what} was computed by the custom rule function {v.op!r} on Values, which a Value graph "
                "cannot record; compile the function that calls it (tg.jit, tg.grad), where its rule is traced")
    how = "has a _backward written by hand" if v._b is not None else "was built by hand (Value(data, children, op))"
    return (f"{what} {how}, which compiled code cannot run; define the op with "
            "tg.defop(name, arity, eval=..., vjp=...) and use it instead, so that it is one IR node")


def _valid_names(labels):
    return len(set(labels)) == len(labels) and all(s.isidentifier() for s in labels)
