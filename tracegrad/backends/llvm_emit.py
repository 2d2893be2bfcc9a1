"""The node loop every LLVM kernel shares: each node's instruction, from its op's row.

An op's row says how compiled code computes it (``infix``, ``prefix``, ``compare``,
``select``, a C ``symbol`` of doubles or a user's ``address``); ops with none of these
are lowered first (``transforms.lower``). C functions are declared free of side effects,
so LLVM turns the ones it knows (``fabs``, ``sqrt``, ``floor`` ...) into instructions.
In ``width`` SIMD lanes, a call becomes glibc's vectorised variant where ``vector_math``
allows it and the target may run one (``host().vector_variant``), else one call per lane.

>>> import tracegrad as tg
>>> from tracegrad.backends.llvm_ir import Module
>>> m = Module("example")
>>> f = m.function("k", "void", [("double", "x")])
>>> nodes = Nodes(f, tg.trace(lambda x: tg.sin(x) * 2.0, 0.0), load=lambda i: f.params[0])
>>> nodes.emit()
>>> print("\\n".join(f.lines[1:]))
  %v1 = call double @sin(double %x)
  %v3 = fmul double %v1, 0x4000000000000000
"""
import ctypes
import functools

from ..ops import TABLE
from . import elf
from .host import host
from .llvm_ir import Value, const, integer, literal, vector

_INFIX = {"+": "fadd", "-": "fsub", "*": "fmul", "/": "fdiv"}
_COMPARE = {"<": "olt", "<=": "ole", ">": "ogt", ">=": "oge", "==": "oeq", "!=": "une"}  # une: nan is unequal


class Nodes:
    """The values of a graph's nodes inside one function ``fn``, computed on demand.

    ``nodes[i]`` is node ``i``'s ``Value``: a constant is a literal, a node missing from
    ``env`` comes from ``load(i)`` (kept for later uses only if ``keep_loads``).
    ``emit(order)`` computes the nodes ``order`` (default: all, in node order).
    """

    def __init__(self, fn, graph, width=1, load=None, keep_loads=True, vector_math=False, arrays=None, inputs=None):
        self.fn, self.graph, self.width, self.load, self.inputs = fn, graph, width, load, inputs
        self.keep_loads, self.vector_math, self.env = keep_loads, vector_math, {}
        self.arrays = arrays  # the arrays of the loops, (graph id, node, what) -> pointer, made once

    def __getitem__(self, i):
        value = self.env.get(i)
        if value is None:
            op, args, param = self.graph.nodes[i]
            if op == "const":
                value = self.env[i] = const(param, self.width)
            elif op == "part":  # an output of a loop, read where it is used
                value = self.env[i] = self._part(args[0], param)
            else:
                value = self.load(i)
                if self.keep_loads:
                    self.env[i] = value
        return value

    def emit(self, order=None, defined=None):
        """Compute the nodes ``order``; ``defined(i, value)`` is called as each is computed."""
        nodes = self.graph.nodes
        if self.arrays is None:
            self.arrays = {}
            if order is None or any(nodes[i][0] == "scan" for i in order):  # a chunk walks only its nodes
                size = 8 * self.width * _stored(self.graph)
                if size > STACK_BYTES:
                    raise ValueError(f"the loops of this function keep {size / 2 ** 20:.1f} MiB of per-step values "
                                     f"(the carries a gradient stores, the ys), more than the "
                                     f"{STACK_BYTES // 2 ** 20} MiB llvm code keeps on the stack; use "
                                     f"backend='numba' or 'python' (heap arrays), checkpoint=True on the "
                                     f"loop (carries recomputed: memory for about twice the square root of "
                                     f"the steps), or fewer steps")
                self._allocate(self.graph)
        fn, env, vector_math = self.fn, self.env, self.vector_math
        known, value_of = env.get, self.__getitem__
        for i in range(len(nodes)) if order is None else order:
            op, args, param = nodes[i]
            if op == "input" or op == "const" or op == "part":
                continue
            if op == "scan":
                self._scan(i, args, param)
                continue
            value = env[i] = apply(fn, TABLE[op], [known(a) or value_of(a) for a in args], f"v{i}", vector_math)
            if defined is not None:
                defined(i, value)


    # ------------------------------------------------------------ loops (scan regions)

    def _allocate(self, graph):  # sizes: _stored
        """The arrays of every loop of ``graph`` and of its bodies, at the start of the function
        (before any loop: allocas in a loop would grow the stack at each round)."""
        t = vector(self.width)
        for i, (op, _, r) in enumerate(graph.nodes):
            if op == "scan":
                if r.n_y:
                    self.arrays[id(graph), i, "ys"] = self.fn.alloca(f"[{max(r.length * r.n_y, 1)} x {t}]", f"ys{i}")
                for j in range(r.n_x):
                    self.arrays[id(graph), i, j] = self.fn.alloca(f"[{max(r.length, 1)} x {t}]", f"xs{i}.{j}")
                self._allocate(r.body)

    def _scan(self, i, args, r):
        """Scan node ``i``: a loop whose body is the region's body, inline; the carry in phis, the
        rows read from an array (or straight from the array of the loop that yielded them),
        each step's ys stored into an array ``%ys{i}``. In a scalar kernel a map (no carry) whose
        body has no loop runs ``host().lanes`` rows a round in SIMD lanes, the same operations
        on each row (the same results), then the rows left over one at a time."""
        fn = self.fn
        carry, consts, _ = r.split(args)
        ys = self.arrays.get((id(self.graph), i, "ys"))
        columns = [self._column(args, r, i, j) for j in range(r.n_x)]
        state = [self[a] for a in carry]
        consts = [self[a] for a in consts]
        rows = host().lanes if self.width == 1 and not r.n_carry and "scan" not in r.body.stats() else 1
        whole = r.length - r.length % rows
        for start, stop, per in ((0, whole, rows), (whole, r.length, 1)):
            if start < stop:
                values = consts if per == 1 else [fn.splat(c, per) for c in consts]  # before the loop
                with fn.loop(stop, start, per, name=f"s{i}", carry=state) as (step, state):
                    inner = self._inner(r, step, state, values, columns, per)
                    inner.emit()
                    out = [inner[o] for o in r.body.outputs]
                    state[:] = out[:r.n_carry]
                    base = fn.binop("mul", step, integer(r.n_y)) if r.n_y else None
                    for k, y in enumerate(out[r.n_carry:]):
                        self._rows(ys, fn.binop("add", base, integer(k)), r.n_y, per, y)
        self.env[i] = (state, ys)

    def _inner(self, r, step, state, consts, columns, rows):
        fn, n_c, width = self.fn, r.n_carry, self.width * rows

        def load(k):
            position = r.body.nodes[k][2]
            if position == 0:
                s = fn.cast("sitofp", step, "double")
                s = s if width == 1 else fn.splat(s, width)
                return s if rows == 1 else fn.binop("fadd", s, _counting(rows))
            if position <= n_c:
                return state[position - 1]
            if position <= n_c + r.n_x:
                array, start, stride = columns[position - 1 - n_c]
                return self._rows(array, fn.binop("add", integer(start), fn.binop("mul", step, integer(stride))),
                                  stride, rows)
            return consts[position - 1 - n_c - r.n_x]
        return Nodes(fn, r.body, width, load, vector_math=self.vector_math and rows == 1, arrays=self.arrays)

    def _rows(self, array, index, stride, rows, value=None):
        """Load (or, given ``value``, store) ``array[index]``: one element, or for ``rows`` rows in
        lanes the ``rows`` elements ``stride`` apart from it, as one vector where they are contiguous."""
        fn, t = self.fn, vector(self.width)
        if rows == 1 or stride == 1:
            at, align = fn.gep(t, array, index), None if rows == 1 else 8
            return fn.load(vector(rows * self.width), at, align=align) if value is None else fn.store(value, at, align)
        lanes = Value("poison", vector(rows))
        for lane in range(rows):
            at = fn.gep(t, array, fn.binop("add", index, integer(lane * stride)))
            if value is None:
                lanes = fn.insert(lanes, fn.load(t, at), lane)
            else:
                fn.store(fn.extract(value, lane), at)
        return lanes

    def _column(self, args, r, i, j):
        """Row element ``j`` of every step as ``(array, start, stride)``: element of step s at
        ``array[start + s * stride]``. Where the args are the ys of one earlier loop, or inputs
        of the function (``inputs``: their array), at evenly spaced positions, that array;
        else a new array holding them."""
        fn, t = self.fn, vector(self.width)
        found = r.column(self.graph.nodes, args, j)
        if found is not None and found[0] in self.env:
            return self.env[found[0]][1], found[1], found[2]
        column = args[r.n_carry + r.n_const + j::r.n_x]
        nodes = self.graph.nodes
        if self.inputs is not None and column and all(nodes[a][0] == "input" for a in column):
            start = nodes[column[0]][2]
            stride = nodes[column[1]][2] - start if len(column) > 1 else 0
            if all(nodes[a][2] == start + s * stride for s, a in enumerate(column)):
                return self.inputs, start, stride
        array = self.arrays[id(self.graph), i, j]
        for s, a in enumerate(column):
            fn.store(self[a], fn.gep(t, array, s))
        return array, 0, 1

    def _part(self, scan, k):
        state, ys = self.env[scan]
        r = self.graph.nodes[scan][2]
        if k < r.n_carry:
            return state[k]
        t = vector(self.width)
        return self.fn.load(t, self.fn.gep(t, ys, k - r.n_carry), name=f"v{scan}.{k}")


STACK_BYTES = 4 * 2 ** 20  # a thread's stack is 8 MiB by default (main thread, pthreads): half of it


def _stored(graph):
    """How many values (doubles or vectors) the arrays of ``graph``'s loops hold (``Nodes._allocate``)."""
    return sum(max(r.length * r.n_y, 1) * bool(r.n_y) + r.n_x * max(r.length, 1) + _stored(r.body)
               for op, _, r in graph.nodes if op == "scan")


def _counting(width):
    """``<0.0, 1.0, ..., width - 1>``: the steps of the lanes of a round after its first."""
    return Value("<" + ", ".join(f"double {literal(float(lane))}" for lane in range(width)) + ">", vector(width))


def apply(fn, op, args, name, vector_math=False):
    """The instructions computing ``op`` of ``args`` in ``fn``; the result is named ``name``."""
    if op.infix:
        return fn.binop(_INFIX[op.infix], args[0], args[1], name)
    if op.prefix:
        return fn.fneg(args[0], name=name)
    width = _width(args[0].type)
    if op.compare:
        holds = fn.fcmp(_COMPARE[op.compare], *args, name=name + ".c")
        return fn.select(holds, const(1.0, width), const(0.0, width), name=name)
    if op.select:
        chosen = fn.fcmp("une", args[0], const(0.0, width), name=name + ".c")  # nan counts as true
        return fn.select(chosen, args[1], args[2], name=name)
    return fn.call(_callee(fn.module, op, width, vector_math), args[0].type, args, name=name, declare=False)


def _width(type):
    return 1 if type == "double" else int(type[1:].split(" x ", 1)[0])


def _callee(module, op, width, vector_math):
    """The function to call for a C-function op at ``width``, declared (or defined) in ``module``."""
    symbol, arity = _symbol(op), op.arity
    if width == 1:
        module.declare(symbol, "double", ["double"] * arity, _PURE)
        return symbol
    if op.symbol in _EXACT:  # an instruction on the whole vector, the C function's result in each lane
        name = f"llvm.{op.symbol}.v{width}f64"
        module.declare(name, vector(width), [vector(width)] * arity)
        return name
    variant = _vector_variant(symbol, arity, width) if vector_math and op.symbol else None
    if variant is not None:
        return variant(module)
    name = f"{symbol}.v{width}"
    if name not in module.functions:
        _in_parts(module, name, symbol, arity, 1, width)
    return name


_PURE = "memory(none) nounwind"  # errno is never read
# C functions whose LLVM intrinsic gives the same result, correctly rounded, in every lane; LLVM
# makes calls of them instructions at one lane, not across a vector of calls
_EXACT = frozenset({"sqrt", "fabs", "floor", "ceil", "trunc"})


def _symbol(op):
    """The name compiled code calls ``op``'s C function by (``tg_<ident>`` for an address: no
    user string), made resolvable in the JIT."""
    name = op.symbol or f"tg_{op.ident}"
    elf.add_symbol(name, ctypes.cast(op.cfunc, ctypes.c_void_p).value)
    return name


def register():
    """Make every C function an op's row names resolvable (before loading cached code that calls them)."""
    for op in list(TABLE.values()):
        if op.cfunc is not None:
            _symbol(op)


@functools.lru_cache(maxsize=None)
def _libmvec():
    try:
        return ctypes.CDLL("libmvec.so.1")
    except OSError:
        return None


def _vector_variant(symbol, arity, width):
    """A maker of the call of glibc's vectorised ``symbol`` (within 4 ulp) at ``width``, or None.

    The variant is one the target may run: a value wider than it is computed a part
    at a time.
    """
    lib, variant = _libmvec(), host().vector_variant(width)
    if lib is None or variant is None:
        return None
    letter, doubles = variant
    mangled = f"_ZGV{letter}N{doubles}{'v' * arity}_{symbol}"
    if not hasattr(lib, mangled):
        return None

    def make(module):
        elf.add_symbol(mangled, ctypes.cast(getattr(lib, mangled), ctypes.c_void_p).value)
        module.declare(mangled, vector(doubles), [vector(doubles)] * arity)
        if doubles == width:
            return mangled
        name = f"{mangled}.x{width}"
        if name not in module.functions:
            _in_parts(module, name, mangled, arity, doubles, width)
        return name
    return make


def _in_parts(module, name, callee, arity, doubles, width):
    """Define ``<width x double> @name(...)``: ``@callee`` on each ``doubles``-lane part, joined."""
    fn = module.function(name, vector(width), [(vector(width), f"a{k}") for k in range(arity)], internal=True)
    if doubles == 1:
        module.declare(callee, "double", ["double"] * arity, _PURE)
    result = Value("poison", vector(width))
    for p in range(width // doubles):
        lanes = range(p * doubles, (p + 1) * doubles)
        if doubles == 1:
            part = fn.call(callee, "double", [fn.extract(a, p) for a in fn.params], declare=False)
            result = fn.insert(result, part, p)
            continue
        part = fn.call(callee, vector(doubles), [fn.shuffle(a, Value("poison", a.type), list(lanes))
                                                for a in fn.params], declare=False)
        for j, lane in enumerate(lanes):
            result = fn.insert(result, fn.extract(part, j), lane)
    fn.ret(result)
