"""User-defined derivative rules: ``custom_vjp`` and ``custom_jvp``.

Called on traced values, a decorated function records its body as usual and marks
the recorded outputs as a *custom rule region* of the graph (``Graph.custom``): the
user's rule, traced into a graph of its own, replaces the derivative of the body in
reverse and forward mode. The rule is traced with the library's ops, so derivatives
of higher order differentiate the rule. On floats the function runs as written. On
eager ``Value``s the body runs on their floats and each output is a Value whose
``backward()`` applies the rule.

>>> import tracegrad as tg
>>> @tg.custom_vjp
... def safe_norm(x, y):
...     return tg.sqrt(x * x + y * y)
>>> _ = safe_norm.defvjp(lambda g, out, x, y: (g * x / out, g * y / out))
>>> tg.grad(safe_norm, argnums=(0, 1))(3.0, 4.0)
(0.6, 0.8)
"""
import functools

from .errors import TracingError
from .ir import Builder, evaluate
from .ops import innermost, to_float
from .pytree import flatten, num_leaves, unflatten
from .tracing import trace_flat
from .value import Value, custom_value


class _Custom:
    kind = None

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"custom_{self.kind} takes a function, got {type(fn).__name__}")
        self.fn, self.rule, self._in_rule = fn, None, False
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args):
        leaves, in_tree = flatten(args)
        box = innermost(leaves)
        if self._in_rule or box is None:
            return self.fn(*args)  # floats, or a call from inside its own rule
        if self.rule is None:
            raise TypeError(f"{self.__name__} has no rule yet: call .def{self.kind}(rule) before using it")
        if isinstance(box, Value):
            return self._call_on_values(leaves, in_tree)
        body, out_tree, captured = trace_flat(self.fn, args)
        if captured:
            raise TracingError(
                f"{self.__name__} (a custom_{self.kind} function) uses a traced value that is not one of "
                "its arguments; pass that value as an argument so that the rule can see it")
        rule = self._rule_graph(body, in_tree, out_tree, args)
        # the outputs become nodes of their own, even where the body returns an argument or a
        # value the caller also computes: the rule applies to them, not to every use of that value
        b = Builder()
        env = b.replay(body, [b.input() for _ in body.inputs])
        outs = tuple(b.distinct(env[o]) for o in body.outputs)
        b.custom.append((self.kind, tuple(b.inputs), outs, rule))
        return unflatten(out_tree, evaluate(b.graph(outs), leaves))

    def _call_on_values(self, leaves, in_tree):
        """The eager call: the body on the Values' floats; each output a Value whose ``backward``
        applies the rule to its cotangent (the rule is linear in it, so the outputs' rules add up)."""
        data = [x.data if isinstance(x, Value) else to_float(x) for x in leaves]
        primals = unflatten(in_tree, data)
        out = self.fn(*primals)
        out_leaves, out_tree = flatten(out)
        boxed = [i for i, x in enumerate(leaves) if isinstance(x, Value)]
        parents = tuple(leaves[i] for i in boxed)
        outputs = [custom_value(o, parents, vjp, self.__name__)
                   for o, vjp in zip(out_leaves, self._eager_vjps(out, out_tree, primals, boxed))]
        return unflatten(out_tree, outputs)

    def _rule_graph(self, body, in_tree, out_tree, args):
        n = len(body.inputs)

        def rule(*flat):
            primals = unflatten(in_tree, flat[:n])
            out = unflatten(out_tree, evaluate(body, list(flat[:n])))
            result = self._call_rule(out, out_tree, primals, flat[n:])
            return [0.0 if r is None else r for r in result]
        extra = [0.0] * (n if self.kind == "jvp" else len(body.outputs))
        self._in_rule = True
        try:
            return trace_flat(rule, [*flatten(args)[0], *extra])[0]
        finally:
            self._in_rule = False

    def __repr__(self):
        return f"<tracegrad.custom_{self.kind} {self.__name__!r}>"


def _leaves_like(value, tree, what):
    """The leaves of ``value``, which must have the structure ``tree`` (None: all zero)."""
    if value is None:
        return [None] * num_leaves(tree)
    leaves, got = flatten(value)
    if got != tree:
        raise TypeError(f"{what} returned a value of structure {got}, expected {tree}")
    return leaves


class custom_vjp(_Custom):
    """A function with a user-defined reverse-mode rule, set with ``defvjp``.

    ``rule(g, out, *args)`` gets the cotangent ``g`` (the structure of the output),
    the output and the arguments, and returns one cotangent per argument (a tuple;
    None for a zero). Forward mode uses the same rule, one output at a time.

    >>> import tracegrad as tg
    >>> @tg.custom_vjp
    ... def norm(x, y):
    ...     return tg.sqrt(x * x + y * y)
    >>> _ = norm.defvjp(lambda g, out, x, y: (g * x / out, g * y / out))
    >>> tg.grad(norm, argnums=(0, 1))(3.0, 4.0)
    (0.6, 0.8)
    """

    kind = "vjp"

    def defvjp(self, rule):
        """Set the reverse-mode rule; returns it, so it can be used as a decorator.

        >>> import tracegrad as tg
        >>> double = tg.custom_vjp(lambda x: 2.0 * x)
        >>> @double.defvjp
        ... def rule(g, out, x):
        ...     return (2.0 * g,)
        >>> tg.grad(double)(1.0)
        2.0
        """
        if not callable(rule):
            raise TypeError(f"defvjp takes a function rule(g, out, *args), got {type(rule).__name__}")
        self.rule = rule
        return rule

    def _eager_vjps(self, out, out_tree, primals, boxed):
        """Per output, ``vjp(g)``: the cotangents of the Value arguments (positions ``boxed``)
        from that output's cotangent ``g``, the rule's called with ``g`` there and 0 elsewhere."""
        def vjp_of(j):
            def vjp(g):
                cts = [0.0] * num_leaves(out_tree)
                cts[j] = g
                result = self._call_rule(out, out_tree, primals, cts)
                return [result[i] for i in boxed]
            return vjp
        return [vjp_of(j) for j in range(num_leaves(out_tree))]

    def _call_rule(self, out, out_tree, primals, cts):
        result = self.rule(unflatten(out_tree, cts), out, *primals)
        if len(primals) == 1 and not isinstance(result, (tuple, list)):
            result = (result,)
        if not isinstance(result, (tuple, list)) or len(result) != len(primals):
            raise TypeError(f"the vjp rule of {self.__name__} must return a tuple with one cotangent "
                            f"per argument ({len(primals)}), got {result!r:.80}")
        leaves = []
        for r, a in zip(result, primals):
            leaves += _leaves_like(r, flatten(a)[1], f"the vjp rule of {self.__name__}")
        return leaves


class custom_jvp(_Custom):
    """A function with a user-defined forward-mode rule, set with ``defjvp``.

    ``rule(primals, tangents)`` gets two tuples (one entry per argument) and returns
    ``(primal_out, tangent_out)`` as in JAX; ``tangent_out`` has the output's structure
    and ``primal_out`` is not used (the value is the body's). Reverse mode uses the
    rule's transpose (the rule must be linear in the tangents, as every jvp is).

    >>> import tracegrad as tg
    >>> f = tg.custom_jvp(lambda x: tg.sin(x))
    >>> f.defjvp(lambda primals, tangents: (tg.sin(primals[0]), tg.cos(primals[0]) * tangents[0]))
    >>> tg.grad(f)(0.0), tg.jvp(f, (0.0,), (2.0,))
    (1.0, (0.0, 2.0))
    """

    kind = "jvp"

    def defjvp(self, rule):
        """Set the forward-mode rule ``rule(primals, tangents) -> (primal_out, tangent_out)``."""
        if not callable(rule):
            raise TypeError(f"defjvp takes a function rule(primals, tangents), got {type(rule).__name__}")
        self.rule = rule

    def _eager_vjps(self, out, out_tree, primals, boxed):
        """Per output, ``vjp(g)``: the transpose of the rule, from the Jacobian that the rule gives
        with a unit tangent in each Value argument (positions ``boxed``), taken now."""
        n = num_leaves(flatten(primals)[1])
        columns = []
        for i in boxed:
            tangents = [0.0] * n
            tangents[i] = 1.0
            columns.append(self._call_rule(out, out_tree, primals, tangents))
        def vjp_of(j):
            return lambda g: [None if column[j] is None else g * column[j] for column in columns]
        return [vjp_of(j) for j in range(num_leaves(out_tree))]

    def _call_rule(self, out, out_tree, primals, tangents):
        in_tree = flatten(primals)[1]
        result = self.rule(tuple(primals), tuple(unflatten(in_tree, tangents)))
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"the jvp rule of {self.__name__} must return (primal_out, tangent_out), "
                            f"got {result!r:.80}")
        return _leaves_like(result[1], out_tree, f"the jvp rule of {self.__name__}")


__all__ = ["custom_vjp", "custom_jvp"]
