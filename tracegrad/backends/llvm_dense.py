"""The training run of a stack of dense layers as loops: its code and compile time follow the
number of layers, not their width.

A dense layer is a map over its neurons of a dot product, a fold over its inputs
(``z_j = b_j + sum_i w_ji * a_i``, then the activation). ``DenseLoop`` emits it as
those two loops, reading each neuron's row straight from the parameter array, for a
group of ``W`` samples at once (lane j = sample j, ``W`` from the target CPU); the
backward pass is the same two loops turned around (``g_i = sum_j w_ji * d_j``), and
each weight's gradient, the sum over samples of a cotangent times an input, is summed
one sample after the other, ``W`` weights of a row at a time (the inputs transposed to
one vector per sample), the accumulators in registers. The loss (any traced function
of the outputs and targets) and the activations' derivatives are graphs, emitted by
the node loop every kernel shares; the epochs, minibatches, learning rates, L2 term
and the optimizer's update are ``BatchLoop``'s. The unrolled ``BatchLoop`` compiles a
model of P parameters into code of about 3P instructions; this one into a few hundred.

>>> import tracegrad as tg
>>> from tracegrad.transforms import vjp_graph
>>> relu, linear = tg.trace(tg.relu, 0.0), tg.trace(lambda z: z, 0.0)
>>> layers = [Dense(2, 3, relu, vjp_graph(relu, [0], keep_outputs=False)),
...           Dense(3, 1, linear, vjp_graph(linear, [0], keep_outputs=False))]
>>> loss = tg.trace(lambda s, t: [(s - t) ** 2, 0.0, 2 * (s - t)], 0.0, 0.0)  # loss, flag, d loss / d s
>>> update = tg.trace(lambda p, g, lr, t, m: [p - lr * g / m], 0.0, 0.0, 0.0, 0.0, 0.0)
>>> text = dense_loop_source(layers, loss, update, width=4)
>>> text.count("define void @fit("), len(text.splitlines()) < 1000
(1, True)
"""
import ctypes
from typing import NamedTuple

import numpy as np

from ..ir import Graph
from ..transforms.lower import lower
from . import llvm
from .llvm_emit import Nodes
from .llvm_ir import Module, Value, const, integer, vector
from .llvm_loops import FIT_PARAMS, _entry, _reduce, _splat, check_call, lane_column, lane_samples, training_run

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
BUDGET = 1 << 19  # bytes of one chunk's per-group values (activations, pre-activations, cotangents)
MAX_GROUPS = 16
UNROLL = 4  # neurons (or inputs) whose folds run side by side


class Dense(NamedTuple):
    """One layer: ``nout`` neurons of ``nin`` inputs, each ``nin`` weights then a bias in the
    parameter array; ``forward`` maps a pre-activation to the output (one input, one output),
    ``backward`` maps (pre-activation, output cotangent) to the pre-activation's cotangent."""
    nin: int
    nout: int
    forward: Graph
    backward: Graph


class _Layout:
    """Where a group's values sit in the chunk buffer (in vectors, lane j = sample j): per layer
    its inputs, a ones column and zeros up to a whole number of ``W``-blocks (``act``), the
    same by sample (``by_sample``: sample s's block b at ``s * blocks + b``),
    pre-activations (``z``) and their cotangents (``d``); the model's outputs last
    (``act[L]``). ``params``: where each layer's first neuron's row starts in the parameter
    array."""

    def __init__(self, layers, width):
        self.act, self.by_sample, self.z, self.d, self.blocks, self.params = [], [], [], [], [], []
        at = row = 0
        for layer in layers:
            blocks = -(-(layer.nin + 1) // width)
            self.blocks.append(blocks)
            self.act.append(at)
            self.by_sample.append(at + blocks * width)
            self.z.append(at + 2 * blocks * width)
            self.d.append(at + 2 * blocks * width + layer.nout)
            self.params.append(row)
            at += 2 * blocks * width + 2 * layer.nout
            row += layer.nout * (layer.nin + 1)
        self.act.append(at)
        self.block = at + layers[-1].nout
        self.n_params = row
        self.padded = -(-row // width) * width
        self.groups = max(1, min(MAX_GROUPS, BUDGET // (8 * width * self.block)))


def transpose(fn, vectors, width):
    """The ``width`` x ``width`` block ``vectors`` (vector i: row i) by columns: swaps of
    off-diagonal blocks of 1, 2, 4 ... lanes."""
    rows, size = list(vectors), 1
    while size < width:
        for i in range(width):
            if not i & size:
                a, b = rows[i], rows[i + size]
                low = [lane if not lane & size else width + lane - size for lane in range(width)]
                high = [lane + size if not lane & size else width + lane for lane in range(width)]
                rows[i], rows[i + size] = fn.shuffle(a, b, low), fn.shuffle(a, b, high)
        size *= 2
    return rows


def _values(fn, graph, width, inputs):
    """The outputs of ``graph`` computed inline from the values ``inputs``."""
    graph = lower(graph)
    nodes = Nodes(fn, graph, width, lambda i: inputs[graph.nodes[i][2]])
    nodes.emit()
    return [nodes[o] for o in graph.outputs]


class _Emitter:
    """The loops of dense layers inside one function ``fn``: ``buf`` holds the groups' values
    (``_Layout``), ``params`` the parameters."""

    def __init__(self, fn, layers, at, width, buf, params):
        self.fn, self.layers, self.at, self.width, self.buf, self.params = fn, layers, at, width, buf, params
        self.t, self.zero, self.one = vector(width), const(0.0, width), const(1.0, width)

    def slot(self, base, offset, index=None):
        """The address of vector ``offset + index`` of the group whose values start at ``base``."""
        fn = self.fn
        at = fn.binop("add", base, integer(offset)) if index is None else \
            fn.binop("add", fn.binop("add", base, integer(offset)), index)
        return fn.gep(self.t, self.buf, at)

    def weight(self, k, row, i):
        """Weight ``i`` (an i64 Value; ``nin``: the bias) of neuron ``row`` of layer ``k``, in every lane."""
        fn, nin = self.fn, self.layers[k].nin
        first = fn.binop("add", integer(self.at.params[k]), fn.binop("mul", row, integer(nin + 1)))
        return _splat(fn, fn.load("double", fn.gep("double", self.params, fn.binop("add", first, i))), self.width)

    def rows_of(self, count, name, body):
        """``body(first, u)`` for the rows ``first ... first + u - 1`` of ``count``, ``UNROLL`` at a time:
        their folds are independent chains of additions, interleaved (one would wait on each add)."""
        fn = self.fn
        if count >= UNROLL:
            with fn.loop(count // UNROLL, name=name) as b:
                body(fn.binop("mul", b, integer(UNROLL)), UNROLL)
        if count % UNROLL:
            body(integer(count - count % UNROLL), count % UNROLL)

    def fold(self, count, name, carry, step):
        """What ``carry = step(i, carry)`` for ``i`` in ``range(count)`` ends with: ``UNROLL`` steps a
        round of the loop (fewer rounds to count and branch), the rest after it."""
        fn, main = self.fn, count - count % UNROLL
        if main:
            with fn.loop(main, step=UNROLL, name=name, carry=carry) as (i, values):
                for r in range(UNROLL):
                    values[:] = step(fn.binop("add", i, integer(r)) if r else i, values)
            carry = values
        for r in range(main, count):
            carry = step(integer(r), carry)
        return carry

    def forward(self, base):
        """Each layer of the group at ``base``: ``z_j = b_j + sum_i w_ji a_i`` (in this order, as
        ``Neuron``), then the activation; inputs in ``act[0]`` (and its ones column)."""
        fn, at, t, L = self.fn, self.at, self.t, len(self.layers)
        for k, layer in enumerate(self.layers):
            def neurons(first, u):
                js = [fn.binop("add", first, integer(r)) for r in range(u)]

                def step(i, z):
                    x = fn.load(t, self.slot(base, at.act[k], i))
                    return [fn.binop("fadd", zr, fn.binop("fmul", self.weight(k, j, i), x)) for zr, j in zip(z, js)]
                z = self.fold(layer.nin, f"i{k}", [self.weight(k, j, integer(layer.nin)) for j in js], step)
                for zr, j in zip(z, js):
                    fn.store(zr, self.slot(base, at.z[k], j))
                    fn.store(_values(fn, layer.forward, self.width, [zr])[0], self.slot(base, at.act[k + 1], j))
            self.rows_of(layer.nout, f"n{k}", neurons)
            if k + 1 < L:
                fn.store(self.one, self.slot(base, at.act[k + 1] + layer.nout))


def dense_loop_source(layers, loss, update, watch=None, width=None):
    """The LLVM module text of ``DenseLoop`` (see there)."""
    width = llvm.lanes() if width is None else width
    L, n_out = len(layers), layers[-1].nout
    T, R = len(loss.inputs) - n_out, len(loss.outputs) - n_out
    if T < 0 or R < 0 or any(a.nout != b.nin for a, b in zip(layers, layers[1:])):
        raise ValueError("dense_loop_source: each layer takes the outputs of the one before, the loss graph takes "
                         "the outputs then the targets and returns its results then the outputs' cotangents")
    at = _Layout(layers, width)
    t, span, nin0 = vector(width), at.groups * width, layers[0].nin
    zero, one = const(0.0, width), const(1.0, width)
    module = Module(f"Generated by tracegrad: a training run of {L} dense layers ({at.n_params} parameters) "
                    f"in {width} lanes; do not edit.")
    fn = module.function("fit", "void", FIT_PARAMS + [("ptr", "work")])
    params, _, data, _, _, n, *_, work = fn.params
    buf, grads = work, fn.gep(t, work, at.groups * at.block, name="grads")  # grads: padded + W doubles
    results = fn.alloca(f"[{max(R, 1)} x {t}]", "res")
    lane_ids = Value("<" + ", ".join(f"i64 {j}" for j in range(width)) + ">", vector(width, "i64"))
    emit = _Emitter(fn, layers, at, width, buf, params)
    slot, weight, rows_of, fold = emit.slot, emit.weight, emit.rows_of, emit.fold

    def gather(rows, column):
        """Data column ``column`` (an i64 Value) of the samples ``rows``, one per lane."""
        return lane_column(fn, data, rows, fn.binop("mul", column, n), width)

    def backward(base):
        for k in range(L - 1, 0, -1):
            layer, before = layers[k], layers[k - 1]

            def inputs(first, u):
                items = [fn.binop("add", first, integer(r)) for r in range(u)]

                def step(j, g):
                    d = fn.load(t, slot(base, at.d[k], j))
                    return [fn.binop("fadd", gr, fn.binop("fmul", weight(k, j, i), d)) for gr, i in zip(g, items)]
                for gr, i in zip(fold(layer.nout, f"bj{k}", [zero] * u, step), items):
                    z = fn.load(t, slot(base, at.z[k - 1], i))
                    fn.store(_values(fn, before.backward, width, [z, gr])[0], slot(base, at.d[k - 1], i))
            rows_of(layer.nin, f"bi{k}", inputs)

    def by_sample(base):
        """Each layer's inputs, sample by sample: ``W`` x ``W`` blocks transposed."""
        for k, layer in enumerate(layers):
            for pad in range(layer.nin + 1, at.blocks[k] * width):
                fn.store(zero, slot(base, at.act[k] + pad))
            with fn.loop(at.blocks[k], name=f"t{k}") as b:
                first = fn.binop("mul", b, integer(width))
                block = transpose(fn, [fn.load(t, slot(base, at.act[k] + lane, first)) for lane in range(width)], width)
                for lane, vector_ in enumerate(block):
                    fn.store(vector_, slot(base, at.by_sample[k] + lane * at.blocks[k], b))

    def weight_sums(groups):
        """Add to ``grads`` each weight's sum over the chunk's ``groups`` of samples, one sample after
        the other, of (its neuron's cotangent x its input): ``W`` weights of a row at once."""
        for k, layer in enumerate(layers):
            ragged = (layer.nin + 1) % width

            def neurons(first, u):
                js = [fn.binop("add", first, integer(r)) for r in range(u)]
                with fn.loop(at.blocks[k], name=f"gb{k}") as b:
                    with fn.loop(groups, name=f"gg{k}", carry=[zero] * u) as (group, sums):
                        base = fn.binop("mul", group, integer(at.block))
                        cotangents = [slot(base, at.d[k], j) for j in js]
                        for lane in range(width):  # (lanes past the batch's end have zero cotangents)
                            inputs = fn.load(t, slot(base, at.by_sample[k] + lane * at.blocks[k], b))
                            sums[:] = [fn.binop("fadd", total, fn.binop("fmul", inputs, _splat(fn, fn.load(
                                "double", fn.gep("double", d, lane)), width))) for total, d in zip(sums, cotangents)]
                    first_input = fn.binop("mul", b, integer(width))
                    if ragged:  # the lanes past the row's bias belong to the next row: add nothing there
                        inside = fn.icmp("slt", fn.binop("add", lane_ids, fn.splat(first_input, width)),
                                         fn.splat(integer(layer.nin + 1), width))
                    for total, j in zip(sums, js):
                        row = fn.binop("add", integer(at.params[k]), fn.binop("mul", j, integer(layer.nin + 1)))
                        p = fn.gep("double", grads, fn.binop("add", row, first_input))
                        fn.store(fn.binop("fadd", fn.load(t, p, align=8),
                                          fn.select(inside, total, zero) if ragged else total), p, align=8)
            rows_of(layer.nout, f"gn{k}", neurons)

    def batch_sums(start, m, visit):
        samples = fn.gep("i64", visit, start, name="visit")
        fn.call("llvm.memset.p0.i64", "void", [grads, integer(0, "i8"), integer(8 * (at.padded + width)),
                                               integer(0, "i1")])
        for k in range(R):
            fn.store(zero, fn.gep(t, results, k))
        with fn.loop(m, step=span, name="ch") as h0:
            left = fn.binop("sub", m, h0)
            count = fn.select(fn.icmp("slt", left, integer(span)), left, integer(span))
            with fn.loop(fn.binop("add", h0, count), start=h0, step=width, name="grp") as g:
                base = fn.binop("mul", fn.binop("udiv", fn.binop("sub", g, h0), integer(width)),
                                integer(at.block), name="base")
                rows = lane_samples(fn, samples, g, m, width)
                with fn.loop(nin0, name="x") as c:
                    fn.store(gather(rows, c), slot(base, at.act[0], c))
                fn.store(one, slot(base, at.act[0] + nin0))
                emit.forward(base)
                outputs = [fn.load(t, slot(base, at.act[L] + k)) for k in range(n_out)]
                targets = [gather(rows, integer(nin0 + c)) for c in range(T)]
                values = _values(fn, loss, width, outputs + targets)
                inside = fn.icmp("slt", fn.binop("add", lane_ids, fn.splat(g, width)), fn.splat(m, width)) \
                    if width > 1 else fn.icmp("slt", g, m)  # lanes past the batch's end count nothing
                for k in range(R):
                    p = fn.gep(t, results, k)
                    fn.store(fn.binop("fadd", fn.load(t, p), fn.select(inside, values[k], zero)), p)
                for k in range(n_out):
                    ct = fn.select(inside, values[R + k], zero)
                    z = fn.load(t, slot(base, at.z[L - 1], integer(k)))
                    fn.store(_values(fn, layers[-1].backward, width, [z, ct])[0], slot(base, at.d[L - 1] + k))
                backward(base)
                by_sample(base)
            weight_sums(fn.binop("udiv", fn.binop("add", count, integer(width - 1)), integer(width)))
        return [_reduce(fn, fn.load(t, fn.gep(t, results, k)), width) for k in range(R)], \
            lambda q: fn.load(t, fn.gep("double", grads, q), align=8)
    training_run(fn, update, watch, R, at.padded, width, batch_sums)
    fn.ret()
    return module.text()


class DenseLoop:
    """``BatchLoop`` for a stack of dense layers: the same call, the same results (to rounding),
    compiled as loops over neurons and inputs.

    ``layers``: ``Dense`` records, first to last; the parameters are laid out layer after
    layer, neuron after neuron, each its ``nin`` weights then its bias (``MLP.parameters()``).
    ``loss``: inputs the model's outputs, then the targets; outputs ``R`` per-sample results
    (summed per epoch into ``hist``), then the cotangent of each model output. ``update``
    and ``watch`` as in ``BatchLoop``; the data's columns are the features, then the targets.
    """

    def __init__(self, layers, loss, update, watch=None, width=None, level=2):
        self.width = llvm.lanes() if width is None else width
        layout = _Layout(layers, self.width)
        self.padded, self._work = layout.padded, layout.groups * layout.block * self.width + layout.padded + self.width
        self.columns = len(loss.outputs) - layers[-1].nout + (0 if watch is None else len(watch.outputs))
        self.source = dense_loop_source(layers, loss, update, watch, self.width)
        self._engine, self._fn = _entry(self.source, "fit", level, passes=True, argtypes=[
            _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _PTR, _I64, _PTR, _PTR])

    def __call__(self, params, state, data, order, ostride, batch, epochs, lr, step0, hist):
        check_call(self, params, state, data, order, ostride, batch, epochs, lr, hist)
        work = _aligned(self._work)
        self._fn(params.ctypes.data, state.ctypes.data, data.ctypes.data, order.ctypes.data, ostride, data.shape[1],
                 batch, epochs, lr.ctypes.data, step0, hist.ctypes.data, work.ctypes.data)


def dense_predict_source(layers, width=None):
    """``void @predict(ptr %params, ptr %data, ptr %out, i64 %n, ptr %work)``: the forward pass of
    ``n`` samples (a multiple of ``width``), ``width`` at a time. ``data`` holds the features by
    column (``(nin, n)``), ``out`` receives the outputs by column (``(nout, n)``)."""
    width = llvm.lanes() if width is None else width
    at, t = _Layout(layers, width), vector(width)
    module = Module(f"Generated by tracegrad: the forward pass of {len(layers)} dense layers in {width} lanes; "
                    f"do not edit.")
    fn = module.function("predict", "void", [("ptr", "params"), ("ptr", "data"), ("ptr", "out"), ("i64", "n"),
                                             ("ptr", "work")])
    params, data, out, n, work = fn.params
    emit, base = _Emitter(fn, layers, at, width, work, params), integer(0)
    with fn.loop(n, step=width, name="g") as g:
        with fn.loop(layers[0].nin, name="x") as c:
            column = fn.gep("double", data, fn.binop("add", fn.binop("mul", c, n), g))
            fn.store(fn.load(t, column, align=8), emit.slot(base, at.act[0], c))
        fn.store(emit.one, emit.slot(base, at.act[0] + layers[0].nin))
        emit.forward(base)
        for k in range(layers[-1].nout):
            value = fn.load(t, emit.slot(base, at.act[len(layers)] + k))
            fn.store(value, fn.gep("double", out, fn.binop("add", fn.binop("mul", integer(k), n), g)), align=8)
    fn.ret()
    return module.text()


class DensePredict:
    """The compiled forward pass of dense layers over many samples: ``predict(params, X)`` is the
    ``(n, nout)`` array of outputs for the rows of ``X`` (``params`` in ``parameters()`` order)."""

    def __init__(self, layers, width=None, level=2):
        self.width = llvm.lanes() if width is None else width
        self.nin, self.nout = layers[0].nin, layers[-1].nout
        self._work = _Layout(layers, self.width).block * self.width
        self._engine, self._fn = _entry(dense_predict_source(layers, self.width), "predict", level, passes=True,
                                        argtypes=[_PTR, _PTR, _PTR, _I64, _PTR])

    def __call__(self, params, X):
        if X.ndim != 2 or X.shape[1] != self.nin:
            raise ValueError(f"the layers take {self.nin} features, X has shape {X.shape}")
        n = len(X)
        padded = -(-n // self.width) * self.width
        data = np.zeros((self.nin, padded))
        data[:, :n] = X.T
        out = np.empty((self.nout, padded))
        work = _aligned(self._work)
        params = np.ascontiguousarray(params, dtype=float)
        self._fn(params.ctypes.data, data.ctypes.data, out.ctypes.data, padded, work.ctypes.data)
        return out[:, :n].T


def _aligned(size):
    """``size`` zero doubles, 64-byte aligned: the vectors are loaded as such."""
    work = np.zeros(size + 8)
    return work[(-work.ctypes.data // 8) % 8:]
