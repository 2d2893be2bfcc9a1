"""A small builder of LLVM IR text: typed values, fresh names, calls that declare themselves, loops.

Generated code is built instruction by instruction, never patched as text. A
``Module`` holds functions and the declarations their calls need; a ``Function``
appends instructions to its current block and returns typed ``Value``s.

>>> m = Module("an example")
>>> f = m.function("twice", "double", [("double", "x")])
>>> y = f.call("llvm.fabs.f64", "double", [f.binop("fmul", f.params[0], const(2.0))])
>>> f.ret(y)
>>> print(m.text())  # doctest: +NORMALIZE_WHITESPACE
; an example
define double @twice(double %x) nounwind {
entry:
  %t = fmul double %x, 0x4000000000000000
  %t.1 = call double @llvm.fabs.f64(double %t)
  ret double %t.1
}
<BLANKLINE>
declare double @llvm.fabs.f64(double)
<BLANKLINE>
"""
import contextlib
import struct
from typing import NamedTuple


class Value(NamedTuple):
    """An SSA value or literal (``ref``) of an LLVM type (``type``)."""
    ref: str
    type: str

    def __str__(self):
        return f"{self.type} {self.ref}"


_new_value = tuple.__new__  # Value(ref, type) without the Python-level __new__ of a NamedTuple


def vector(width, element="double"):
    """``double`` for one lane, ``<width x double>`` for more."""
    return element if width == 1 else f"<{width} x {element}>"


def literal(x):
    """A float as an exact LLVM literal (hex bit pattern): nan, inf and -0.0 included."""
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", x))[0]


def const(x, width=1):
    """The constant ``x`` as a ``double`` or ``<width x double>`` with every lane equal."""
    if width == 1:
        return Value(literal(x), "double")
    return Value("<" + ", ".join([f"double {literal(x)}"] * width) + ">", vector(width))


def integer(n, type="i64"):
    return Value(str(n), type)


def _bools(type):
    """The ``i1`` type of the same shape as ``type``."""
    return "i1" if not type.startswith("<") else type.rsplit(" x ", 1)[0] + " x i1>"


class Module:
    """Functions being built and the ``declare`` lines their calls need."""

    def __init__(self, comment):
        self.comment, self.functions, self.declared = comment, {}, {}

    def function(self, name, ret, params, internal=False, attrs="nounwind"):
        """A new function ``define ret @name(params)``; ``params`` are ``(type, name)`` pairs."""
        fn = Function(self, name, ret, params, internal, attrs)
        self.functions[name] = fn
        return fn

    def declare(self, name, ret, types, attrs=""):
        self.declared.setdefault(name, f"declare {ret} @{name}({', '.join(types)}) {attrs}".rstrip())

    def external(self, name):
        """The address of the data symbol ``name`` defined outside the module."""
        self.declared.setdefault(name, f"@{name} = external global i8")
        return Value(f"@{name}", "ptr")

    def text(self):
        bodies = [fn.text() for fn in self.functions.values()]
        undefined = [line for name, line in self.declared.items() if name not in self.functions]
        return "\n".join([f"; {self.comment}", "\n\n".join(bodies), "", *undefined, ""])


class Function:
    """One function: ``self.params`` are its arguments; instruction methods return ``Value``s."""

    def __init__(self, module, name, ret, params, internal, attrs):
        self.module, self.name, self.ret_type = module, name, ret
        self.params = [Value(f"%{n}", t) for t, n in params]
        self.header = (f"define {'internal ' if internal else ''}{ret} @{name}("
                       + ", ".join(f"{t} noalias %{n}" if t == "ptr" else f"{t} %{n}" for t, n in params)
                       + f") {attrs} {{")
        self.lines, self.block = ["entry:"], "%entry"
        self._used = dict.fromkeys(["entry", *(n for _, n in params)], 0)  # name -> last suffix tried

    def fresh(self, hint="t"):
        """A name not used yet in this function: ``%hint``, else ``%hint.1``, ``%hint.2`` ..."""
        used = self._used
        if hint not in used:
            used[hint] = 0
            return "%" + hint
        n = used[hint]
        while True:
            n += 1
            name = f"{hint}.{n}"
            if name not in used:
                used[hint], used[name] = n, 0
                return "%" + name

    def emit(self, text, type=None, name=None):
        """Append an instruction; with a result ``type``, name it and return its ``Value``."""
        if type is None:
            self.lines.append("  " + text)
            return None
        if name is not None and name not in self._used:  # the common case, without a call of fresh
            self._used[name] = 0
            ref = "%" + name
        else:
            ref = self.fresh(name or "t")
        self.lines.append(f"  {ref} = {text}")
        return _new_value(Value, (ref, type))

    # ---------------------------------------------------------------- instructions
    def binop(self, op, a, b, name=None):
        return self.emit(f"{op} {a.type} {a.ref}, {b.ref}", a.type, name)

    def fneg(self, a, name=None):
        return self.emit(f"fneg {a}", a.type, name)

    def fcmp(self, predicate, a, b, name=None):
        return self.emit(f"fcmp {predicate} {a.type} {a.ref}, {b.ref}", _bools(a.type), name)

    def icmp(self, predicate, a, b, name=None):
        return self.emit(f"icmp {predicate} {a.type} {a.ref}, {b.ref}", _bools(a.type), name)

    def select(self, cond, a, b, name=None):
        return self.emit(f"select {cond}, {a}, {b}", a.type, name)

    def cast(self, op, a, type, name=None):
        return self.emit(f"{op} {a} to {type}", type, name)

    def call(self, callee, ret, args, name=None, declare=True):
        """``call ret @callee(args)``; the callee is declared in the module unless it is defined there."""
        if declare:
            self.module.declare(callee, ret, [a.type for a in args])
        text = f"call {ret} @{callee}({', '.join(map(str, args))})"
        return self.emit(text) if ret == "void" else self.emit(text, ret, name)

    def alloca(self, type, name=None, align=None):
        """Stack space for a ``type``, at a multiple of ``align`` bytes if given."""
        return self.emit(f"alloca {type}" + (f", align {align}" if align else ""), "ptr", name)

    def gep(self, type, base, index, name=None):
        """The address of element ``index`` (an ``i64`` Value or int) of ``type`` after ``base``."""
        if isinstance(index, int):
            if index == 0:
                return base
            index = integer(index)
        return self.emit(f"getelementptr {type}, ptr {base.ref}, {index.type} {index.ref}", "ptr", name)

    def load(self, type, pointer, name=None, align=None):
        return self.emit(f"load {type}, ptr {pointer.ref}" + (f", align {align}" if align else ""), type, name)

    def store(self, value, pointer, align=None):
        self.emit(f"store {value.type} {value.ref}, ptr {pointer.ref}" + (f", align {align}" if align else ""))

    def load_acquire(self, type, pointer, name=None):
        """An atomic load that sees everything stored before the ``store_release`` it reads from."""
        return self.emit(f"load atomic {type}, ptr {pointer.ref} acquire, align 8", type, name)

    def store_release(self, value, pointer):
        """An atomic store: what was stored before it is seen by a ``load_acquire`` that reads it."""
        self.emit(f"store atomic {value.type} {value.ref}, ptr {pointer.ref} release, align 8")

    def logical_not(self, flag, name=None):
        """The ``i1`` that is true where ``flag`` is false."""
        return self.binop("xor", flag, Value("true", "i1"), name)

    def claim(self, pointer, expected, new, name=None):
        """Atomically replace the ``i64`` at ``pointer`` by ``new`` if it holds ``expected``: an ``i1``,
        true for the one thread whose exchange succeeded."""
        pair = self.emit(f"cmpxchg ptr {pointer.ref}, i64 {expected.ref}, i64 {new.ref} acq_rel acquire",
                         "{ i64, i1 }", name)
        return self.emit(f"extractvalue {pair}, 1", "i1")

    def wait(self, pointer, value, equal=True, spins=4096, relax=None, give_way=None, limit=None):
        """Spin until the ``i64`` at ``pointer`` (read with acquire) equals ``value`` (or, if not
        ``equal``, differs from it): ``spins`` rounds calling ``relax`` (a pause hint; None: none),
        then each round calling ``give_way`` (a ``i32 ()`` function such as ``sched_yield``).
        With a ``limit``, give up after that many rounds in all. Returns an ``i1``: whether the
        value came (always true without a limit)."""
        head, check, pause, busy, done = (self.fresh(n) for n in ("wait", "wait.check", "wait.pause", "wait.busy",
                                                                 "wait.done"))
        counter, following, came = self.fresh("wait.n"), self.fresh("wait.next"), self.fresh("wait.came")
        yielding = self.fresh("wait.yield") if limit is not None else busy
        before = self.block
        self.branch(head)
        self.label(head)
        self.lines.append(f"  {counter} = phi i64 [ 0, {before} ], [ {following}, {pause} ], [ {following}, {yielding} ]")
        ready = self.icmp("eq" if equal else "ne", self.load_acquire("i64", pointer), value)
        self.branch(done, ready, check)
        self.label(check)
        self.lines.append(f"  {following} = add i64 {counter}, 1")
        self.branch(pause, self.icmp("slt", Value(counter, "i64"), integer(spins)), busy)
        self.label(pause)
        if relax is not None:
            self.call(relax, "void", [])
        self.branch(head)
        self.label(busy)
        if limit is not None:
            self.branch(yielding, self.icmp("slt", Value(counter, "i64"), integer(limit)), done)
            self.label(yielding)
        if give_way is not None:
            self.call(give_way, "i32", [])
        self.branch(head)
        self.label(done)
        gave_up = f", [ false, {busy} ]" if limit is not None else ""
        self.lines.append(f"  {came} = phi i1 [ true, {head} ]{gave_up}")
        return Value(came, "i1")

    def extract(self, vec, lane, name=None):
        return self.emit(f"extractelement {vec}, i64 {lane}", vec.type.rsplit(" x ", 1)[1][:-1], name)

    def insert(self, vec, scalar, lane, name=None):
        return self.emit(f"insertelement {vec}, {scalar}, i64 {lane}", vec.type, name)

    def shuffle(self, a, b, mask, name=None):
        """Lanes ``mask`` of ``a`` followed by ``b``."""
        lanes = "<" + ", ".join(f"i32 {m}" for m in mask) + ">"
        return self.emit(f"shufflevector {a}, {b.type} {b.ref}, <{len(mask)} x i32> {lanes}",
                         vector(len(mask), a.type.rsplit(" x ", 1)[1][:-1]), name)

    def splat(self, scalar, width, name=None):
        """A vector of ``width`` copies of ``scalar``."""
        one = self.insert(Value("poison", vector(width, scalar.type)), scalar, 0)
        return self.shuffle(one, Value("poison", one.type), [0] * width, name)

    def ret(self, value=None):
        self.emit(f"ret {value}" if value is not None else "ret void")

    # ---------------------------------------------------------------- control flow
    def label(self, name):
        self.lines.append(f"{name[1:]}:")
        self.block = name

    def branch(self, target, cond=None, otherwise=None):
        self.emit(f"br label {target}" if cond is None else f"br {cond}, label {target}, label {otherwise}")

    @contextlib.contextmanager
    def loop(self, stop, start=0, step=1, name="i", carry=None):
        """``for i in range(start, stop, step)`` (``i64``): the body is what the ``with`` block emits.

        Yields the index; with ``carry`` (a list of initial values), yields ``(index,
        values)``: the body sets ``values[:]`` to what the next iteration starts from,
        and after the loop ``values`` holds what it ended with.
        """
        head = self.fresh(name)
        body, done = self.fresh(f"{head[1:]}.body"), self.fresh(f"{head[1:]}.exit")
        before, initial, start, stop = self.block, list(carry or ()), _i64(start), _i64(stop)
        guarded = not (start.ref.isdigit() and stop.ref.isdigit() and int(start.ref) < int(stop.ref))
        if not guarded:
            self.branch(body)  # runs at least once: no test before the first round
        else:
            self.branch(body, self.icmp("slt", start, stop), done)
        self.label(body)
        phis = len(self.lines)
        index = Value(head, "i64")
        values = [Value(self.fresh(f"{head[1:]}.c"), v.type) for v in initial]
        self.lines.extend([None] * (1 + len(values)))  # the phis, once the block that loops back is known
        state = list(values)
        yield index if carry is None else (index, state)
        step_value = self.binop("add", index, _i64(step))
        latch = self.block
        self.branch(body, self.icmp("slt", step_value, stop), done)  # the test at the bottom: one block a round
        for k, (phi, first, again) in enumerate([(index, start, step_value)] + list(zip(values, initial, state))):
            self.lines[phis + k] = f"  {phi.ref} = phi {phi.type} [ {first.ref}, {before} ], [ {again.ref}, {latch} ]"
        self.label(done)
        if carry is not None and guarded:  # what the loop ended with, or the initial values if it never ran
            state[:] = [self.emit(f"phi {v.type} [ {v0.ref}, {before} ], [ {v.ref}, {latch} ]", v.type,
                                  f"{head[1:]}.out") for v0, v in zip(initial, state)]

    @contextlib.contextmanager
    def when(self, cond):
        """``if cond:`` the ``with`` block."""
        then, done = self.fresh("then"), self.fresh("endif")
        self.branch(then, cond, done)
        self.label(then)
        yield
        self.branch(done)
        self.label(done)

    def text(self):
        return "\n".join([self.header, *self.lines, "}"])


def _i64(x):
    return x if isinstance(x, Value) else integer(x)
