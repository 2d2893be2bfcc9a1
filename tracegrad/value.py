"""The eager, micrograd-compatible ``Value``: a float that remembers how it was made.

A ``Value`` records its op (a row of the op table), its arguments and the op's
parameter in its own slots: no closures, so a graph of Values has no reference cycles
and is freed by reference counting alone, and no argument tuple, so each node is one
object for Python's cyclic garbage collector to scan, which is most of what an eager
step costs beyond the arithmetic. ``backward()`` walks the graph in reverse
topological order (iteratively: a million-node chain works) and asks the op table for
each node's local derivatives.

>>> x = Value(-4.0, label="x")
>>> y = (2 * x + 2 + x).relu() + x * x
>>> y.backward()
>>> y, x.grad
(Value(data=16.0, grad=1.0), -8.0)
"""
import gc

import numpy as np

from .ir import Builder
from .ops import ADD, MUL, POWC, SUB, TABLE, Arithmetic, Op, bind, to_float
from .pytree import elementwise

# How micrograd (and its draw_dot) names ops; other ops show their table name.
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "relu": "ReLU"}


class Value(Arithmetic):
    """A scalar with a gradient, micrograd's ``Value`` made fast and safe.

    ``Value(data, _children=(), _op='', label='')``: the middle two exist only for
    micrograd code that builds nodes by hand; such nodes pass no gradient on.

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
    # A leaf: _fn is '' (or micrograd's _op string) and _a the tuple of _children.
    # Arguments live in slots, not in a tuple: one object per node for the cyclic
    # garbage collector to scan, not two.
    __slots__ = ("data", "grad", "_fn", "_a", "_b", "_c", "_label")
    _tg_level = 0

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = to_float(data)
        self.grad = 0.0
        self._fn = _op
        self._a = tuple(a for a in _children if isinstance(a, Value))
        self._label = label

    @staticmethod
    def _tg_bind(op, args, param):
        if len(args) == 1 and type(args[0]) is Value and op.name in _UNARY:  # tg.relu(v) ...
            return _UNARY[op.name](args[0])
        try:
            data = [a.data if isinstance(a, Value) else to_float(a) for a in args]
        except TypeError:
            if not any(isinstance(a, np.ndarray) for a in args):
                raise
            return elementwise(lambda *xs: bind(op, *xs, param=param), args)  # w * x: one op per element
        slots = [a if isinstance(a, Value) else d for a, d in zip(args, data)]
        if op.has_param:
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
        """The name of the op that made this Value (``"mul"``, ``"powc"`` ...); ``""`` for a leaf."""
        return self._fn.name if type(self._fn) is Op else ""

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
        return self._b if type(fn) is Op and fn.has_param else None

    @property
    def _prev(self):  # micrograd's name, read by its draw_dot
        return set(self.parents)

    @property
    def _op(self):  # micrograd's name and symbols: '+', '*', '**2', 'ReLU'
        fn = self._fn
        if type(fn) is not Op:
            return fn
        if fn is POWC:
            return f"**{self._b:g}"
        return _SYMBOLS.get(fn.name, fn.name)

    def backward(self):
        """Add d(self)/d(node) to the ``grad`` of every Value this one depends on.

        As in micrograd, ``self.grad`` is set to 1 and gradients accumulate across
        calls: call ``zero_grad`` (or set ``grad = 0``) between steps. Each node's
        local derivatives come from its op's ``vjp`` rule in the table.
        """
        order = _topological_order(self)
        self.grad = 1.0
        for v in reversed(order):
            fn, a, b = v._fn, v._a, v._b
            if fn.arity == 2:  # a constant argument is a float, it takes no gradient
                ga, gb = fn.vjp(v.grad, v.data, a if type(a) is float else a.data,
                                b if type(b) is float else b.data)
                if ga is not None and type(a) is not float:
                    a.grad += ga
                if gb is not None and type(b) is not float:
                    b.grad += gb
            elif fn.arity == 1:  # a is a Value; b is the parameter or None
                ga, = fn.vjp(v.grad, v.data, a.data, b) if fn.has_param else fn.vjp(v.grad, v.data, a.data)
                if ga is not None:
                    a.grad += ga
            else:
                args = v._args
                cts = fn.vjp(v.grad, v.data, *[x if type(x) is float else x.data for x in args])
                for x, ct in zip(args, cts):
                    if ct is not None and type(x) is not float:
                        x.grad += ct

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

    def __lt__(self, other): return self.data < _data(other)
    def __le__(self, other): return self.data <= _data(other)
    def __gt__(self, other): return self.data > _data(other)
    def __ge__(self, other): return self.data >= _data(other)

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


_new = object.__new__


def _data(x):
    """What a Value compares with: a number, or a numpy array compared element by element."""
    return x.data if isinstance(x, Value) else x if isinstance(x, np.ndarray) else to_float(x)


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


def _topological_order(root):
    """The computed (non-leaf) Values that ``root`` depends on, parents before children.

    Iterative depth-first search in argument order (a node is placed after its first
    argument's subtree, then its second's ...), so the order is deterministic.
    """
    if type(root._fn) is not Op:
        return []
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
        arity = v._fn.arity  # push the arguments that are computed Values, last first
        if arity == 3:
            c = v._c
            if type(c) is not float and type(c._fn) is Op and c not in seen:
                push(c)
        if arity >= 2:
            b = v._b
            if type(b) is not float and type(b._fn) is Op and b not in seen:
                push(b)
        a = v._a
        if type(a) is not float and type(a._fn) is Op and a not in seen:
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
        if type(x._fn) is Op:
            raise ValueError(f"graph_of inputs must be leaf Values, but {x!r} was computed by {x.op}")
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
            if v not in index:
                index[v] = b.add(v._fn.name, tuple(node_of(a) for a in v._args), v.param)
    labels = [x.label for x in inputs]
    names = labels if _valid_names(labels) else ()
    return b.graph([node_of(o) for o in outputs], names).verify()


def _valid_names(labels):
    return len(set(labels)) == len(labels) and all(s.isidentifier() for s in labels)
