"""Generic compiled loops around lane kernels: map a kernel over rows (``RowMap``), and map
over each minibatch, sum, then update (``BatchLoop``, what the Trainer's ``fit`` runs).

The per-sample graph becomes a ``<W x double>`` kernel (lane j = sample j, ``W`` from
the target CPU), kept a separate function. A gradient is mostly a product of two
per-sample values (a cotangent times an activation), so the kernel stores those few
values (about 70 for the moons MLP's 337 gradients), not the products, for up to
``GROUPS`` groups of ``W`` samples; then loops with the accumulators in registers sum
the products over those groups (``_sums``). This keeps the kernel's registers for its
own values and the accumulators out of memory: memory traffic, not arithmetic, was the
limit. Parameters are read (broadcast) at each use in the kernel rather than kept and
spilled. The driver function loops over epochs, minibatches and chunks of groups, sums
each parameter's lanes with a shuffle tree, ``W`` parameters at a time, and runs the
update graph inline. One call runs many epochs; no Python runs between steps.

A batch of ``SPLIT`` samples or more is summed in two halves (``@part`` each, reduced to
doubles), added in a fixed order. With a second core free, enough work in the call and
calls measured faster so, the process's helper thread (``fit_team``, running this
loop's ``@helper``) takes the second half when it claims it first; the calling thread
takes it otherwise, so the results never depend on the threads or their timing.

>>> import tracegrad as tg
>>> text = batch_loop_source(tg.trace(lambda p, x, t: [(p * x - t) ** 2, 2 * (p * x - t) * x], 1.0, 1.0, 1.0),
...                          tg.trace(lambda p, g, lr, t, m: [p - lr * g / m], 0.0, 0.0, 0.0, 0.0, 0.0),
...                          n_params=1, width=4)
>>> "define void @fit(" in text and "call void @sample(" in text
True
"""
import ctypes
import functools
import hashlib
import time

import numpy as np

from ..transforms.lower import lower
from . import cached, elf, llvm
from .fit_team import (CLAIM, DATA, DONE, HELD, HI, LEFT, LO, N, OUT, PARAMS, PATIENT, POSTED, SECOND, STATE,
                       VISIT, WAITING, Pace, cores)
from .host import host
from .llvm_emit import Nodes
from .llvm_ir import Module, Value, const, integer, vector

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
GROUPS = 16                # sample groups whose factors are kept before summing their products


def _entry(text, name, level, passes, argtypes, scheduler=True):
    """The engine holding the compiled module ``text`` and its function ``name``, from the one
    cache of compiled code (a new Trainer of the same model and data shape reuses it).
    ``scheduler``: see ``llvm.object_code``."""
    def build():
        engine = llvm.load(llvm.cached_object(text, level, passes=passes, scheduler=scheduler))
        return engine, ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return cached((digest, "llvm", (name, level, passes, host(), scheduler)), build)


def _splat(fn, scalar, width):
    return scalar if width == 1 else fn.splat(scalar, width)


def _reduce(fn, value, width):
    """The sum of the lanes of ``value``, in lane order."""
    if width == 1:
        return value
    return fn.call(f"llvm.vector.reduce.fadd.v{width}f64", "double", [const(-0.0), value])


def factors(graph):
    """How each output is summed over samples: ``(a, b)`` for ``a * b``, ``(o, None)`` for ``o``.

    A gradient is mostly a product of two per-sample values (a cotangent and an
    activation) that several outputs share; the kernel stores those values, not the
    products, and ``batch_loop_source`` sums the products over a chunk of groups with the
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


def sample_kernel(module, graph, n_params, width, stored, splats=False):
    """Define ``void @sample(ptr %p, ptr %x, ptr %out)``: one group of samples' factors.

    ``%p`` holds the ``n_params`` parameters as plain doubles, ``%x`` one
    ``<width x double>`` per remaining graph input (lane j = sample j); the values of
    the nodes ``stored`` go to ``%out`` in that order, each right where it is computed,
    so it need not stay in a register. A parameter is loaded and broadcast at each use:
    one held from the forward to the backward pass would be spilled to the stack as a
    whole vector and read back. With ``splats``, ``%p`` holds each parameter already
    broadcast (one ``<width x double>`` each), loaded at each use.
    """
    t = vector(width)
    fn = module.function("sample", "void", [("ptr", "p"), ("ptr", "x"), ("ptr", "out")], internal=True,
                         attrs="nounwind noinline")
    params, data, out = fn.params

    def parameter(i):
        if splats:  # ``%p`` holds each parameter already broadcast: a vector load, folded into its use
            return fn.load(t, fn.gep(t, params, graph.nodes[i][2]))
        return _splat(fn, fn.load("double", fn.gep("double", params, graph.nodes[i][2])), width)
    slots = {}
    for k, node in enumerate(stored):
        slots.setdefault(node, []).append(k)

    def store(i, value):
        for k in slots.pop(i, ()):
            fn.store(value, fn.gep(t, out, k))
    nodes = Nodes(fn, graph, width, parameter, keep_loads=False)
    for i in graph.inputs:
        if graph.nodes[i][2] >= n_params:
            nodes.env[i] = fn.load(t, fn.gep(t, data, graph.nodes[i][2] - n_params), name=f"v{i}")
            store(i, nodes.env[i])
    nodes.emit(defined=store)
    for i in list(slots):  # factors that are parameters or constants
        store(i, nodes[i])
    fn.ret()


def _lane_sums(fn, vectors, width):
    """A vector whose lane j is the sum of the lanes of ``vectors[j]``: a tree of shuffles and adds.

    Each round pairs the vectors; a vector holding ``blocks`` partial sums of ``size``
    lanes each gives the first halves of its blocks to one shuffle and the second halves
    to the other, and their sum holds twice the blocks at half the size, in order.
    """
    blocks = 1
    while len(vectors) > 1:
        size = width // blocks
        halves = [[i for k in range(blocks) for i in range(k * size + h * size // 2, k * size + (h + 1) * size // 2)]
                  for h in (0, 1)]
        masks = [half + [width + i for i in half] for half in halves]
        vectors = [fn.binop("fadd", fn.shuffle(x, y, masks[0]), fn.shuffle(x, y, masks[1]))
                   for x, y in zip(vectors[::2], vectors[1::2])]
        blocks *= 2
    return vectors[0]


def _sums(fn, pairs, slot_of, count, first, acc, buf, width):
    """Add ``sum over groups g < count of a[g] * b[g]`` (or ``a[g]``) to ``acc[k]`` for each output k.

    Where ``first`` (an ``i1``) is set, ``acc[k]`` is taken as zero instead.

    ``buf`` holds ``len(slot_of)`` vectors per group. Outputs that share ``a`` form
    chunks of ``width``; two chunks with the same ``b`` factors are summed in one loop
    over the groups, accumulators in registers (the order of the additions is the
    order of the groups, as one sample at a time).
    """
    t = vector(width)
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
    zero = const(0.0, width)
    for chunk in chunks:
        pointers = [fn.gep(t, acc, k) for k in chunk]
        start = [fn.select(first, zero, fn.load(t, p)) for p in pointers]  # the batch's first chunk starts from zero
        with fn.loop(count, name="s", carry=start) as (g, sums):
            row = fn.binop("mul", g, integer(len(slot_of)))
            loaded = {}

            def value(node):
                if node not in loaded:
                    loaded[node] = fn.load(t, fn.gep(t, buf, fn.binop("add", row, integer(slot_of[node]))))
                return loaded[node]
            new = []
            for k, total in zip(chunk, sums):
                a, b = pairs[k]
                term = value(a) if b is None else fn.binop("fmul", value(a), value(b))
                new.append(fn.binop("fadd", total, term))
            sums[:] = new
        for p, total in zip(pointers, sums):
            fn.store(total, p)


def _part(module, pairs, slot_of, stored, C, width):
    """Define ``void @part(params, data, visit, n, lo, hi, acc, buf, kin)``: the sums over the
    samples ``visit[lo:hi]`` of each output (``acc[k]``, starting from zero), in chunks of
    ``GROUPS`` groups of ``width`` samples whose factors are kept in ``buf``; ``kin`` holds
    a group's inputs. ``data`` is ``(columns, n)``."""
    t, span, zero = vector(width), GROUPS * width, const(0.0, width)
    fn = module.function("part", "void", [("ptr", "params"), ("ptr", "data"), ("ptr", "visit"), ("i64", "n"),
                                          ("i64", "lo"), ("i64", "hi"), ("ptr", "acc"), ("ptr", "buf"),
                                          ("ptr", "kin")], internal=True)
    params, data, visit, n, lo, hi, acc, buf, kin = fn.params
    columns = [fn.binop("mul", n, integer(c)) for c in range(C)]  # column offsets in data
    with fn.loop(hi, start=lo, step=span, name="ch") as h0:
        left = fn.binop("sub", hi, h0)
        count = fn.select(fn.icmp("slt", left, integer(span)), left, integer(span))
        groups = fn.binop("udiv", fn.binop("add", count, integer(width - 1)), integer(width))
        with fn.loop(fn.binop("add", h0, count), start=h0, step=width, name="grp") as g:
            rows = lane_samples(fn, visit, g, hi, width)
            for c in range(C):
                fn.store(lane_column(fn, data, rows, columns[c], width), fn.gep(t, kin, c))
            offset = fn.binop("mul", fn.binop("udiv", fn.binop("sub", g, h0), integer(width)), integer(len(stored)))
            fn.call("sample", "void", [params, kin, fn.gep(t, buf, offset)], declare=False)
        if width > 1:  # a partial last group: its lanes past the end hold zeros
            partial = fn.binop("urem", count, integer(width))
            with fn.when(fn.icmp("ne", partial, integer(0))):
                lane_ids = Value("<" + ", ".join(f"i64 {j}" for j in range(width)) + ">", vector(width, "i64"))
                mask = fn.icmp("slt", lane_ids, fn.splat(partial, width))
                row = fn.binop("mul", fn.binop("sub", groups, integer(1)), integer(len(stored)))
                for f in range(len(stored)):
                    p = fn.gep(t, buf, fn.binop("add", row, integer(f)))
                    fn.store(fn.select(mask, fn.load(t, p), zero), p)
        _sums(fn, pairs, slot_of, groups, fn.icmp("eq", h0, lo), acc, buf, width)
    fn.ret()


SPLIT = 64  # measured: below this the two threads' exchanges cost what the second core gains
THREAD_WORK = 2_000  # samples a call must visit to use the helper thread (waking it costs ~0.02 ms)
LINGER = 20_000  # rounds of waiting (~9 ms measured) after which an idle helper leaves, when no fit holds it
_GIVE_WAY = "sched_yield"


def _broadcast(fn, params, splats, padded, width):
    """Store each of the ``padded`` parameters in every lane of ``splats`` (one vector each)."""
    with fn.loop(padded, name="sp") as q:
        fn.store(fn.splat(fn.load("double", fn.gep("double", params, q)), width), fn.gep(vector(width), splats, q))


def _half(module, R, padded, width):
    """Define ``void @half(params, data, visit, n, lo, hi, out, acc, buf, kin)``: the sums of a
    batch's second half (``@part`` into the vectors ``acc``), each reduced to a double in
    ``out``, as ``fit`` reduces the first half's: the ``R`` results lane after lane, the
    parameters with ``_lane_sums``, ``width`` at a time. What crosses to the other core is
    then ``R + padded`` doubles, not vectors (cache lines cost more than the reduction)."""
    t = vector(width)
    fn = module.function("half", "void", [("ptr", "params"), ("ptr", "data"), ("ptr", "visit"), ("i64", "n"),
                                          ("i64", "lo"), ("i64", "hi"), ("ptr", "out"), ("ptr", "acc"),
                                          ("ptr", "buf"), ("ptr", "kin")], internal=True)
    params, data, visit, n, lo, hi, out, acc, buf, kin = fn.params
    fn.call("part", "void", [params, data, visit, n, lo, hi, acc, buf, kin], declare=False)
    for k in range(R):
        fn.store(_reduce(fn, fn.load(t, fn.gep(t, acc, k)), width), fn.gep("double", out, k))
    with fn.loop(padded, step=width, name="red") as q:
        first = fn.binop("add", q, integer(R))
        fn.store(_param_sums(fn, acc, first, width), fn.gep("double", out, first), align=8)
    fn.ret()


def _helper(module, R, P, padded, n_stored, C, width, splatted):
    """Define ``void @helper(ptr team)``, the second thread of this loop's fits: it waits for a
    fit to post a batch's second half (a number above the last one seen in ``team[0]``),
    claims it (``team[CLAIM]`` from the number before to this one; the fit, done with its own
    half, claims it too, and whoever is first sums it), sums it with ``@half`` into the posted
    ``out``, then answers with the number in ``team[DONE]``. It reads the posted arrays only
    between a post and its answer (the parameters broadcast into its own ``splats`` where the
    kernel takes them so), and waits for the next post across fits, so that back-to-back
    fits find it awake; it leaves (``team[STATE]``) after ``LINGER`` rounds with no post
    while no fit holds it, or at a negative post. Its buffers are on its own stack."""
    t = vector(width)
    fn = module.function("helper", "void", [("ptr", "team")])
    team, = fn.params
    kin, buf = fn.alloca(f"[{max(C, 1)} x {t}]", "kin"), fn.alloca(f"[{GROUPS * n_stored} x {t}]", "buf")
    acc = fn.alloca(f"[{R + padded} x {t}]", "acc")
    splats = fn.alloca(f"[{padded} x {t}]", "splats") if splatted else None
    _zero_padding(fn, acc, R + P, R + padded, width)
    seen = fn.alloca("i64", "seen")
    fn.store(integer(0), seen)
    state = fn.gep("i64", team, STATE)
    serve, idle, got, work, leave, gone = (fn.fresh(k) for k in ("serve", "idle", "got", "work", "leave", "gone"))
    fn.branch(serve, fn.claim(state, integer(0), integer(WAITING)), gone)
    fn.label(serve)
    came = _wait(fn, team, fn.load("i64", seen), equal=False, limit=LINGER)
    fn.branch(got, came, idle)
    fn.label(idle)  # no post for a while: leave, unless a fit holds the helper
    fn.branch(gone, fn.claim(state, integer(WAITING), integer(LEFT)), serve)
    fn.label(got)
    posted = fn.load_acquire("i64", team)
    fn.branch(leave, fn.icmp("slt", posted, integer(0)), work)
    fn.label(work)
    fn.store(posted, seen)
    run = fn.fresh("run")
    fn.branch(run, fn.claim(fn.gep("i64", team, CLAIM), fn.binop("sub", posted, integer(1)), posted), serve)
    fn.label(run)
    visit, out, params, data = (fn.cast("inttoptr", fn.load("i64", fn.gep("i64", team, k)), "ptr")
                                for k in (VISIT, OUT, PARAMS, DATA))
    lo, hi, n = (fn.load("i64", fn.gep("i64", team, k)) for k in (LO, HI, N))
    if splatted:
        _broadcast(fn, params, splats, padded, width)
    fn.call("half", "void", [splats if splatted else params, data, visit, n, lo, hi, out, acc, buf, kin],
            declare=False)
    fn.store_release(posted, fn.gep("i64", team, DONE))
    fn.branch(serve)
    fn.label(leave)
    fn.store_release(integer(LEFT), state)
    fn.branch(gone)
    fn.label(gone)
    fn.ret()


def _wait(fn, pointer, value, equal=True, limit=None):
    """``fn.wait`` as the two threads of a fit wait: with the host's pause hint (x86) while
    spinning, then giving the core away (``sched_yield``)."""
    relax = "llvm.x86.sse2.pause" if "sse2" in host().flags else None
    return fn.wait(pointer, value, equal=equal, relax=relax, give_way=_give_way(), limit=limit)


def _param_sums(fn, acc, first, width):
    """The vector of the lane sums of the ``width`` vectors ``acc[first:first + width]``."""
    t = vector(width)
    return _lane_sums(fn, [fn.load(t, fn.gep(t, acc, fn.binop("add", first, integer(j)))) for j in range(width)],
                      width)


def _zero_padding(fn, acc, first, end, width):
    """Zero the vectors ``acc[first:end]``: the sums of the padding parameters, which the kernel
    never adds to."""
    for i in range(first, end):
        fn.store(const(0.0, width), fn.gep(vector(width), acc, i))


def lane_samples(fn, visit, first, end, width):
    """The sample numbers ``visit[first + j]`` of lanes ``j < width`` (i64 Values); lanes at or
    past ``end`` repeat the sample ``visit[end - 1]``."""
    last, rows = fn.binop("sub", end, integer(1)), []
    for j in range(width):
        ix = fn.binop("add", first, integer(j))
        rows.append(fn.load("i64", fn.gep("i64", visit, fn.select(fn.icmp("slt", ix, end), ix, last))))
    return rows


def lane_column(fn, data, rows, offset, width):
    """The vector of ``data[row + offset]`` for the ``rows`` of ``lane_samples``: a data column's
    values of those samples, one per lane."""
    x = Value("poison", vector(width))
    for j, row in enumerate(rows):
        element = fn.load("double", fn.gep("double", data, fn.binop("add", row, offset)))
        x = element if width == 1 else fn.insert(x, element, j)
    return x


FIT_PARAMS = [("ptr", "params"), ("ptr", "state"), ("ptr", "data"), ("ptr", "order"), ("i64", "ostride"),
              ("i64", "n"), ("i64", "batch"), ("i64", "epochs"), ("ptr", "lr"), ("i64", "step0"), ("ptr", "hist")]


def training_run(fn, update, watch, R, padded, width, batch_sums):
    """The driver of a training run in ``fn`` (whose first parameters are ``FIT_PARAMS``): epochs
    of minibatches, the samples of epoch ``e`` taken from ``order[e * ostride:]``.

    At an epoch's start its row of ``hist`` is zeroed and the ``watch`` graph's sums over the
    parameters stored; for each batch, ``batch_sums(start, m, visit)`` (its first sample, its
    size, the epoch's order) emits the sums over its samples and returns ``(results,
    total)``: the ``R`` per-sample results' sums (doubles, added here into the epoch's row)
    and ``total(q)``, the vector of the sums of parameters ``q ...`` for
    ``update_parameters``. The step number counts the batches across calls from ``step0``.
    The caller ends ``fn``.
    """
    params, state, _, order, ostride, n, batch, epochs, lr, step0, hist = fn.params[:len(FIT_PARAMS)]
    W = 0 if watch is None else len(watch.outputs)
    step = fn.alloca("i64", "k")
    fn.store(integer(0), step)
    with fn.loop(epochs, name="ep") as ep:
        visit = fn.gep("i64", order, fn.binop("mul", ep, ostride), name="ord")
        row = fn.gep("double", hist, fn.binop("mul", ep, integer(R + W)))
        h = [fn.gep("double", row, j) for j in range(R + W)]
        for pointer in h[:R]:
            fn.store(const(0.0), pointer)
        if watch is not None:
            watch_sums(fn, watch, params, padded, width, h[R:])
        with fn.loop(n, step=batch, name="b") as start:
            rest = fn.binop("sub", n, start)
            m = fn.select(fn.icmp("slt", rest, batch), rest, batch, name="m")
            results, total = batch_sums(start, m, visit)
            for pointer, value in zip(h[:R], results):  # the epoch's sums of the per-sample results
                fn.store(fn.binop("fadd", fn.load("double", pointer), value), pointer)
            k = fn.load("i64", step)
            t_step = fn.cast("sitofp", fn.binop("add", fn.binop("add", k, step0), integer(1)), "double")
            update_parameters(fn, update, params, state, padded, width, total,
                              fn.load("double", fn.gep("double", lr, k)), t_step, fn.cast("sitofp", m, "double"))
            fn.store(fn.binop("add", k, integer(1)), step)


def update_parameters(fn, update, params, state, padded, width, total, rate, step, count):
    """The update stage after a batch: for ``width`` parameters at a time, run the optimizer's
    ``update`` graph on the parameters, ``total(q)`` (the vector of their batch sums, from
    parameter ``q`` on) and their state, and store the results back.

    ``rate``, ``step`` and ``count`` (scalar doubles) are the same for every parameter: the
    nodes that depend on them alone (Adam's bias corrections, ``lr / count``) are computed
    once, before the loop, in scalars.
    """
    graph, t = lower(update), vector(width)
    n_in, S = len(graph.inputs), len(graph.inputs) - 5
    uniform = {i: k >= n_in - 3 for k, i in enumerate(graph.inputs)}
    for i, (op, args, _) in enumerate(graph.nodes):
        if op != "input":
            uniform[i] = all(uniform.get(a, True) for a in args)  # constants are uniform
    scalars = [rate, step, count]
    once = Nodes(fn, graph, 1, lambda i: scalars[graph.nodes[i][2] - (n_in - 3)])
    once.emit([i for i, (op, _, _) in enumerate(graph.nodes) if op != "input" and uniform[i]])
    with fn.loop(padded, step=width, name="u") as q:
        pointers = [fn.gep("double", params, q)] + [
            fn.gep("double", state, fn.binop("add", q, integer(s * padded))) for s in range(S)]
        values = [fn.load(t, p, align=8) for p in pointers]
        inputs = [values[0], total(q), *values[1:]]
        nodes = Nodes(fn, graph, width, lambda i: (inputs[graph.nodes[i][2]] if not uniform[i]
                                                   else _splat(fn, once[i], width)))
        nodes.env.update({i: _splat(fn, once[i], width) for i in once.env if graph.nodes[i][0] != "const"})
        nodes.emit([i for i, (op, _, _) in enumerate(graph.nodes) if op != "input" and not uniform[i]])
        for k, o in enumerate(graph.outputs):
            fn.store(nodes[o], pointers[k], align=8)


def batch_loop_source(sample, update, n_params, watch=None, width=None):
    """The LLVM module text of ``BatchLoop`` for these graphs (see there)."""
    width = llvm.lanes() if width is None else width
    P, C = n_params, len(sample.inputs) - n_params
    R, S = len(sample.outputs) - P, len(update.inputs) - 5
    if R < 0 or S < 0 or len(update.outputs) != 1 + S or (watch is not None and len(watch.inputs) != 1):
        raise ValueError("batch_loop_source: the sample graph must end with one output per parameter, the update "
                         "graph take parameter, sum, state..., lr, step, count and return parameter, state..., "
                         "the watch graph take one parameter")
    padded = -(-P // width) * width
    lowered = lower(sample, regions=True)
    pairs = factors(lowered)
    stored = list(dict.fromkeys(x for pair in pairs for x in pair if x is not None))
    slot_of = {node: j for j, node in enumerate(stored)}
    t = vector(width)
    module = Module(f"Generated by tracegrad: a training run over {P} parameters in {width} lanes; do not edit.")
    # Without AVX-512's broadcast operands, a parameter broadcast at each use in the kernel is
    # an instruction of its own (611 a group of 4 samples for the moons MLP); broadcast once a
    # batch into an array, it is a vector operand that the arithmetic reads from memory.
    splatted = width > 1 and "avx512f" not in host().flags
    sample_kernel(module, lowered, P, width, stored, splats=splatted)
    _part(module, pairs, slot_of, stored, C, width)
    _half(module, R, padded, width)
    _helper(module, R, P, padded, len(stored), C, width, splatted)
    fn = module.function("fit", "void", FIT_PARAMS + [("ptr", "team")])
    params, _, data, _, _, n, *_, team = fn.params
    kin, acc = fn.alloca(f"[{max(C, 1)} x {t}]", "kin"), fn.alloca(f"[{R + padded} x {t}]", "acc")
    buf = fn.alloca(f"[{GROUPS * len(stored)} x {t}]", "buf")
    second = fn.alloca(f"[{R + padded} x {t}]", "second")  # a batch's second half, summed on this thread
    # its sums, reduced (from either thread): on cache lines of their own, as the helper writes them
    other = fn.alloca(f"[{-(-(R + padded) // 16) * 16} x double]", "other", align=128)
    splats = fn.alloca(f"[{padded} x {t}]", "splats") if splatted else params
    for vectors in (acc, second):
        _zero_padding(fn, vectors, R + P, R + padded, width)
    held = fn.alloca("i1", "held")  # whether this call holds the helper (it then stays till the end)
    fn.store(Value("false", "i1"), held)
    state = fn.gep("i64", team, STATE)
    teamed = fn.icmp("ne", team, Value("null", "ptr"))  # whether the helper may take second halves
    with fn.when(fn.binop("and", teamed, fn.icmp("ne", fn.load("i64", fn.gep("i64", team, PATIENT)), integer(0)))):
        _wait(fn, state, integer(0), equal=False)  # a patient fit: till it starts

    def batch_sums(start, m, visit):
        samples = fn.gep("i64", visit, start, name="visit")
        if splatted:  # the parameters in every lane, for this batch
            _broadcast(fn, params, splats, padded, width)
        split = fn.icmp("sge", m, integer(SPLIT))
        with fn.when(fn.icmp("slt", m, integer(SPLIT))):
            fn.call("part", "void", [splats, data, samples, n, integer(0), m, acc, buf, kin], declare=False)
        with fn.when(split):  # two halves, each summed in order and reduced, then added: on one thread or two
            groups = fn.binop("udiv", fn.binop("add", m, integer(width - 1)), integer(width))
            half = fn.binop("mul", fn.binop("udiv", fn.binop("add", groups, integer(1)), integer(2)), integer(width))
            second_half = [splats, data, samples, n, half, m, other, second, buf, kin]
            with fn.when(fn.logical_not(teamed)):
                fn.call("part", "void", [splats, data, samples, n, integer(0), half, acc, buf, kin], declare=False)
                fn.call("half", "void", second_half, declare=False)
            with fn.when(teamed):
                with fn.when(fn.logical_not(fn.load("i1", held))):  # hold the helper, once it waits
                    fn.store(fn.claim(state, integer(WAITING), integer(HELD)), held)
                posted = fn.binop("add", fn.load("i64", team), integer(1))
                for slot, value in ((VISIT, fn.cast("ptrtoint", samples, "i64")), (LO, half), (HI, m),
                                    (OUT, fn.cast("ptrtoint", other, "i64")),
                                    (PARAMS, fn.cast("ptrtoint", params, "i64")),
                                    (DATA, fn.cast("ptrtoint", data, "i64")), (N, n)):
                    fn.store(value, fn.gep("i64", team, slot))
                fn.store_release(posted, team)
                fn.call("part", "void", [splats, data, samples, n, integer(0), half, acc, buf, kin], declare=False)
                # the second half: ours if the helper has not claimed it yet (it may not be running),
                # unless the team says to leave it to a held helper (tests of the helper's path)
                patient = fn.binop("and", fn.load("i1", held),
                                   fn.icmp("ne", fn.load("i64", fn.gep("i64", team, PATIENT)), integer(0)))
                with fn.when(fn.logical_not(patient)):
                    mine = fn.claim(fn.gep("i64", team, CLAIM), fn.binop("sub", posted, integer(1)), posted)
                    with fn.when(mine):
                        fn.call("half", "void", second_half, declare=False)
                        fn.store(posted, fn.gep("i64", team, DONE))
                _wait(fn, fn.gep("i64", team, DONE), posted)

        def plus_second(first, pointer, type_):  # a split batch's sum: first half + second half
            return fn.select(split, fn.binop("fadd", first, fn.load(type_, pointer, align=8)), first)

        def total(q):
            first = fn.binop("add", q, integer(R))
            return plus_second(_param_sums(fn, acc, first, width), fn.gep("double", other, first), t)
        return [plus_second(_reduce(fn, fn.load(t, fn.gep(t, acc, k)), width), fn.gep("double", other, k), "double")
                for k in range(R)], total
    training_run(fn, update, watch, R, padded, width, batch_sums)
    with fn.when(fn.load("i1", held)):  # let the helper go: it waits a while for the next fit, then leaves
        fn.store_release(integer(WAITING), state)
    fn.ret()
    return module.text()


class BatchLoop:
    """Map a kernel over the samples of each minibatch, sum its results, update the parameters:
    epochs of it in one call of compiled code.

    ``sample`` is the per-sample graph: inputs ``n_params`` parameters, then one value
    per data column; outputs ``R`` results, then one per parameter (the parameter's
    term of the batch sum, a gradient). ``update`` runs per parameter after each batch:
    inputs parameter, its sum over the batch, state..., learning rate, step number,
    samples in the batch; outputs parameter, state.... ``watch`` (optional) is a graph
    of one parameter whose outputs are summed over the parameters at each epoch's start.

    ``loop(params, state, data, order, ostride, batch, epochs, lr, step0, hist)``:
    ``params`` (``padded`` floats) and ``state`` (``(S, padded)``) are updated in
    place; ``data`` is ``(columns, n)``; epoch ``e`` visits the samples
    ``order[e * ostride:][:n]`` (int64) in minibatches of ``batch``; ``lr`` holds one
    learning rate per step; step numbers start at ``step0 + 1``; row ``e`` of ``hist``
    (``(epochs, R + watched)``) receives the epoch's sums of the ``R`` results and the
    watch graph's sums.
    """

    def __init__(self, sample, update, n_params, watch=None, width=None, level=2, threads=None):
        self.width = llvm.lanes() if width is None else width
        self.padded = -(-n_params // self.width) * self.width
        self.columns = len(sample.outputs) - n_params + (0 if watch is None else len(watch.outputs))
        self.threads = cores() if threads is None else threads
        self._split = SPLIT  # as compiled into the source
        self._patient = False  # True: the helper sums every second half (tests)
        self._pace = Pace()
        self.source = batch_loop_source(sample, update, n_params, watch, self.width)
        self._engine, self._fn = _entry(self.source, "fit", level, passes=True, argtypes=[
            _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _PTR, _I64, _PTR, _PTR], scheduler=False)
        self._helper = ctypes.CFUNCTYPE(None, _PTR)(self._engine.get_function_address("helper"))

    def __call__(self, params, state, data, order, ostride, batch, epochs, lr, step0, hist):
        n = check_call(self, params, state, data, order, ostride, batch, epochs, lr, hist)
        # Batches of SPLIT samples or more are summed in two halves, added in a fixed order; with
        # two threads (enough work to pay for waking the helper, and calls with the helper
        # measured faster than calls without) the second half runs on it. The results are the
        # same either way.
        team, paced = None, self.threads > 1 and min(batch, n) >= self._split and epochs * n >= THREAD_WORK
        try:
            if paced and (self._patient or self._pace.helper()):
                team = SECOND.take(self)
            if team is not None:
                team[PATIENT] = self._patient
            start = time.perf_counter()
            self._fn(params.ctypes.data, state.ctypes.data, data.ctypes.data, order.ctypes.data, ostride, n,
                     batch, epochs, lr.ctypes.data, step0, hist.ctypes.data, None if team is None else team.ctypes.data)
        finally:
            if team is not None:
                SECOND.release()
        if paced:
            self._pace.record(team is not None, (time.perf_counter() - start) / (epochs * n))


@functools.lru_cache(maxsize=None)
def _give_way():
    """``sched_yield``, made resolvable in the JIT, for threads that wait long; None where the C
    library has none (the waits then only spin)."""
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(None), _GIVE_WAY), ctypes.c_void_p).value
    except (AttributeError, OSError, TypeError):
        return None
    elf.add_symbol(_GIVE_WAY, address)
    return _GIVE_WAY


def watch_sums(fn, watch, params, padded, width, pointers):
    """Store at ``pointers`` the sums over the ``padded`` parameters of the ``watch`` graph's outputs."""
    t = vector(width)
    with fn.loop(padded, step=width, name="w", carry=[const(0.0, width)] * len(watch.outputs)) as (i, totals):
        nodes = Nodes(fn, lower(watch), width, lambda _: fn.load(t, fn.gep("double", params, i), align=8))
        nodes.emit()
        totals[:] = [fn.binop("fadd", total, nodes[o]) for total, o in zip(totals, watch.outputs)]
    for total, pointer in zip(totals, pointers):
        fn.store(_reduce(fn, total, width), pointer)


def check_call(loop, params, state, data, order, ostride, batch, epochs, lr, hist):
    """The samples in ``data``, or the error a training run's arguments give (see ``BatchLoop``)."""
    n = data.shape[1]
    for a in (params, state, data, lr, hist):
        if a.dtype != np.float64 or not a.flags.c_contiguous:
            raise TypeError(f"{type(loop).__name__} needs C-contiguous float64 arrays")
    steps = epochs * -(-n // batch)
    if (order.dtype != np.int64 or order.size < (epochs - 1) * ostride + n or hist.size < loop.columns * epochs
            or lr.size < steps or batch < 1):
        raise ValueError(f"{type(loop).__name__}: order, lr or hist too short for the epochs asked")
    if params.shape != (loop.padded,) or state.shape[-1:] != (loop.padded,):
        raise ValueError(f"{type(loop).__name__}: params and state rows must have {loop.padded} entries")
    return n


def map_source(graph, kinds, width):
    """``void @map(ptr %ins, ptr %istr, ptr %outs, i64 %start, i64 %stop)``: rows in groups of ``width``.

    Input j is read at ``ins[j][r * istr[j]]``: ``kinds[j]`` is ``1`` (contiguous: one
    vector load), ``0`` (broadcast: a splat) or ``None`` (any stride: lane by lane).
    Output j is written contiguously at ``outs[j][r]``. ``stop - start`` must be a
    multiple of ``width``. The kernel calls glibc's vectorised math where the target
    may run it.
    """
    t, n_in, n_out = vector(width), len(graph.inputs), len(graph.outputs)
    module = Module(f"Generated by tracegrad: a row map in {width} lanes; do not edit.")
    llvm.kernel_function(module, lower(graph, regions=True), "lane", width, attrs="nounwind noinline", vector_math=True)
    fn = module.function("map", "void", [("ptr", "ins"), ("ptr", "istr"), ("ptr", "outs"), ("i64", "start"),
                                         ("i64", "stop")])
    ins, istr, outs, start, stop = fn.params
    kin, kout = fn.alloca(f"[{max(n_in, 1)} x {t}]", "kin"), fn.alloca(f"[{max(n_out, 1)} x {t}]", "kout")
    columns = [fn.load("ptr", fn.gep("ptr", ins, j)) for j in range(n_in)]
    strides = [fn.load("i64", fn.gep("i64", istr, j)) for j in range(n_in)]
    results = [fn.load("ptr", fn.gep("ptr", outs, m)) for m in range(n_out)]
    with fn.loop(stop, start, step=width, name="r") as r:
        for j, kind in enumerate(kinds):
            if kind == 1:
                x = fn.load(t, fn.gep("double", columns[j], r), align=8)
            elif kind == 0:
                x = _splat(fn, fn.load("double", columns[j]), width)
            else:
                x = Value("poison", t)
                for lane in range(width):
                    row = fn.binop("mul", fn.binop("add", r, integer(lane)), strides[j])
                    element = fn.load("double", fn.gep("double", columns[j], row))
                    x = element if width == 1 else fn.insert(x, element, lane)
            fn.store(x, fn.gep(t, kin, j))
        fn.call("lane", "void", [kin, kout, Value("null", "ptr")], declare=False)
        for m in range(n_out):
            fn.store(fn.load(t, fn.gep(t, kout, m)), fn.gep("double", results[m], r), align=8)
    fn.ret()
    return module.text()


class RowMap:
    """The compiled ``map_source`` for a graph: ``rows(ins, istr, outs, start, stop)`` like ``Kernel.rows``."""

    def __init__(self, graph, kinds, width=None):
        self.width = llvm.lanes() if width is None else width
        self._engine, self._fn = _entry(map_source(graph, kinds, self.width), "map", 2, passes=False,
                                        argtypes=[_PTR, _PTR, _PTR, _I64, _I64])

    def rows(self, ins, istr, outs, ostr, start, stop):
        """Rows ``start:stop`` (a multiple of ``width`` apart); the outputs' strides ``ostr`` must be 1."""
        if (stop - start) % self.width or (ostr != 1).any():
            raise ValueError(f"RowMap runs whole groups of {self.width} rows into contiguous outputs")
        self._fn(ins.ctypes.data, istr.ctypes.data, outs.ctypes.data, start, stop)
