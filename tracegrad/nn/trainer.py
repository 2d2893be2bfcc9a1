"""The compiled training loop: trace the model and loss for one sample, derive the gradient
graph, and run every epoch (per-sample forward and backward over the batch, gradient
accumulation, L2, the optimizer's update and the learning-rate schedule) as compiled code.

>>> import numpy as np, tracegrad as tg
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]); y = np.array([1.0, -1.0, 1.0, -1.0])
>>> model = tg.nn.MLP(2, [4, 1], seed=0)
>>> trainer = tg.nn.Trainer(model, loss="hinge", optimizer=tg.nn.SGD(lr=0.1))
>>> history = trainer.fit(X, y, epochs=20, progress=False)
>>> len(history["loss"]), history["loss"][-1] < history["loss"][0]
(20, True)
"""
import threading

import numpy as np

from .. import ops
from ..tracing import trace_flat
from ..transforms import vjp_graph
from ..transforms.substitute import substitute
from . import losses
from .module import ACTIVATIONS, dense_layers, straight_layers, structure
from ..vmap import is_dask, run_rows

CHUNK = 1 << 16  # entries of the order and learning-rate arrays of one compiled call, at most
# parameters from which a stack of dense layers trains as loops (``llvm_dense``); below, the
# straight-line kernel of the traced sample is as fast or faster (docs/loops.md has the numbers)
DENSE_FROM = 500

def _argmax_is(scores, target):
    """1.0 where ``target`` is the index of the largest score (the first on a tie, as torch.argmax), else 0.0."""
    best, index = scores[0], 0.0
    for k, s in enumerate(scores[1:], 1):
        better = s > best
        best, index = ops.where(better, s, best), ops.where(better, float(k), index)
    return ops.eq(index, target)


# name -> (per-sample loss of (score, target), per-sample "correct" flag or None for regression)
LOSSES = {
    "hinge": (lambda s, t: losses.hinge_loss([s], [t]), lambda s, t: (s > 0.0) == (t > 0.0)),
    "mse": (lambda s, t: losses.mse_loss([s], [t]), None),
    "bce": (lambda s, t: losses.binary_cross_entropy([s], [t]), lambda s, t: (s > 0.5) == (t > 0.5)),
    "bce_logits": (lambda s, t: losses.binary_cross_entropy([s], [t], from_logits=True),
                   lambda s, t: (s > 0.0) == (t > 0.5)),
    "cross_entropy": (losses.cross_entropy, _argmax_is),  # scores: one output per class; t: the class
}


def _real_array(a, name):
    """``a`` as a float64 array (a dask array stays lazy); numbers only (bool, int, float), else a
    ValueError that says so."""
    kind = np.asarray(a).dtype.kind if not isinstance(a, np.ndarray) and not is_dask(a) else a.dtype.kind
    if kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got an array of dtype kind {kind!r}; "
                         f"convert it with np.asarray({name}, dtype=float)")
    return a.astype(float) if is_dask(a) else np.asarray(a, dtype=float)


def check_data(X, y, nin=None):
    """``X`` (samples x ``nin`` features) and ``y`` (one target or a row of them per sample) as float
    arrays, or a ValueError saying what is wrong. Dask arrays are checked by their shapes here; their
    values are checked where they live (``tracegrad.nn.cluster``)."""
    X, y = _real_array(X, "X"), _real_array(y, "y")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples x features), got shape {X.shape}")
    if len(X) == 0:
        raise ValueError("X is empty: give at least one sample")
    if y.ndim not in (1, 2) or len(y) != len(X):
        raise ValueError(f"y must have one target per sample: X has {len(X)} rows, y has shape {y.shape}")
    if nin is not None and X.shape[1] != nin:
        raise ValueError(f"the model takes {nin} features, X has {X.shape[1]} columns")
    if not (is_dask(X) or is_dask(y) or (np.isfinite(X).all() and np.isfinite(y).all())):
        raise ValueError("X and y must be finite: remove or impute the nan / inf entries first")
    return X, y


def check_labels(y, n_classes):
    """``y`` as the classes of ``loss="cross_entropy"``: one integer in ``[0, n_classes)`` per
    sample (as floats), or a ValueError saying what is wrong."""
    if n_classes < 2:
        raise ValueError(f"loss='cross_entropy' needs a model with one output per class (at least 2); "
                         f"this one has {n_classes}")
    if y.ndim != 1:
        raise ValueError(f"loss='cross_entropy' takes one class index per sample (y of ints), got y of shape "
                         f"{y.shape}; for one-hot rows pass y.argmax(axis=1)")
    wrong = y[(y < 0) | (y >= n_classes) | (y != np.floor(y))]
    wrong = wrong.compute() if is_dask(wrong) else wrong
    if len(wrong):
        raise ValueError(f"y must hold class indices 0 ... {n_classes - 1} (ints) for the model's {n_classes} "
                         f"outputs, got {float(wrong[0])!r}")
    return y


def columns(X, y):
    """The training data as the compiled loops read it: one row per feature, then per target."""
    return np.ascontiguousarray(np.concatenate([X, y.reshape(len(X), -1)], axis=1).T)


class Trainer:
    """Train ``model`` with compiled epochs.

    ``loss``: ``"hinge"``, ``"mse"``, ``"bce"`` (probabilities), ``"bce_logits"``,
    ``"cross_entropy"`` (one output per class, ``y`` the class index of each sample;
    accuracy by argmax), or a traceable function ``loss(output, target)`` of one sample
    (output a scalar, or a list for several outputs). ``optimizer``: ``tg.nn.SGD(...)`` or
    ``tg.nn.Adam(...)`` without parameters (a recipe). ``l2`` adds ``l2 * sum(p * p)`` to the loss.

    The Trainer is made for the model as it is: after changing its structure (an activation,
    a layer, a neuron), make a new Trainer (this one keeps the code compiled for the old one).

    >>> import numpy as np, tracegrad as tg
    >>> model = tg.nn.MLP(1, [1], seed=0)
    >>> trainer = tg.nn.Trainer(model, loss="mse", optimizer=tg.nn.SGD(lr=0.1))
    >>> X = np.array([[0.0], [1.0]]); y = np.array([1.0, 3.0])
    >>> _ = trainer.fit(X, y, epochs=300, progress=False)
    >>> np.round(model.predict(X), 3)
    array([1., 3.])
    """

    def __init__(self, model, loss="hinge", optimizer=None, l2=0.0, backend=None):
        if not hasattr(model, "parameters") or not callable(model):
            raise TypeError(f"Trainer takes a tg.nn model, got {type(model).__name__}")
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)} or pass a function")
            self.loss_fn, self.correct_fn = LOSSES[loss]
        elif callable(loss):
            self.loss_fn, self.correct_fn = loss, None
        else:
            raise TypeError(f"loss must be a name or a function of (output, target), got {loss!r}")
        from .optim import SGD
        self.optimizer = SGD(lr=0.01) if optimizer is None else optimizer
        if not hasattr(self.optimizer, "update"):
            raise TypeError(f"optimizer must be tg.nn.SGD(...) or tg.nn.Adam(...), got {optimizer!r}")
        if not (isinstance(l2, (int, float)) and l2 >= 0):
            raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
        if backend not in (None, "llvm"):
            raise ValueError(f"the Trainer compiles its training run with llvm; got backend={backend!r}")
        self.labels = loss == "cross_entropy"  # y holds class indices
        self._loss = loss
        self.model, self.l2, self.backend = model, float(l2), backend
        self.params = model.parameters()
        self.state = None      # optimizer state, one array per state variable
        self.step = 0          # optimizer steps taken, across fits
        self._compiled = {}    # (features, targets, lane width) -> compiled training run
        self._width = None     # SIMD lanes: None picks the host's (tests set 1, 2, 4, 8)
        self.history = {"loss": [], "accuracy": []}

    def __getstate__(self):
        """A copy or pickle holds everything but the compiled code, which is made again (from the
        process's cache of compiled code) when it first trains; a named loss travels by its name."""
        state = {**vars(self), "_compiled": {}}
        if isinstance(self._loss, str):
            del state["loss_fn"], state["correct_fn"]
        return state

    def __setstate__(self, state):
        vars(self).update(state)
        if isinstance(self._loss, str):
            self.loss_fn, self.correct_fn = LOSSES[self._loss]

    # ------------------------------------------------------------ graphs

    def _sample_graph(self, n_features, target_example):
        """Inputs: parameters, features, target. Outputs: loss, correct flag, then the gradient."""
        n_params = len(self.params)
        with straight_layers():  # the kernel of the unrolled run is straight-line code
            return self._loss_and_gradient(lambda params, x: self.model.apply(params, list(x)),
                                           ([0.0] * n_params, [0.0] * n_features), target_example)

    def _loss_and_gradient(self, model, args, target_example):
        """The graph of one sample's loss, correct flag and gradient with respect to ``args[0]``:
        inputs ``args`` (flat) and the target, outputs loss, flag, then the gradient."""
        def sample(first, rest, target):
            out = model(first, rest)
            loss = self.loss_fn(out, target)
            correct = self.correct_fn(out, target) if self.correct_fn else 0.0
            return [loss, correct]
        graph, _, _ = trace_flat(sample, (*args, target_example))
        n_in = len(graph.inputs)
        adjoint = vjp_graph(graph, list(range(len(args[0]))), keep_outputs=True)
        # cotangent 1 for the loss, 0 for the flag
        return substitute(adjoint, n_in, [*range(n_in), 1.0, 0.0])

    def _dense_layers(self, plan, target_example):
        """The ``Dense`` records of the layers ``plan`` (see ``dense_layers``) and the graph of one
        sample's loss, flag and cotangents of the model's outputs (inputs the outputs, then the target)."""
        layers = dense_records(plan)
        n_out = plan[-1][1]
        scores = lambda outputs, _: outputs[0] if n_out == 1 else list(outputs)  # noqa: E731 (the model's result)
        return layers, self._loss_and_gradient(scores, ([0.0] * n_out, []), target_example)

    def _update_graph(self):
        """Inputs: parameter, gradient summed over the batch, state..., lr, step, batch size.
        Outputs: new parameter, new state... (the mean gradient, plus L2's, through the optimizer's rule)."""
        opt, l2 = self.optimizer, self.l2
        n_state = len(opt.init_state(0.0))

        def update(p, total, *rest):
            *state, lr, t, m = rest
            g = total / m
            p, state = opt.update(p, g + 2.0 * l2 * p if l2 else g, list(state), lr, t)
            return [p, *state]
        return trace_flat(update, [0.0] * (n_state + 5))[0]

    def _loop(self, n_features, n_targets, shards=None):
        """The compiled training run for this data shape (kept by the trainer), or with ``shards``
        (the data on a Dask cluster) a ``ShardedLoop`` over them, which runs the same graphs.

        Per sample: loss, correct flag, gradient; per batch: the update; per epoch: the
        sums of loss and flags, and of the squared parameters (the L2 term) at its start.
        """
        target = 0.0 if n_targets == 1 else [0.0] * n_targets
        key = (n_features, n_targets, self._width)
        if shards is None and key in self._compiled:
            return self._compiled[key]
        plan = dense_plan(self.model, self.params)
        squares = trace_flat(lambda p: [p * p], [0.0])[0]
        update, P = self._update_graph(), len(self.params)
        if plan is None:  # the traced sample's straight-line kernel
            sample = self._sample_graph(n_features, target)
            if shards is not None:
                from .cluster import ShardedLoop
                return ShardedLoop(shards, sample, update, P, squares, self._width)
            from ..backends.llvm_loops import BatchLoop
            self._compiled[key] = BatchLoop(sample, update, P, squares, self._width)
        else:  # a stack of dense layers: loops over neurons and inputs, whatever the width
            layers, loss = self._dense_layers(plan, target)
            if shards is not None:
                from .cluster import ShardedLoop
                return ShardedLoop(shards, None, update, P, squares, self._width, dense=(plan, loss))
            from ..backends.llvm_dense import DenseLoop
            self._compiled[key] = DenseLoop(layers, loss, update, squares, self._width)
        return self._compiled[key]

    # ------------------------------------------------------------ training

    def _check(self, X, y):
        X, y = check_data(X, y, getattr(self.model, "nin", None))
        if self.labels:
            plan = dense_layers(self.model)
            y = check_labels(y, plan[-1][1] if plan else len(forward_graph(self.model, X.shape[1]).outputs))
        return X, y

    def fit(self, X, y, epochs=1, batch_size=None, shuffle=False, seed=None, progress=True, client=None):
        """Train for ``epochs`` passes over ``(X, y)``; return the history (loss and accuracy per epoch).

        ``batch_size=None`` is full-batch (one optimizer step per epoch). With ``shuffle``
        the samples are permuted each epoch by ``np.random.default_rng(seed)``.

        With dask arrays for ``X`` or ``y``, or numpy arrays and ``client=`` (a
        ``dask.distributed.Client``), it trains data-parallel: each step's gradient is summed
        over the data's shards on the Dask workers, and the update is applied here, in the
        same batch order (see docs/dask.md).

        >>> import numpy as np, tracegrad as tg
        >>> trainer = tg.nn.Trainer(tg.nn.MLP(2, [4, 1], seed=0), loss="hinge")
        >>> history = trainer.fit(np.eye(2), np.array([1.0, -1.0]), epochs=3, progress=False)
        >>> sorted(history), len(history["loss"])
        (['accuracy', 'loss'], 3)
        """
        sharded = client is not None or is_dask(X) or is_dask(y)
        X, y = self._check(X, y)
        if not (isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0):
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        n, P = len(X), len(self.params)
        batch = n if batch_size is None else batch_size
        if not (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if sharded:
            from .cluster import Shards
            data = Shards(X, y, client, getattr(self.model, "nin", None))
            loop = self._loop(X.shape[1], y.size // n, data)
        else:
            loop, data = self._loop(X.shape[1], y.size // n), columns(X, y)
        params = np.array([p.data for p in self.params] + [0.0] * (loop.padded - P))
        if self.state is None:
            init = np.array([self.optimizer.init_state(p) for p in params], dtype=float).reshape(loop.padded, -1)
            self.state = np.ascontiguousarray(init.T)
        per_epoch = -(-n // batch)
        # epochs per compiled call: one for the progress bar, else as many as keep the order and
        # learning-rate arrays under CHUNK entries (memory does not grow with the epochs)
        chunk = 1 if progress else max(1, min(epochs, CHUNK // (per_epoch + (n if shuffle else 0))))
        rng, order = np.random.default_rng(seed) if shuffle else None, np.arange(n)
        hist = np.full((max(epochs, 1), 3), -1.0)  # a call fills its epochs' rows; -1: not run
        bar = _progress(epochs, progress)
        try:
            for e in range(0, epochs, chunk):
                k = min(chunk, epochs - e)
                if shuffle:  # one permutation per epoch, drawn in turn from one generator per fit
                    order = np.concatenate([rng.permutation(n) for _ in range(k)])
                first = self.step + e * per_epoch
                loop(params, self.state, data, order, n if shuffle else 0, batch, k,
                     self._learning_rates(first, k * per_epoch), first, hist[e:])
                if progress:
                    for loss, accuracy in zip(*self._epochs(hist[e:e + k], n)):
                        bar.update(loss, accuracy)
        finally:  # on an interrupt too: params and self.state hold the epochs whose call returned
            bar.close()
            done = int(np.count_nonzero(hist[:epochs, 1] >= 0.0))  # the correct counts are >= 0
            self.step += done * per_epoch
            for p, v in zip(self.params, params[:P].tolist()):
                p.data = v
            loss, accuracy = self._epochs(hist[:done], n)
            history = {"loss": loss, "accuracy": accuracy}
            for key in history:
                self.history[key].extend(history[key])
        return history

    def _epochs(self, hist, n):
        """Each epoch's mean loss + L2 term and accuracy (lists) from its rows of sums."""
        loss = hist[:, 0] / n + self.l2 * hist[:, 2]
        accuracy = hist[:, 1] / n if self.correct_fn else np.full(len(hist), np.nan)
        return loss.tolist(), accuracy.tolist()

    def _learning_rates(self, first, steps):
        """The learning rate of steps ``first, first + 1, ...`` (at least one entry), as an array."""
        lr = self.optimizer.lr
        if not callable(lr):
            return np.full(max(steps, 1), float(lr))
        return np.fromiter(map(lr, range(first, first + steps)), float, steps) if steps else np.zeros(1)


_ACTIVATION_GRAPHS = {}


def _activation_graphs(name):
    """The graphs of activation ``name`` for ``Dense``: z -> a, and (z, cotangent of a) -> cotangent of z."""
    if name not in _ACTIVATION_GRAPHS:
        fn = ACTIVATIONS[name] or (lambda z: z)
        forward = trace_flat(lambda z: [fn(z)], [0.0])[0]
        _ACTIVATION_GRAPHS[name] = forward, vjp_graph(forward, [0], keep_outputs=False)
    return _ACTIVATION_GRAPHS[name]


# (model structure, features) -> traced forward graph, oldest first: not on the model, which then
# pickles and deep-copies; models of the same structure share one entry (and its compiled code)
_FORWARDS = {}
_lock = threading.Lock()


def dense_plan(model, params):
    """The layers (see ``dense_layers``) of a model of ``params`` that trains and predicts as
    dense loops, or None: the model is not a plain stack of dense layers, or it has fewer than
    ``DENSE_FROM`` parameters (the straight-line kernel serves it)."""
    return dense_layers(model) if len(params) >= DENSE_FROM else None


def dense_records(plan):
    """The ``llvm_dense.Dense`` records of the layers ``plan`` (see ``dense_layers``)."""
    from ..backends.llvm_dense import Dense
    return [Dense(nin, nout, *_activation_graphs(activation)) for nin, nout, activation in plan]


def _dense_predict(plan):
    """The compiled forward pass of the dense layers ``plan`` (see ``dense_layers``), kept as forward graphs are."""
    from ..backends.llvm_dense import DensePredict
    key = ("dense", tuple(plan))
    kernel = _FORWARDS.get(key)
    if kernel is None:
        kernel = DensePredict(dense_records(plan))
        _keep(key, kernel)
    return kernel


def _keep(key, value):
    """Keep ``value`` in ``_FORWARDS``, the oldest entries going past 64."""
    with _lock:
        _FORWARDS[key] = value
        while len(_FORWARDS) > 64:
            _FORWARDS.pop(next(iter(_FORWARDS)))


def forward_graph(model, nin):
    """The traced forward of ``model`` on ``nin`` features: inputs the parameters, then the features
    (each ``Layer`` straight-line: ``run_rows`` reads every parameter for each group of rows)."""
    key = structure(model)
    graph = _FORWARDS.get((key, nin))
    if graph is None:
        n_params = len(model.parameters())
        with straight_layers():
            graph = trace_flat(lambda ps, x: model.apply(ps, list(x)), ([0.0] * n_params, [0.0] * nin))[0]
        if key is not None:
            _keep((key, nin), graph)
    return graph


def predict(model, X):
    """The model's outputs for each row of ``X``, by a compiled batched forward (numpy array).

    One output per sample gives shape ``(n,)``, several give ``(n, outputs)`` (a classifier's
    logits: ``predict(X).argmax(axis=1)`` is its classes).
    """
    X = np.ascontiguousarray(X, dtype=float)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X must be a non-empty 2-D array (samples x features), got shape {X.shape}")
    nin = getattr(model, "nin", X.shape[1])
    if X.shape[1] != nin:
        raise ValueError(f"the model takes {nin} features, X has {X.shape[1]} columns")
    params = model.parameters()
    values = np.array([p.data for p in params])
    plan = dense_plan(model, params)
    if plan is not None:  # loops over neurons and inputs, as the Trainer's
        out = _dense_predict(plan)(values, X)
        return out[:, 0] if out.shape[1] == 1 else out
    graph = forward_graph(model, nin)
    n_out = len(graph.outputs)
    out = np.empty((n_out, len(X)))
    run_rows(graph, [(values, j, 0) for j in range(len(params))] + [(X, j, nin) for j in range(nin)],
             [(out, len(X) * j, 1) for j in range(n_out)], len(X))
    return out[0] if n_out == 1 else out.T


class _progress:
    """A tqdm bar over epochs showing loss and accuracy, or nothing."""

    def __init__(self, epochs, enabled):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=epochs, unit="epoch", leave=True)

    def update(self, loss, accuracy):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", accuracy=f"{accuracy:.3f}")
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
