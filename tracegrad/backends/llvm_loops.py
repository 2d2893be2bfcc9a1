"""Whole loops as LLVM IR around lane kernels: a training run and a row map over arrays.

The per-sample graph becomes a ``<W x double>`` kernel (lane j = sample j, ``W`` from
the host CPU), kept a separate function. A gradient is mostly a product of two
per-sample values (a cotangent times an activation), so the kernel stores those few
values (about 70 for the moons MLP's 337 gradients), not the products, for up to
``GROUPS`` groups of ``W`` samples; then loops with the accumulators in registers sum
the products over those groups (``_sums``). This keeps the kernel's registers for its
own values and the accumulators out of memory: memory traffic, not arithmetic, was the
limit. Parameters are read (broadcast) at each use in the kernel rather than kept and
spilled (``_reload``). The driver function written here loops over epochs, minibatches
and chunks of groups, sums each parameter's lanes with a shuffle tree, ``W`` parameters
at a time, and runs the optimizer's update graph inline. One ctypes call runs a whole
``fit``; no Python runs between steps.

>>> import tracegrad as tg
>>> text = fit_source(tg.trace(lambda p, x, t: [(p * x - t) ** 2, 0.0, 2 * (p * x - t) * x], 1.0, 1.0, 1.0),
...                   tg.trace(lambda p, g, lr, t: [p - lr * g], 0.0, 0.0, 0.0, 0.0), n_params=1, width=4)
>>> "define void @fit(" in text and "call void @sample(" in text
True
"""
import contextlib
import ctypes
import re
import threading

import numpy as np

from ..ops import TABLE
from ..transforms.lower import lower
from . import llvm
from .host import host

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_loaded = {}                   # what a module was built from -> (engine, entry point), oldest first
_lock = threading.Lock()
GROUPS = 16                # sample groups whose factors are kept before summing their products


class _Emitter:
    """Lines of one LLVM function, with counted loops that track the current block."""

    def __init__(self):
        self.lines, self.block = [], "entry"

    def __call__(self, *lines):
        self.lines.extend("  " + line for line in lines)

    def label(self, name):
        self.lines.append(f"{name}:")
        self.block = name

    @contextlib.contextmanager
    def loop(self, name, stop, step=1, start="0"):
        """``for %name in range(start, stop, step)``: the body is what the ``with`` block emits."""
        before = self.block
        self(f"br label %{name}.cond")
        self.label(f"{name}.cond")
        phi = len(self.lines)
        self.lines.append(None)
        self(f"%{name}.done = icmp sge i64 %{name}, {stop}",
             f"br i1 %{name}.done, label %{name}.exit, label %{name}.body")
        self.label(f"{name}.body")
        yield f"%{name}"
        self(f"%{name}.next = add i64 %{name}, {step}", f"br label %{name}.cond")
        self.lines[phi] = f"  %{name} = phi i64 [ {start}, %{before} ], [ %{name}.next, %{self.block} ]"
        self.label(f"{name}.exit")


def _vector_helpers(e, width):
    """``slot(buffer, index)``, ``splat(name, scalar)`` and friends over ``<width x double>``."""
    vt = f"<{width} x double>"

    def slot(name, buffer, index):
        e(f"%{name} = getelementptr {vt}, ptr {buffer}, i64 {index}")
        return f"%{name}"

    def splat(name, scalar):
        e(f"%{name}.i = insertelement {vt} poison, double {scalar}, i64 0",
          f"%{name} = shufflevector {vt} %{name}.i, {vt} poison, <{width} x i32> zeroinitializer")
        return f"%{name}"

    def reduce(name, vector):
        e(f"%{name} = call double @llvm.vector.reduce.fadd.v{width}f64(double -0.0, {vt} {vector})")
        return f"%{name}"
    return vt, slot, splat, reduce


def factors(graph):
    """How each output is summed over samples: ``(a, b)`` for ``a * b``, ``(o, None)`` for ``o``.

    A gradient is mostly a product of two per-sample values (a cotangent and an
    activation) that several outputs share; the kernel stores those values, not the
    products, and ``fit_source`` sums the products over a chunk of groups with the
    accumulators in registers. ``a`` is the factor more outputs share.
    """
    pairs = []
    for o in graph.outputs:
        op, args, _ = graph.nodes[o]
        if op == "mul" and all(graph.nodes[x][0] != "const" for x in args):
            pairs.append(tuple(args))
        else:
            pairs.append((o, None))
    counts = {}
    for pair in pairs:
        for x in pair:
            counts[x] = counts.get(x, 0) + 1
    return [(a, b) if b is None or counts[a] >= counts[b] else (b, a) for a, b in pairs]


def sample_kernel(graph, n_params, width, stored):
    """``void @sample(ptr %p, ptr %x, ptr %out)``: one group of samples' factors.

    ``%p`` holds the ``n_params`` parameters as plain doubles (broadcast to every lane),
    ``%x`` one ``<width x double>`` per remaining graph input (lane j = sample j); the
    values of the nodes ``stored`` go to ``%out`` in that order.
    """
    t = llvm._types(width)["t"]

    def load(i):
        index = graph.nodes[i][2]
        if index >= n_params:
            return [f"%x{i} = getelementptr {t}, ptr %x, i64 {index - n_params}", f"%v{i} = load {t}, ptr %x{i}"]
        return [f"%x{i} = getelementptr double, ptr %p, i64 {index}"]  # read at each use: see _reload

    body, names = llvm.kernel_body(graph, width, load)
    defined = {line.split(" = ", 1)[0]: n for n, line in enumerate(body) if " = " in line}
    after, tail = {}, []  # each value is stored right where it is defined: it need not stay in a register
    for k, o in enumerate(stored):
        value = names.get(o) or llvm._operand(graph, o, width, load, names, tail)
        lines = [f"%a{k} = getelementptr {t}, ptr %out, i64 {k}",
                 f"store {t} {value}, ptr %a{k}"]
        after.setdefault(defined.get(value), []).extend(lines)
    tail += after.pop(None, [])
    body = [x for n, line in enumerate(body) for x in [line, *after.get(n, ())]] + tail
    return "\n".join(["define internal void @sample(ptr noalias %p, ptr noalias %x, ptr noalias %out) #1 {",
                      *["  " + line for line in _reload(body, width)], "  ret void", "}"])


_VALUE = re.compile(r"%v(\d+)\b")


def _reload(body, width):
    """Each use of a parameter (pointer ``%x{i}`` with no ``%v{i}``) gets its own load and broadcast.

    A broadcast parameter held from the forward to the backward pass would be spilled
    to the stack as a whole vector and read back; a broadcast from the parameter array
    costs one load instead, and leaves the registers to values that must be kept.
    """
    params = {m.group(1) for line in body if (m := re.match(r"%x(\d+) = getelementptr double, ptr %p,", line))}
    lines, count = [], 0

    def fresh(m):
        nonlocal count
        if m.group(1) not in params:
            return m.group(0)
        count += 1
        r = f"%r{count}"
        if width == 1:
            lines.append(f"{r} = load double, ptr %x{m.group(1)}")
        else:
            t = f"<{width} x double>"
            lines.extend([f"{r}.s = load double, ptr %x{m.group(1)}",
                          f"{r}.i = insertelement {t} poison, double {r}.s, i64 0",
                          f"{r} = shufflevector {t} {r}.i, {t} poison, <{width} x i32> zeroinitializer"])
        return r
    for line in body:
        lhs, eq, rhs = line.rpartition(" = ") if " = " in line else ("", "", line)
        lines.append(lhs + eq + _VALUE.sub(fresh, rhs))
    return lines


def _lane_sums(e, vectors, width):
    """A vector whose lane j is the sum of the lanes of ``vectors[j]``: a tree of shuffles and adds.

    Each round pairs the vectors; a vector holding ``blocks`` partial sums of ``size``
    lanes each gives the first halves of its blocks to one shuffle and the second halves
    to the other, and their sum holds twice the blocks at half the size, in order.
    """
    t, names, blocks = f"<{width} x double>", list(vectors), 1
    while len(names) > 1:
        size = width // blocks
        halves = [[i for k in range(blocks) for i in range(k * size + h * size // 2, k * size + (h + 1) * size // 2)]
                  for h in (0, 1)]
        masks = ["<" + ", ".join(f"i32 {i}" for i in half + [width + i for i in half]) + ">" for half in halves]
        paired = []
        for x, y in zip(names[::2], names[1::2]):
            r = f"%ls{len(e.lines)}"
            e(f"{r}.lo = shufflevector {t} {x}, {t} {y}, <{width} x i32> {masks[0]}",
              f"{r}.hi = shufflevector {t} {x}, {t} {y}, <{width} x i32> {masks[1]}", f"{r} = fadd {t} {r}.lo, {r}.hi")
            paired.append(r)
        names, blocks = paired, blocks * 2
    return names[0]


def _update(e, graph, inputs, outputs, width):
    """The optimizer's update graph inline: its inputs are the vectors named ``inputs``,
    its outputs are stored at the pointers ``outputs``. Returns the lines."""
    t, vt = llvm._types(width)["t"], f"<{width} x double>"

    def load(i):  # a <1 x double> is a double to the update's code
        return [f"%v{i} = bitcast {vt} {inputs[graph.nodes[i][2]]} to {t}"]
    body, names = llvm.kernel_body(graph, width, load)
    for k, o in enumerate(graph.outputs):
        body.append(f"store {t} {names.get(o) or llvm._operand(graph, o, width, load, names, body)}, ptr {outputs[k]}, "
                    "align 8")
    e(*body)
    return body


def _sums(e, pairs, slot_of, count, first, vt, width=8):
    """Add ``sum over groups g < count of a[g] * b[g]`` (or ``a[g]``) to ``%acc[k]`` for each output k.

    Where ``first`` (an ``i1``) is set, ``%acc[k]`` is taken as zero instead.

    ``%buf`` holds ``len(slot_of)`` vectors per group. Outputs that share ``a`` form
    chunks of ``width``; two chunks with the same ``b`` factors are summed in one loop
    over the groups, accumulators in registers (the order of the additions is the
    order of the groups, as one sample at a time).
    """
    order = sorted(range(len(pairs)), key=lambda k: (pairs[k][1] is None, slot_of[pairs[k][0]], k))
    chunks, current = [], []
    for k in order:
        if current and (len(current) == width or (pairs[current[0]][1] is None) != (pairs[k][1] is None)
                        or (pairs[k][1] is not None and pairs[current[0]][0] != pairs[k][0])):
            chunks.append(current)
            current = []
        current.append(k)
    chunks.append(current)
    shared = {}  # two chunks with the same second factors make one loop: their loads are shared
    for chunk in chunks:
        shared.setdefault(pairs[chunk[0]][1] is not None and tuple(pairs[k][1] for k in chunk), []).append(chunk)
    chunks = [sum(same[i:i + 2], []) for same in shared.values() for i in range(0, len(same), 2)]
    stride = len(slot_of)
    for c, chunk in enumerate(chunks):
        before = e.block
        for k in chunk:  # the batch's first chunk starts from zero
            e(f"%s{c}.{k}.p = getelementptr {vt}, ptr %acc, i64 {k}", f"%s{c}.{k}.l = load {vt}, ptr %s{c}.{k}.p",
              f"%s{c}.{k}.0 = select i1 {first}, {vt} zeroinitializer, {vt} %s{c}.{k}.l")
        e(f"br label %s{c}")
        e.label(f"s{c}")
        e(f"%s{c}.g = phi i64 [ 0, %{before} ], [ %s{c}.gn, %s{c} ]")
        for k in chunk:
            e(f"%s{c}.{k} = phi {vt} [ %s{c}.{k}.0, %{before} ], [ %s{c}.{k}.n, %s{c} ]")
        e(f"%s{c}.row = mul i64 %s{c}.g, {stride}")
        loaded = {}

        def value(node):
            if node not in loaded:
                name = f"%s{c}.f{len(loaded)}"
                e(f"{name}.i = add i64 %s{c}.row, {slot_of[node]}",
                  f"{name}.p = getelementptr {vt}, ptr %buf, i64 {name}.i",
                  f"{name} = load {vt}, ptr {name}.p")
                loaded[node] = name
            return loaded[node]
        for k in chunk:
            a, b = pairs[k]
            term = value(a)
            if b is not None:
                e(f"%s{c}.{k}.m = fmul {vt} {term}, {value(b)}")
                term = f"%s{c}.{k}.m"
            e(f"%s{c}.{k}.n = fadd {vt} %s{c}.{k}, {term}")
        e(f"%s{c}.gn = add i64 %s{c}.g, 1", f"%s{c}.more = icmp slt i64 %s{c}.gn, {count}",
          f"br i1 %s{c}.more, label %s{c}, label %s{c}.done")
        e.label(f"s{c}.done")
        for k in chunk:
            e(f"store {vt} %s{c}.{k}.n, ptr %s{c}.{k}.p")


def fit_source(sample, update, n_params, width=None):
    """The LLVM module text of a training run (see ``FitLoop``) for these two graphs.

    ``sample``: inputs parameters, features, targets; outputs loss, correct flag, one
    gradient per parameter. ``update``: inputs parameter, gradient, state..., lr, step;
    outputs parameter, state....
    """
    width = llvm.lanes() if width is None else width
    P, C = n_params, len(sample.inputs) - n_params
    S = len(update.inputs) - 4
    NO = len(sample.outputs)
    if NO != 2 + P or len(update.outputs) != 1 + S:
        raise ValueError("fit_source: the sample graph must output loss, flag and one gradient per parameter")
    padded = -(-P // width) * width
    lowered = lower(sample)
    pairs = factors(lowered)
    stored = list(dict.fromkeys(x for pair in pairs for x in pair if x is not None))
    slot_of = {node: j for j, node in enumerate(stored)}
    span = GROUPS * width  # samples whose factors are stored before they are summed
    kernels = [sample_kernel(lowered, P, width, stored)]
    update = lower(update)
    e = _Emitter()
    vt, slot, splat, reduce = _vector_helpers(e, width)
    e(f"%kin = alloca [{C} x {vt}]", f"%acc = alloca [{2 + padded} x {vt}]",
      f"%buf = alloca [{GROUPS * len(stored)} x {vt}]",
      f"%sq = alloca {vt}", "%k = alloca i64", "store i64 0, ptr %k")
    with e.loop("z", 2 + padded, 1, 2 + P) as i:  # the padding parameters get a zero gradient
        e(f"store {vt} zeroinitializer, ptr {slot('z.q', '%acc', i)}")
    lane_ids = "<" + ", ".join(f"i64 {j}" for j in range(width)) + ">"
    with e.loop("ep", "%epochs") as ep:
        e(f"%ep.off = mul i64 {ep}, %ostride", f"%ep.h = mul i64 {ep}, 3",
          "%ord = getelementptr i64, ptr %order, i64 %ep.off", "%h = getelementptr double, ptr %hist, i64 %ep.h",
          "%h1 = getelementptr double, ptr %h, i64 1", "%h2 = getelementptr double, ptr %h, i64 2",
          "store double 0.0, ptr %h", "store double 0.0, ptr %h1", "store double 0.0, ptr %h2")
        e(f"store {vt} zeroinitializer, ptr %sq")
        with e.loop("pp", padded, width) as i:  # sum of squared parameters at the epoch's start (the L2 term)
            e(f"%pp.p = getelementptr double, ptr %params, i64 {i}", f"%pp.x = load {vt}, ptr %pp.p, align 8",
              f"%pp.xx = fmul {vt} %pp.x, %pp.x", f"%pp.s = load {vt}, ptr %sq",
              f"%pp.t = fadd {vt} %pp.s, %pp.xx", f"store {vt} %pp.t, ptr %sq")
        e(f"%sq.v = load {vt}, ptr %sq")
        e(f"store double {reduce('sq.r', '%sq.v')}, ptr %h2")
        with e.loop("b", "%n", "%batch") as start:
            e(f"%b.rest = sub i64 %n, {start}", "%b.short = icmp slt i64 %b.rest, %batch",
              "%m = select i1 %b.short, i64 %b.rest, i64 %batch", "%mlast = sub i64 %m, 1",
              "%mf = sitofp i64 %m to double")
            with e.loop("ch", "%m", span) as h:
                e(f"%ch.rest = sub i64 %m, {h}", f"%ch.short = icmp slt i64 %ch.rest, {span}",
                  f"%ch.n = select i1 %ch.short, i64 %ch.rest, i64 {span}", f"%ch.stop = add i64 {h}, %ch.n",
                  f"%ch.w = add i64 %ch.n, {width - 1}", f"%ch.groups = udiv i64 %ch.w, {width}")
                with e.loop("grp", "%ch.stop", width, h) as g:
                    for j in range(width):  # sample index per lane; lanes past the end repeat the last sample
                        e(f"%ix{j} = add i64 {g}, {j}", f"%in{j} = icmp slt i64 %ix{j}, %m",
                          f"%cl{j} = select i1 %in{j}, i64 %ix{j}, i64 %mlast", f"%pos{j} = add i64 {start}, %cl{j}",
                          f"%op{j} = getelementptr i64, ptr %ord, i64 %pos{j}", f"%idx{j} = load i64, ptr %op{j}")
                    for c in range(C):
                        previous = "poison"
                        for j in range(width):
                            e(f"%a{c}.{j} = add i64 %idx{j}, %coff{c}", f"%d{c}.{j}.p = getelementptr double, ptr %data, i64 %a{c}.{j}",
                              f"%d{c}.{j} = load double, ptr %d{c}.{j}.p",
                              f"%col{c}.{j} = insertelement {vt} {previous}, double %d{c}.{j}, i64 {j}")
                            previous = f"%col{c}.{j}"
                        e(f"store {vt} {previous}, ptr {slot(f'col{c}.q', '%kin', c)}")
                    e(f"%out.g = sub i64 {g}, {h}", f"%out.i = udiv i64 %out.g, {width}",
                      f"%out.j = mul i64 %out.i, {len(stored)}", f"%out = getelementptr {vt}, ptr %buf, i64 %out.j",
                      "call void @sample(ptr %params, ptr %kin, ptr %out)")
                if width > 1:  # a partial last group: its lanes past the batch's end hold zeros
                    e(f"%pz.rem = urem i64 %ch.n, {width}", "%pz.need = icmp ne i64 %pz.rem, 0",
                      "br i1 %pz.need, label %pz, label %pz.done")
                    e.label("pz")
                    e(f"%pz.m = insertelement <{width} x i64> poison, i64 %pz.rem, i64 0",
                      f"%pz.ms = shufflevector <{width} x i64> %pz.m, <{width} x i64> poison, <{width} x i32> zeroinitializer",
                      f"%mask = icmp slt <{width} x i64> {lane_ids}, %pz.ms",
                      "%pz.g = sub i64 %ch.groups, 1", f"%pz.row = mul i64 %pz.g, {len(stored)}")
                    for f in range(len(stored)):
                        e(f"%pz{f}.i = add i64 %pz.row, {f}", f"%pz{f}.p = getelementptr {vt}, ptr %buf, i64 %pz{f}.i",
                          f"%pz{f}.x = load {vt}, ptr %pz{f}.p",
                          f"%pz{f}.y = select <{width} x i1> %mask, {vt} %pz{f}.x, {vt} zeroinitializer",
                          f"store {vt} %pz{f}.y, ptr %pz{f}.p")
                    e("br label %pz.done")
                    e.label("pz.done")
                e(f"%ch.first = icmp eq i64 {h}, 0")
                _sums(e, pairs, slot_of, "%ch.groups", "%ch.first", vt)
            for k, target in ((0, "%h"), (1, "%h1")):  # loss and correct sums of the epoch
                e(f"%t{k}.v = load {vt}, ptr {slot(f't{k}.p', '%acc', k)}")
                e(f"%t{k}.o = load double, ptr {target}", f"%t{k}.n = fadd double %t{k}.o, {reduce(f't{k}.r', f'%t{k}.v')}",
                  f"store double %t{k}.n, ptr {target}")
            splat("mv", "%mf")
            e("%kk = load i64, ptr %k", "%lr.p = getelementptr double, ptr %lr, i64 %kk",
              "%lr.x = load double, ptr %lr.p", "%t.i = add i64 %kk, %step0", "%t.j = add i64 %t.i, 1",
              "%t.x = sitofp i64 %t.j to double")
            splat("lr.v", "%lr.x")
            splat("t.v", "%t.x")
            with e.loop("u", padded, width) as q:  # the mean gradient of W parameters, then their update
                e(f"%u.k = add i64 {q}, 2")
                for j in range(width):
                    e(f"%u.a{j} = add i64 %u.k, {j}")
                    e(f"%u.s{j} = load {vt}, ptr {slot(f'u.p{j}', '%acc', f'%u.a{j}')}")
                e(f"%u.g = fdiv {vt} {_lane_sums(e, [f'%u.s{j}' for j in range(width)], width)}, %mv")
                pointers = [("%params", 0)] + [("%state", s * padded) for s in range(S)]
                for a, (base, offset) in enumerate(pointers):
                    e(f"%u{a}.o = add i64 {q}, {offset}", f"%u{a}.p = getelementptr double, ptr {base}, i64 %u{a}.o",
                      f"%u{a}.x = load {vt}, ptr %u{a}.p, align 8")
                inline = _update(e, update, ["%u0.x", "%u.g", *[f"%u{a + 1}.x" for a in range(S)], "%lr.v", "%t.v"],
                        [f"%u{a}.p" for a in range(S + 1)], width)
            e("%kn = add i64 %kk, 1", "store i64 %kn, ptr %k")
    e("ret void")
    body = [f"  %coff{c} = mul i64 %n, {c}" for c in range(C)] + e.lines  # column offsets in %data
    text = "\n\n".join(kernels)
    calls = "\n".join([text, *inline])  # what calls libm
    return "\n".join([
        f"; Generated by tracegrad: a training run over {P} parameters in {width} lanes; do not edit.",
        text, "",
        "define void @fit(ptr noalias %params, ptr noalias %state, ptr noalias %data, ptr noalias %order, "
        "i64 %ostride, i64 %n, i64 %batch, i64 %epochs, ptr noalias %lr, i64 %step0, ptr noalias %hist) #0 {",
        "entry:", *body, "}", "",
        *llvm.declarations(calls),
        f"declare double @llvm.vector.reduce.fadd.v{width}f64(double, <{width} x double>)",
        "attributes #0 = { nounwind }", "attributes #1 = { nounwind noinline }", ""])


class FitLoop:
    """A compiled training run of ``fit_source``, called once per fit (or per epoch).

    ``loop(params, state, data, order, ostride, batch, epochs, lr, step0, hist)``:
    ``params`` (``padded`` floats) and ``state`` (``(S, padded)``) are updated in
    place; ``data`` is ``(columns, n)``, features then targets; epoch ``e`` visits the
    samples ``order[e * ostride:][:n]`` (int64) in minibatches of ``batch``; ``lr``
    holds one learning rate per step; step numbers start at ``step0 + 1``; ``hist``
    (``(epochs, 3)``) receives each epoch's loss sum, correct count and sum of squared
    parameters at its start.
    """

    def __init__(self, sample, update, n_params, width=None, level=2):
        self.width = llvm.lanes() if width is None else width
        self.padded = -(-n_params // self.width) * self.width
        self.source = fit_source(sample, update, n_params, self.width)
        key = ("fit", self.source, level, host())
        with _lock:
            if key not in _loaded:  # a new Trainer of the same model and data shape reuses the code
                engine = llvm.load(llvm.cached_object(self.source, level, passes=True))
                _loaded[key] = engine, ctypes.CFUNCTYPE(None, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _PTR,
                                                        _I64, _PTR)(engine.get_function_address("fit"))
                while len(_loaded) > 32:
                    _loaded.pop(next(iter(_loaded)))
            self._engine, self._fn = _loaded[key]

    def __call__(self, params, state, data, order, ostride, batch, epochs, lr, step0, hist):
        n = data.shape[1]
        for a in (params, state, data, lr, hist):
            if a.dtype != np.float64 or not a.flags.c_contiguous:
                raise TypeError("FitLoop needs C-contiguous float64 arrays")
        steps = epochs * -(-n // batch)
        if (order.dtype != np.int64 or order.size < (epochs - 1) * ostride + n or hist.size < 3 * epochs
                or lr.size < steps or batch < 1):
            raise ValueError("FitLoop: order, lr or hist too short for the epochs asked")
        if params.shape != (self.padded,) or state.shape[-1:] != (self.padded,):
            raise ValueError(f"FitLoop: params and state rows must have {self.padded} entries")
        self._fn(params.ctypes.data, state.ctypes.data, data.ctypes.data, order.ctypes.data, ostride, n,
                 batch, epochs, lr.ctypes.data, step0, hist.ctypes.data)


def map_source(graph, kinds, width):
    """``void @map(ptr %ins, ptr %istr, ptr %outs, i64 %start, i64 %stop)``: rows in groups of ``width``.

    Input j is read at ``ins[j][r * istr[j]]``: ``kinds[j]`` is ``1`` (contiguous: one
    vector load), ``0`` (broadcast: a splat) or ``None`` (any stride: lane by lane).
    Output j is written contiguously at ``outs[j][r]``. ``stop - start`` must be a
    multiple of ``width``.
    """
    e = _Emitter()
    vt, slot, splat, _ = _vector_helpers(e, width)
    n_in, n_out = len(graph.inputs), len(graph.outputs)
    e(f"%kin = alloca [{max(n_in, 1)} x {vt}]", f"%kout = alloca [{max(n_out, 1)} x {vt}]")
    for j in range(n_in):
        e(f"%ip{j} = getelementptr ptr, ptr %ins, i64 {j}", f"%in{j} = load ptr, ptr %ip{j}",
          f"%sp{j} = getelementptr i64, ptr %istr, i64 {j}", f"%st{j} = load i64, ptr %sp{j}")
    for m in range(n_out):
        e(f"%op{m} = getelementptr ptr, ptr %outs, i64 {m}", f"%out{m} = load ptr, ptr %op{m}")
    with e.loop("r", "%stop", width, "%start") as r:
        for j, kind in enumerate(kinds):
            if kind == 1:
                e(f"%x{j}.p = getelementptr double, ptr %in{j}, i64 {r}", f"%x{j} = load {vt}, ptr %x{j}.p, align 8")
            elif kind == 0:
                e(f"%x{j}.s = load double, ptr %in{j}")
                splat(f"x{j}", f"%x{j}.s")
            else:
                previous = "poison"
                for lane in range(width):
                    e(f"%x{j}.r{lane} = add i64 {r}, {lane}", f"%x{j}.o{lane} = mul i64 %x{j}.r{lane}, %st{j}",
                      f"%x{j}.p{lane} = getelementptr double, ptr %in{j}, i64 %x{j}.o{lane}",
                      f"%x{j}.s{lane} = load double, ptr %x{j}.p{lane}",
                      f"%x{j}.v{lane} = insertelement {vt} {previous}, double %x{j}.s{lane}, i64 {lane}")
                    previous = f"%x{j}.v{lane}"
                e(f"%x{j} = bitcast {vt} {previous} to {vt}")
            e(f"store {vt} %x{j}, ptr {slot(f'x{j}.q', '%kin', j)}")
        e("call void @lane(ptr %kin, ptr %kout, ptr null)")
        for m in range(n_out):
            e(f"%y{m} = load {vt}, ptr {slot(f'y{m}.q', '%kout', m)}")
            e(f"%y{m}.p = getelementptr double, ptr %out{m}, i64 {r}", f"store {vt} %y{m}, ptr %y{m}.p, align 8")
    e("ret void")
    kernel, vector_math = _vector_math(llvm.function_text(lower(graph), "lane", width, internal=True,
                                                          attrs="#1"), width)
    return "\n".join([f"; Generated by tracegrad: a row map in {width} lanes; do not edit.", kernel, "",
                      "define void @map(ptr noalias %ins, ptr noalias %istr, ptr noalias %outs, i64 %start, "
                      "i64 %stop) #0 {", "entry:", *e.lines, "}", "",
                      *[d for d in llvm.declarations(kernel) if "@_ZGV" not in d], *vector_math,
                      "attributes #0 = { nounwind }", "attributes #1 = { nounwind noinline }", ""])


def _libmvec():
    try:
        return ctypes.CDLL("libmvec.so.1")
    except OSError:
        return None


def _vector_math(text, width):
    """Calls to glibc's vectorised libm (libmvec, within 4 ulp) in place of lane-by-lane libm calls.

    The variant is the one the target may run (``host().vector_variant``): a value wider
    than it is computed a part at a time. Returns the new text and the declarations
    (and part-wise wrappers) it needs; unchanged where libmvec or a variant is missing.
    """
    lib, variant, declares = _libmvec(), host().vector_variant(width), []
    if lib is None or variant is None:
        return text, declares
    letter, doubles = variant
    for op in [op for op in TABLE.values() if op.symbol]:
        base, callee, arity = op.symbol, llvm.callee(op), op.arity
        symbol = f"_ZGV{letter}N{doubles}{'v' * arity}_{base}"
        old = f"@{callee}.v{width}f64(" if callee.startswith("llvm.") else f"@{callee}.v{width}("
        if old not in text or not hasattr(lib, symbol):
            continue
        llvm.llvm.add_symbol(symbol, ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value)
        part = f"<{doubles} x double>"
        declares.append(f"declare {part} @{symbol}({', '.join([part] * arity)})")
        if doubles == width:
            text = text.replace(old, f"@{symbol}(")
        else:
            text = text.replace(old, f"@{symbol}.x{width}(")
            declares.append(_in_parts(symbol, arity, doubles, width))
    return text, declares


def _in_parts(symbol, arity, doubles, width):
    """``<width x double> @{symbol}.x{width}(...)``: ``@symbol`` on each ``doubles``-lane part."""
    vt, part = f"<{width} x double>", f"<{doubles} x double>"
    lines = [f"define internal {vt} @{symbol}.x{width}({', '.join(f'{vt} %a{k}' for k in range(arity))}) #0 {{"]
    result = "poison"
    for p in range(width // doubles):
        mask = "<" + ", ".join(f"i32 {p * doubles + j}" for j in range(doubles)) + ">"
        for k in range(arity):
            lines.append(f"  %a{k}.{p} = shufflevector {vt} %a{k}, {vt} poison, <{doubles} x i32> {mask}")
        lines.append(f"  %r{p} = call {part} @{symbol}({', '.join(f'{part} %a{k}.{p}' for k in range(arity))})")
        for j in range(doubles):
            lines += [f"  %e{p}.{j} = extractelement {part} %r{p}, i64 {j}",
                      f"  %v{p}.{j} = insertelement {vt} {result}, double %e{p}.{j}, i64 {p * doubles + j}"]
            result = f"%v{p}.{j}"
    return "\n".join(lines + [f"  ret {vt} {result}", "}"])


class RowMap:
    """The compiled ``map_source`` for a graph: ``rows(ins, istr, outs, start, stop)`` like ``Kernel.rows``."""

    def __init__(self, graph, kinds, width=None):
        self.width = llvm.lanes() if width is None else width
        key = ("map", graph.fingerprint, tuple(kinds), self.width, host())
        with _lock:
            if key not in _loaded:
                engine = llvm.load(llvm.cached_object(map_source(graph, kinds, self.width), 2, passes=False))
                _loaded[key] = engine, ctypes.CFUNCTYPE(None, _PTR, _PTR, _PTR, _I64, _I64)(
                    engine.get_function_address("map"))
                while len(_loaded) > 32:
                    _loaded.pop(next(iter(_loaded)))
            self._engine, self._fn = _loaded[key]

    def rows(self, ins, istr, outs, ostr, start, stop):
        """Rows ``start:stop`` (a multiple of ``width`` apart); the outputs' strides ``ostr`` must be 1."""
        if (stop - start) % self.width or (ostr != 1).any():
            raise ValueError(f"RowMap runs whole groups of {self.width} rows into contiguous outputs")
        self._fn(ins.ctypes.data, istr.ctypes.data, outs.ctypes.data, start, stop)
