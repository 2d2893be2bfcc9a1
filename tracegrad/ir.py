"""The IR: a flat SSA list of scalar nodes (a Wengert list), its builder, checker and printer.

A node is ``(op, args, param)``: ``op`` names a row of the op table (or ``"input"`` /
``"const"``), ``args`` are indices of earlier nodes, ``param`` is the constant of a
``const``, the position of an ``input``, or ``powc``'s exponent (else ``None``).

>>> b = Builder()
>>> x = b.input(); y = b.add("mul", (x, b.const(2.0)))
>>> print(b.graph([y], names=["x"]))
{ lambda x:f64 .
  v2 = mul x 2.0
  in (v2) }
"""
import hashlib
import json
import math
import struct
from collections import Counter
from dataclasses import dataclass, field

from .ops import TABLE, bind, innermost
from .pytree import unique_identifiers

_DOUBLE = struct.Struct("<d")


def float_key(x):
    """The bit pattern of a float (8 bytes), with every nan the same: 0.0 and -0.0 stay apart."""
    return _DOUBLE.pack(math.nan if x != x else x)


def literal(x):
    """A float as IR text and Python source: ``2.0``, ``-0.0``, ``inf``, ``nan``."""
    return "nan" if x != x else repr(x)


def _param_key(param):
    return param if param is None or type(param) in (int, Region) else float_key(param)


REGION_OPS = ("scan", "part")  # node kinds outside the op table: a loop region and one of its outputs


@dataclass(frozen=True, eq=False)
class Region:
    """The param of a ``scan`` node: a ``body`` graph traced once and run ``length`` times.

    A ``scan`` node's args are the initial carry (``n_carry`` nodes), the constants
    (``n_const``: values the body reads at every step) and, step after step, the
    ``n_x`` values of each step's row. Its value is a tuple: the final carry, then step
    after step the ``n_y`` values the body yields; ``part[k]`` nodes pick them out. The
    body's inputs are ``step`` (the step number as a float), the carry, the row, the
    constants; its outputs the next carry, then the step's ys. A ``map`` is a scan
    without carry.
    """

    body: "Graph"
    length: int
    n_carry: int
    n_const: int

    @property
    def n_x(self):
        return len(self.body.inputs) - 1 - self.n_carry - self.n_const

    @property
    def n_y(self):
        return len(self.body.outputs) - self.n_carry

    @property
    def n_args(self):
        return self.n_carry + self.n_const + self.length * self.n_x

    @property
    def n_out(self):
        return self.n_carry + self.length * self.n_y

    @property
    def kind(self):
        return "scan" if self.n_carry else "map"

    def key(self):
        return "region", self.body.key(), self.length, self.n_carry, self.n_const

    def __eq__(self, other):
        return isinstance(other, Region) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):  # part of the fingerprint of a graph holding the region
        return f"Region({self.length}, {self.n_carry}, {self.n_const}, {self.body.fingerprint})"

    def with_body(self, body):
        return Region(body, self.length, self.n_carry, self.n_const)

    def split(self, args):
        """``args`` of a scan node as (carry, consts, rows)."""
        c, k, n_x = self.n_carry, self.n_const, self.n_x
        xs = args[c + k:]
        return list(args[:c]), list(args[c:c + k]), [xs[t * n_x:(t + 1) * n_x] for t in range(self.length)]

    def column(self, nodes, args, j):
        """Row element ``j`` of every step as ``(scan node, start, stride)`` where the args are
        ys of one earlier scan node at evenly spaced positions (element of step s: its ys
        ``start + s * stride``), as a reverse scan reads the carries its forward scan stored;
        else None. ``nodes``: the graph's nodes, ``args``: this scan node's."""
        first = self.n_carry + self.n_const + j
        column = args[first:first + self.length * self.n_x:self.n_x] if self.n_x else ()
        if not column or any(nodes[a][0] != "part" for a in column):
            return None
        source = nodes[column[0]][1][0]
        start = nodes[column[0]][2] - nodes[source][2].n_carry
        stride = nodes[column[1]][2] - nodes[column[0]][2] if len(column) > 1 else 0
        if start < 0 or any(nodes[a][1][0] != source or nodes[a][2] - nodes[column[0]][2] != s * stride
                            for s, a in enumerate(column)):
            return None
        return source, start, stride

    def run(self, args):
        """The outputs of the region on ``args``, by a Python loop over the body
        (floats, Values, or tracers: then the body is recorded once per step, unrolled)."""
        carry, consts, rows = self.split(args)
        ys = []
        for t, row in enumerate(rows):
            out = evaluate(self.body, [float(t), *carry, *row, *consts])
            carry = out[:self.n_carry]
            ys.extend(out[self.n_carry:])
        return carry + ys

    def _json(self):
        return {"length": self.length, "n_carry": self.n_carry, "n_const": self.n_const,
                "body": self.body._json_body()}


def apply_region(region, args):
    """The outputs of a scan node on ``args``: recorded as one node where a tracer asks
    (``_tg_region``), else run as a loop."""
    box = innermost(args)
    if hasattr(box, "_tg_region"):
        return box._tg_region(region, args)
    return region.run(args)


def map_regions(graph, fn):
    """``graph`` with the body of each scan node replaced by ``fn(body)``."""
    if "scan" not in {op for op, _, _ in graph.nodes}:
        return graph
    nodes = tuple((op, args, p.with_body(fn(p.body)) if op == "scan" else p) for op, args, p in graph.nodes)
    return Graph(nodes, graph.inputs, graph.outputs, graph.names, graph.custom)


@dataclass(frozen=True, eq=False)
class Graph:
    """A closed scalar computation: nodes, ordered inputs and outputs.

    ``names`` are display names of the inputs (for printing and sympy); they take no
    part in equality, hashing or code generation.

    >>> import tracegrad as tg
    >>> g = tg.trace(lambda x: tg.sin(x) * x, 1.0)
    >>> len(g.nodes), g.inputs, g.outputs, g.stats()["sin"]
    (3, (0,), (2,), 1)

    ``custom`` lists the regions of user-defined derivative rules (``tg.custom_vjp`` /
    ``tg.custom_jvp``), each ``(kind, ins, outs, rule)``: the nodes ``outs`` (None where
    dead; the others nodes of their own, after ``ins``, see ``Builder.distinct``) were
    computed from the nodes ``ins``, and the transforms use the ``rule``
    graph for them. ``kind`` "vjp": rule(ins..., cotangents of outs...) -> cotangents of
    ins; "jvp": rule(ins..., tangents of ins...) -> tangents of outs. Evaluation and the
    backends ignore them.
    """

    nodes: tuple
    inputs: tuple
    outputs: tuple
    names: tuple = field(default=())
    custom: tuple = field(default=())

    def key(self):
        nodes = tuple((op, args, _param_key(p)) for op, args, p in self.nodes)
        custom = tuple((kind, ins, outs, rule.key()) for kind, ins, outs, rule in self.custom)
        return nodes, self.inputs, self.outputs, custom

    def __eq__(self, other):
        return isinstance(other, Graph) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    @property
    def fingerprint(self):
        """A hex SHA-256 of the graph's content (names excluded): the cache key of compiled code.

        It hashes the ``repr`` of the nodes, exact for every float (``-0.0``, ``inf``, ``nan``),
        and the definition of each user-defined op the graph uses (``Op.token``, new at each
        ``tg.defop``), so that code compiled for an op of the same name defined before is
        never reused.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            custom = tuple((kind, ins, outs, rule.fingerprint) for kind, ins, outs, rule in self.custom)
            content = ("tracegrad.graph", 2, self.nodes, self.inputs, self.outputs, custom)
            user = sorted(TABLE[op].token for op in {node[0] for node in self.nodes} if not _builtin(op))
            payload = repr(content + (tuple(user),) if user else content)
            cached = hashlib.sha256(payload.encode()).hexdigest()
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def input_names(self):
        """Display names of the inputs: ``names`` made distinct identifiers, else ``x0, x1 ...``."""
        names = self.names if len(self.names) == len(self.inputs) else ()
        return unique_identifiers(names) or [f"x{i}" for i in range(len(self.inputs))]

    def stats(self):
        """Node counts by op, e.g. ``Counter({'mul': 3, 'input': 2, ...})``."""
        return Counter(op for op, _, _ in self.nodes)

    # ------------------------------------------------------------ checking

    def verify(self):
        """Check that the graph is well formed; raise ``ValueError`` saying what is not."""
        positions = set()
        for i, node in enumerate(self.nodes):
            if not (isinstance(node, tuple) and len(node) == 3):
                raise ValueError(f"node {i} is not an (op, args, param) triple")
            op, args, param = node
            if op == "input":
                if args or not isinstance(param, int) or isinstance(param, bool):
                    raise ValueError(f"input node {i} must have no args and an integer position")
                positions.add(param)
                continue
            if op == "const":
                if args or not isinstance(param, float):
                    raise ValueError(f"const node {i} must have no args and a float value")
                continue
            if op in REGION_OPS:
                _verify_region(self.nodes, i)
                continue
            if op not in TABLE:
                raise ValueError(f"node {i} uses the unknown op {op!r:.80}, not defined in this process: "
                                 "define it with tg.defop first (as the code that made the graph did)")
            spec = TABLE[op]
            if not isinstance(args, tuple) or len(args) != spec.arity:
                raise ValueError(f"node {i} ({op}) needs {spec.arity} args, has {args!r}")
            for a in args:
                if not isinstance(a, int) or isinstance(a, bool) or not 0 <= a < i:
                    raise ValueError(f"node {i} ({op}) refers to {a!r}, which is not an earlier node")
            if spec.has_param != isinstance(param, float):
                raise ValueError(f"node {i} ({op}) has a wrong param {param!r}")
        if not all(isinstance(i, int) and 0 <= i < len(self.nodes) for i in self.inputs) or \
                [self.nodes[i][2] for i in self.inputs] != list(range(len(self.inputs))) or \
                positions != set(range(len(self.inputs))):
            raise ValueError("inputs must list the input nodes in order of their positions")
        for o in self.outputs:
            if not isinstance(o, int) or isinstance(o, bool) or not 0 <= o < len(self.nodes):
                raise ValueError(f"output {o!r} is not a node")
        for name in self.names:
            if not (isinstance(name, str) and name.isidentifier()):
                raise ValueError(f"input name {name!r:.80} is not a Python identifier")
        region_outs = set()
        for kind, ins, outs, rule in self.custom:
            live = [o for o in outs if o is not None]
            if kind not in ("vjp", "jvp") or not all(isinstance(i, int) and not isinstance(i, bool) and
                                                     0 <= i < len(self.nodes) for i in [*ins, *live]):
                raise ValueError(f"malformed custom rule region {(kind, ins, outs)!r}")
            # each output is a node of its own (never an input, a node of the region's inputs, or
            # another region's output), after the inputs: the rule applies to it and nothing else
            if not live or min(live) <= max(ins, default=-1) or region_outs.intersection(live) or \
                    len(set(live)) < len(live) or any(self.nodes[o][0] == "input" for o in live):
                raise ValueError(f"custom rule region {(kind, ins, outs)!r} must have outputs (not all "
                                 "null) that are nodes of their own, after all of its inputs")
            region_outs.update(live)
            shape = (2 * len(ins), len(outs)) if kind == "jvp" else (len(ins) + len(outs), len(ins))
            if not isinstance(rule, Graph) or (len(rule.inputs), len(rule.outputs)) != shape:
                raise ValueError(f"the rule of custom region {(kind, ins, outs)!r} must be a graph of "
                                 f"{shape[0]} inputs and {shape[1]} outputs")
            rule.verify()
        return self

    # ------------------------------------------------------------ JSON

    def _json_body(self):
        nodes = [[op, list(args), p.hex() if isinstance(p, float) else p._json() if isinstance(p, Region) else p]
                 for op, args, p in self.nodes]
        body = {"format": "tracegrad.graph", "version": 1, "nodes": nodes,
                "inputs": list(self.inputs), "outputs": list(self.outputs)}
        if self.custom:
            body["custom"] = [[kind, list(ins), list(outs), rule._json_body()]
                              for kind, ins, outs, rule in self.custom]
        return body

    def to_json(self):
        """The graph as JSON text; floats are exact (hex), so the round trip is bit-exact.

        >>> g = Builder(); x = g.input(); g = g.graph([x])
        >>> Graph.from_json(g.to_json()) == g
        True
        """
        return json.dumps(dict(self._json_body(), names=list(self.names)))

    @classmethod
    def from_json(cls, text):
        """Parse and validate JSON from ``to_json``; anything malformed is a ``ValueError``."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"not a JSON graph: {type(e).__name__}: {e}") from None
        return cls._from_data(data)

    @classmethod
    def _from_data(cls, data, depth=0):
        if depth > 32:
            raise ValueError("custom rules are nested more than 32 deep")
        if not isinstance(data, dict) or data.get("format") != "tracegrad.graph" or data.get("version") != 1:
            raise ValueError("not a tracegrad graph (expected format 'tracegrad.graph', version 1)")
        try:
            nodes = []
            for op, args, param in data["nodes"]:
                if not isinstance(op, str) or not isinstance(args, list):
                    raise ValueError(f"malformed node {[op, args, param]!r}")
                if isinstance(param, str):
                    param = float.fromhex(param)
                elif op == "scan" and isinstance(param, dict):
                    param = Region(cls._from_data(param["body"], depth + 1), param["length"], param["n_carry"],
                                   param["n_const"])
                elif op not in ("input", "part") and param is not None:
                    raise ValueError(f"param {param!r} of a {op} node must be a hex float or null")
                nodes.append((op, tuple(args), param))
            custom = tuple((kind, tuple(ins), tuple(outs), cls._from_data(rule, depth + 1))
                           for kind, ins, outs, rule in data.get("custom", ()))
            graph = cls(tuple(nodes), tuple(data["inputs"]), tuple(data["outputs"]),
                        tuple(data.get("names", ())), custom)
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            message = str(e) if str(e).startswith("malformed graph JSON") else f"malformed graph JSON: {e}"
            raise ValueError(message) from None
        return graph.verify()

    # ------------------------------------------------------------ printing

    def __str__(self, indent="  "):
        names = {i: n for i, n in zip(self.inputs, self.input_names())}

        def show(a):
            op, _, p = self.nodes[a]
            return literal(p) if op == "const" else names.get(a, f"v{a}")

        params = ", ".join(f"{n}:f64" for n in self.input_names())
        lines = ["{ lambda " + params + " ."]
        for i, (op, args, p) in enumerate(self.nodes):
            if op in ("input", "const"):
                continue
            if op == "scan":
                head = f"{p.kind}[length={p.length} carry={p.n_carry} const={p.n_const}]"
            else:
                head = f"{op}[{p if op == 'part' else literal(p)}]" if p is not None else op
            lines.append(f"{indent}v{i} = {head} " + " ".join(show(a) for a in args))
            if op == "scan":  # the body: inputs step, carry, row, constants
                lines.append(p.body.__str__(indent + "    ").replace("{ lambda", indent + "  { lambda", 1))
        for kind, ins, outs, _ in self.custom:
            lines.append(f"{indent}custom_{kind} (" + ", ".join("_" if o is None else show(o) for o in outs)
                         + ") of (" + ", ".join(show(i) for i in ins) + ")")
        lines.append(f"{indent}in (" + ", ".join(show(o) for o in self.outputs) + ") }")
        return "\n".join(lines)

    __repr__ = __str__


def _verify_region(nodes, i):
    op, args, param = nodes[i]
    if not isinstance(args, tuple) or not all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a < i
                                              for a in args):
        raise ValueError(f"node {i} ({op}) must refer to earlier nodes")
    if op == "part":
        if len(args) != 1 or nodes[args[0]][0] != "scan" or type(param) is not int or \
                not 0 <= param < nodes[args[0]][2].n_out:
            raise ValueError(f"node {i} (part) must pick an output of a scan node by its position")
        return
    if not isinstance(param, Region) or not all(type(n) is int and n >= 0 for n in
                                                (param.length, param.n_carry, param.n_const)):
        raise ValueError(f"node {i} (scan) must hold a Region")
    body = param.body
    if not isinstance(body, Graph) or param.n_x < 0 or param.n_y < 0:
        raise ValueError(f"the body of scan node {i} must be a graph of at least {1 + param.n_carry + param.n_const} "
                         f"inputs and {param.n_carry} outputs")
    if len(args) != param.n_args:
        raise ValueError(f"scan node {i} needs {param.n_args} args, has {len(args)}")
    body.verify()


def _builtin(op):
    """Whether the node kind ``op`` is an input, a constant or one of the package's own ops."""
    spec = TABLE.get(op)
    return spec is None or spec.builtin


def evaluate(graph, args):
    """Run ``graph`` on ``args``: floats give floats, tracers record (replay), Values build a Value graph.

    >>> b = Builder(); x = b.input(); g = b.graph([b.add("exp", (x,))])
    >>> evaluate(g, [0.0])
    [1.0]
    """
    env = evaluate_nodes(graph, args)
    replay_custom(graph, env)
    return [env[o] for o in graph.outputs]


def replay_custom(graph, env):
    """Replayed into a trace (``env``: the value of each node), the custom rule regions go along."""
    for region in graph.custom:
        box = innermost([env[o] for o in region[2] if o is not None])
        if hasattr(box, "_tg_custom"):
            box._tg_custom(region, env)


def evaluate_nodes(graph, args):
    """Like ``evaluate``, but return the value of every node.

    A boxed type with ``_tg_evaluate_nodes(graph, args)`` may run the whole graph at once
    (tracers do: one replay in their builder); it returns None where it cannot.
    """
    box = innermost(args)
    env = box._tg_evaluate_nodes(graph, args) if hasattr(box, "_tg_evaluate_nodes") else None
    if env is not None:
        return env
    env = []
    for op, ins, param in graph.nodes:
        if op == "input":
            env.append(args[param])
        elif op == "const":
            env.append(param)
        elif op == "scan":
            env.append(apply_region(param, [env[a] for a in ins]))
        elif op == "part":
            env.append(env[ins[0]][param])
        else:
            env.append(bind(TABLE[op], *[env[a] for a in ins], param=param))
    return env


def _is_zero(v, sign):
    """Whether ``v`` is the zero of that sign (+1.0 or -1.0); None is not."""
    return v == 0.0 and math.copysign(1.0, v) == sign


_REWRITTEN = ("neg", "powc")  # ops that _simplify may rewrite without a constant argument


class Builder:
    """Builds a graph node by node: hash-conses (CSE), folds constants and IEEE-exact identities."""

    def __init__(self):
        self.nodes = []
        self._index = {}   # a node's key -> its index: (op, args, param key), or a constant's bits
        self._consts = {}  # index of a const node -> its value
        self.inputs = []
        self.custom = []

    def input(self):
        index = len(self.nodes)
        self.nodes.append(("input", (), len(self.inputs)))
        self.inputs.append(index)
        return index

    def const(self, value):
        value = float(value)
        key = value if value and value == value else float_key(value)  # 0.0, -0.0, nan: by bits
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.nodes)
            self.nodes.append(("const", (), value))
            self._consts[index] = value
        return index

    def add(self, op, args, param=None):
        """The node for ``op(*args)`` (``args`` a tuple of node indices), reusing an equal node
        or folding where that is exact."""
        spec = TABLE[op]
        if op in _REWRITTEN or not self._consts.keys().isdisjoint(args):
            values = [self._consts.get(a) for a in args]
            if None not in values:
                return self.const(bind(spec, *values, param=param))
            folded = self._simplify(op, args, values, param)
            if folded is not None:
                return folded
        # x*y and y*x: one node (commutative ops are binary)
        key_args = (args[1], args[0]) if spec.commutative and args[1] < args[0] else args
        key = (op, key_args, None if param is None else float_key(param))
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.nodes)
            self.nodes.append((op, args, param))
        return index

    def node(self, op, args, param=None):
        """``add``, or for the region kinds (``scan``, ``part``) ``region`` and ``part``."""
        if op == "scan":
            return self.region(param, args)
        if op == "part":
            return self.part(args[0], param)
        return self.add(op, args, param)

    def region(self, region, args):
        """The scan node of ``region`` on the nodes ``args`` (one node per distinct region and args)."""
        key = ("scan", args, region)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.nodes)
            self.nodes.append(("scan", args, region))
        return index

    def part(self, index, k):
        """The node of output ``k`` of the scan node ``index``."""
        key = ("part", (index,), k)
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = len(self.nodes)
            self.nodes.append(("part", (index,), k))
        return found

    def _simplify(self, op, args, values, param):
        """IEEE-exact identities only: x*1, x/1, x-0, x+(-0), --x, x**1, x**0, where(const, a, b)."""
        if op == "mul":
            for v, other in ((values[0], args[1]), (values[1], args[0])):
                if v == 1.0:
                    return other
                if v == -1.0:
                    return self.add("neg", (other,))
        if op == "div" and values[1] == 1.0:
            return args[0]
        if (op == "sub" and _is_zero(values[1], 1.0)) or (op == "add" and _is_zero(values[1], -1.0)):
            return args[0]
        if op == "add" and _is_zero(values[0], -1.0):
            return args[1]
        if op == "neg" and self.nodes[args[0]][0] == "neg":
            return self.nodes[args[0]][1][0]
        if op == "powc" and param == 1.0:
            return args[0]
        if op == "powc" and param == 0.0:
            return self.const(1.0)
        if op == "where" and values[0] is not None:
            return args[1] if values[0] else args[2]
        return None

    def distinct(self, x):
        """A new node with the value of ``x`` (a node index or a float) that no other node is
        ever merged with: the output of a custom rule region, whose rule applies to it alone.

        It copies the node of ``x``; an input or a constant gets ``x + -0.0`` (exactly x).
        """
        index = self.const(x) if type(x) is float else x
        node = self.nodes[index]
        if node[0] in ("input", "const"):
            node = ("add", (index, self.const(-0.0)), None)
        self.nodes.append(node)
        return len(self.nodes) - 1

    def replay(self, graph, args):
        """``evaluate_nodes`` in this builder: ``args`` and the result hold node indices, or
        floats for values known now (as with tracers, a float becomes a node where it is used).
        The outputs of custom rule regions stay nodes of their own (``distinct``).
        """
        env = []
        region_outs = {o for region in graph.custom for o in region[2]}
        for i, (op, ins, param) in enumerate(graph.nodes):
            if op == "input":
                env.append(args[param])
            elif op == "const":
                env.append(param)
            elif op == "part":
                r = env[ins[0]]
                env.append(r[param] if type(r) is list else self.part(r, param))
            elif op == "scan":
                xs = [env[a] for a in ins]
                if int not in map(type, xs):
                    env.append(param.run(xs))
                else:
                    env.append(self.region(param, tuple([x if type(x) is int else self.const(x) for x in xs])))
            else:
                xs = [env[a] for a in ins]
                if float not in map(type, xs):
                    env.append(self.add(op, tuple(xs), param))
                elif int in map(type, xs):
                    nodes = tuple([x if type(x) is int else self.const(x) for x in xs])
                    env.append(self.add(op, nodes, param))
                else:
                    env.append(bind(TABLE[op], *xs, param=param))
            if i in region_outs:
                env[i] = self.distinct(env[i])
        return env

    def graph(self, outputs, names=()):
        """Freeze into a ``Graph`` keeping the inputs and what the outputs need (dead code removed).

        A custom rule region stays if one of its outputs is live, and keeps its inputs live.
        """
        nodes = self.nodes
        live = bytearray(len(nodes))
        for i in self.inputs:
            live[i] = 1
        stack = list(outputs)
        kept = []
        while stack:
            while stack:
                i = stack.pop()
                if not live[i]:
                    live[i] = 1
                    stack.extend(nodes[i][1])
            for region in self.custom:
                if region not in kept and any(live[o] for o in region[2] if o is not None):
                    kept.append(region)
                    stack.extend(region[1])
        if live.count(0) == 0:  # nothing dead: the numbering stays
            return Graph(tuple(nodes), tuple(self.inputs), tuple(outputs), tuple(names),
                         tuple(region for region in self.custom if region in kept))
        renumber, kept_nodes = [None] * len(nodes), []
        for i, node in enumerate(nodes):
            if live[i]:
                renumber[i] = len(kept_nodes)
                kept_nodes.append((node[0], tuple([renumber[a] for a in node[1]]), node[2]))
        custom = tuple((kind, tuple(renumber[i] for i in ins),
                        tuple(None if o is None else renumber[o] for o in outs), rule)
                       for kind, ins, outs, rule in self.custom if (kind, ins, outs, rule) in kept)
        return Graph(tuple(kept_nodes), tuple([renumber[i] for i in self.inputs]),
                     tuple([renumber[o] for o in outputs]), tuple(names), custom)
