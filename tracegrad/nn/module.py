"""Modules as micrograd has them: ``Module``, ``Neuron``, ``Layer``, ``MLP``.

Models use only arithmetic and tracegrad functions, so the same model runs on
``Value``s (eager training), on floats, and on tracers (``tg.grad``, the compiled
Trainer): ``model.apply(params, x)`` runs it with other parameter values.

>>> model = MLP(2, [16, 16, 1], seed=0)
>>> len(model.parameters()), str(model.layers[2])
(337, 'Layer of [LinearNeuron(16)]')
"""
import contextlib
import contextvars
import random

import numpy as np

from .. import loops, ops
from ..tracing import _depth
from ..value import Value, gc_paused

ACTIVATIONS = {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid, "linear": None}
_NAMES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "linear": "Linear"}


class Module:
    """Base class: ``parameters()`` (a list of Values, in a fixed order), ``zero_grad()``, state.

    >>> model = MLP(2, [2, 1], seed=0)
    >>> state = model.state_dict()
    >>> state["module"], state["config"], len(state["parameters"])
    ('MLP', {'nin': 2, 'nouts': [[2, 'relu'], [1, 'linear']]}, 9)
    >>> model.load_state_dict(state)
    """

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []

    def config(self):
        """The constructor's arguments that rebuild this module's structure (JSON-able), or None
        for a module that ``tg.nn.load`` cannot rebuild (your own subclass, a changed layer)."""
        return None

    def state_dict(self):
        """The module as plain data (JSON-able): ``{"module": class name, "config": config(),
        "parameters": [floats]}``; ``tg.nn.save`` writes it to a file."""
        return {"module": type(self).__name__, "config": self.config(),
                "parameters": [p.data for p in self.parameters()]}

    def load_state_dict(self, state):
        """Set the parameters from ``state_dict()`` output (or a list or 1-D array of numbers, in
        ``parameters()`` order); a state of another structure (its ``config``) is a ValueError."""
        values = state["parameters"] if isinstance(state, dict) else state
        config = state.get("config") if isinstance(state, dict) else None
        if config is not None and self.config() is not None and config != self.config():
            raise ValueError(f"the state is of a {state.get('module', 'module')} with config {config!r:.200}, "
                             f"this {type(self).__name__} has {self.config()!r:.200}")
        if isinstance(values, np.ndarray) and values.ndim == 1:
            values = values.tolist()
        params = self.parameters()
        if not isinstance(values, (list, tuple)) or len(values) != len(params):
            count = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            raise ValueError(f"this {type(self).__name__} has {len(params)} parameters, the state has {count}")
        floats = [ops.to_float(v) for v in values]
        for p, v in zip(params, floats):
            p.data = v

    def predict(self, X):
        """Outputs for each row of ``X`` (a 2-D array), computed by compiled code.

        >>> MLP(2, [3, 1], seed=0).predict([[0.0, 0.0], [1.0, 2.0]]).shape
        (2,)
        """
        from .trainer import predict
        return predict(self, X)

    def apply(self, params, *args):
        """``self(*args)`` with the parameters replaced by ``params`` (floats, tracers or Values).

        ``params`` follows the order of ``parameters()``; the model is left as it was.
        This is how a model is traced: ``tg.grad(lambda ps, x: model.apply(ps, x))``.

        >>> n = Neuron(2, seed=0)
        >>> n.apply([1.0, 2.0, 0.5], [3.0, 4.0])
        11.5
        """
        old = self.parameters()
        params = list(params)
        if len(params) != len(old):
            raise ValueError(f"apply needs {len(old)} parameters (as in parameters()), got {len(params)}")
        saved = _substitute(self, {id(p): q for p, q in zip(old, params)}, [])
        try:
            return self(*args)
        finally:
            for module, attributes in saved:
                vars(module).update(attributes)


def structure(module):
    """What ``module`` computes apart from its parameters' values, as a hashable key: the types,
    sizes and settings of it and its sub-modules, and which parameter sits where (None if an
    attribute is unhashable). Compiled code is cached by it, never stored on the model.

    >>> structure(MLP(2, [3, 1], seed=0)) == structure(MLP(2, [3, 1], seed=1))
    True
    >>> structure(MLP(2, [3, 1])) == structure(MLP(2, [3, 1], "tanh"))
    False
    """
    index = {id(p): i for i, p in enumerate(module.parameters())}

    def key(x):
        if isinstance(x, Value):
            return ("parameter", index[id(x)]) if id(x) in index else ("constant", x.data.hex())
        if isinstance(x, Module):
            return (type(x), tuple((name, key(v)) for name, v in vars(x).items()))
        if isinstance(x, (list, tuple)):
            return (type(x), tuple(map(key, x)))
        if isinstance(x, dict):
            return (dict, tuple((k, key(v)) for k, v in x.items()))
        if type(x) is float:
            return ("float", x.hex())  # -0.0 and 0.0 make different constants
        hash(x)
        return x
    try:
        return key(module)
    except TypeError:
        return None


def dense_layers(model):
    """``[(nin, nout, activation), ...]`` of a model that is a plain stack of dense layers (an
    ``MLP``, or a ``Layer``, of ``Neuron``s with one activation per layer, none of their
    methods overridden), else None. The Trainer compiles such a model's training as loops
    over neurons and inputs (``tracegrad.backends.llvm_dense``).

    >>> dense_layers(MLP(2, [16, 16, 1], seed=0))
    [(2, 16, 'relu'), (16, 16, 'relu'), (16, 1, 'linear')]
    """
    def plain(x, cls, *methods):
        return isinstance(x, cls) and all(getattr(type(x), m) is getattr(cls, m) for m in methods)
    if plain(model, MLP, "__call__", "parameters"):
        layers, nin = model.layers, model.nin
    elif plain(model, Layer, "__call__", "parameters"):
        layers, nin = [model], len(model.neurons[0].w) if model.neurons else 0
    else:
        return None
    plan = []
    for k, layer in enumerate(layers):
        if not (plain(layer, Layer, "__call__", "parameters") and layer.neurons) or \
                (len(layer.neurons) == 1 and k + 1 < len(layers)):  # one output is returned bare
            return None
        kinds = {(len(n.w), n.activation) if plain(n, Neuron, "__call__", "parameters") else None
                 for n in layer.neurons}
        if len(kinds) != 1 or None in kinds or next(iter(kinds)) != (nin, layer.neurons[0].activation) \
                or layer.neurons[0].activation not in ACTIVATIONS:
            return None
        plan.append((nin, len(layer.neurons), layer.neurons[0].activation))
        nin = len(layer.neurons)
    params = model.parameters()
    return plan if len({id(p) for p in params}) == len(params) else None  # shared weights: the general path


_STRAIGHT = contextvars.ContextVar("straight_layers", default=False)


@contextlib.contextmanager
def straight_layers():
    """Within it, a traced ``Layer`` records each neuron one after another (straight-line code, as
    the Trainer's per-sample kernel of a small model wants) instead of one map over them.

    >>> import tracegrad as tg
    >>> model = MLP(2, [3, 1], seed=0)
    >>> with straight_layers():
    ...     graph = tg.trace(lambda ps, x: model.apply(ps, x), [0.0] * 13, [1.0, 2.0])
    >>> graph.stats()["scan"]
    0
    """
    token = _STRAIGHT.set(True)
    try:
        yield
    finally:
        _STRAIGHT.reset(token)


def _substitute(module, mapping, saved):
    """Replace the Values in ``module``'s attributes (and sub-modules') by ``mapping[id(value)]``."""
    saved.append((module, dict(vars(module))))

    def swap(x):
        if isinstance(x, Value):
            return mapping.get(id(x), x)
        if isinstance(x, Module):
            _substitute(x, mapping, saved)
            return x
        if isinstance(x, (list, tuple)):
            return type(x)(swap(v) for v in x)
        if isinstance(x, dict):
            return {k: swap(v) for k, v in x.items()}
        return x
    for name, value in list(vars(module).items()):
        setattr(module, name, swap(value))
    return saved


def _rng(seed, rng):
    if rng is not None:
        return rng
    return random if seed is None else random.Random(seed)


def _activation(name, default, who):
    """``name`` if it is one of ``ACTIVATIONS``, ``default`` if it is None, else an error that says so."""
    if name is None:
        return default
    if not isinstance(name, str):
        raise TypeError(f"{who}: activation must be one of {', '.join(ACTIVATIONS)} (seed= and rng= are "
                        f"keyword arguments), got {type(name).__name__} {name!r:.40}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


def _neuron_activation(nonlin, activation, who):
    """The activation from micrograd's ``nonlin`` flag (ReLU or linear), or a name given in its place."""
    if isinstance(nonlin, str):  # Neuron(3, "tanh"): a name where micrograd has its flag
        if activation is not None and activation != nonlin:
            raise ValueError(f"{who} got two activations, {nonlin!r} and activation={activation!r}; give one")
        return _activation(nonlin, None, who)
    if not isinstance(nonlin, (bool, np.bool_)):
        raise TypeError(f"{who}: nonlin is micrograd's flag (True: ReLU, False: linear), got "
                        f"{type(nonlin).__name__} {nonlin!r:.40}; name an activation with activation='tanh'")
    return _activation(activation, "relu" if nonlin else "linear", who)


class Neuron(Module):
    """``activation(b + sum(w_i * x_i))``; weights uniform in [-1, 1], bias 0, as micrograd.

    ``nonlin`` is micrograd's switch (ReLU or linear), or an activation's name in its
    place; ``activation`` names one of ``relu``, ``tanh``, ``sigmoid``, ``linear``.
    Without ``seed`` / ``rng`` (a ``random.Random``) the weights come from the
    ``random`` module, as in micrograd.

    >>> n = Neuron(2, activation="tanh", seed=0)
    >>> n, len(n.parameters()), Neuron(2, "tanh"), Neuron(2, nonlin=False)
    (TanhNeuron(2), 3, TanhNeuron(2), LinearNeuron(2))
    >>> -1.0 < n([1.0, 2.0]).data < 1.0
    True
    """

    def __init__(self, nin, nonlin=True, activation=None, *, seed=None, rng=None):
        activation = _neuron_activation(nonlin, activation, "Neuron")
        rng = _rng(seed, rng)
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.activation = activation

    @property
    def nonlin(self):
        return self.activation != "linear"

    def __call__(self, x):
        if len(x) != len(self.w):
            raise ValueError(f"this neuron takes {len(self.w)} inputs, got {len(x)}")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        fn = ACTIVATIONS[self.activation]
        return act if fn is None else fn(act)

    def parameters(self):
        return self.w + [self.b]

    def config(self):
        return {"nin": len(self.w), "activation": self.activation}

    def __repr__(self):
        return f"{_NAMES[self.activation]}Neuron({len(self.w)})"


class TanhNeuron(Neuron):
    """``Neuron(nin, activation="tanh")`` under the name its repr shows: the neuron of Karpathy's
    lecture, which seeds such as micro-autograd build (``from tracegrad.nn import TanhNeuron as Neuron``).

    >>> TanhNeuron(2, seed=0)
    TanhNeuron(2)
    """

    def __init__(self, nin, *, seed=None, rng=None):
        super().__init__(nin, activation="tanh", seed=seed, rng=rng)

    def config(self):
        return {"nin": len(self.w)} if self.activation == "tanh" else None


class Layer(Module):
    """``nout`` neurons on the same inputs; one output is returned bare, as in micrograd.

    ``nonlin`` and ``activation`` are the neurons' (see ``Neuron``).

    >>> layer = Layer(2, 3, seed=0)
    >>> layer, Layer(3, 2, "tanh")
    (Layer of [ReLUNeuron(2), ReLUNeuron(2), ReLUNeuron(2)], Layer of [TanhNeuron(3), TanhNeuron(3)])
    >>> len(layer([1.0, 2.0]))
    3
    """

    def __init__(self, nin, nout, nonlin=True, activation=None, *, seed=None, rng=None):
        activation = _neuron_activation(nonlin, activation, "Layer")
        rng = _rng(seed, rng)
        self.neurons = [Neuron(nin, activation=activation, rng=rng) for _ in range(nout)]

    def __call__(self, x):
        rows = self._rows() if len(self.neurons) > 1 and _depth() > 0 and not _STRAIGHT.get() else None
        if rows is None:
            out = [n(x) for n in self.neurons]
        else:  # traced: one map over the neurons, whose body (one neuron) is traced once
            x, neuron = list(x), self.neurons[0]
            if len(x) != len(neuron.w):
                raise ValueError(f"this layer takes {len(neuron.w)} inputs, got {len(x)}")
            fn = ACTIVATIONS[neuron.activation]

            def body(row):
                act = sum((wi * xi for wi, xi in zip(row[0], x)), row[1])
                return act if fn is None else fn(act)
            out = loops.map(body, rows)
        return out[0] if len(out) == 1 else out

    @property
    def nin(self):
        """The number of inputs (of its first neuron)."""
        return len(self.neurons[0].w) if self.neurons else 0

    def _rows(self):
        """Each neuron's ``(weights, bias)``, if they are plain ``Neuron``s of one size and activation
        whose parameters are being traced (numbers or tracers, no ``Value``), else None."""
        first = self.neurons[0]
        if not all(type(n).__call__ is Neuron.__call__ and len(n.w) == len(first.w)
                   and n.activation == first.activation for n in self.neurons):
            return None
        rows = [(n.w, n.b) for n in self.neurons]
        if any(isinstance(p, Value) for n in self.neurons for p in n.parameters()):
            return None
        return rows

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def config(self):
        configs = [n.config() if type(n) is Neuron else None for n in self.neurons]
        if not configs or None in configs or any(c != configs[0] for c in configs):
            return None
        return {"nin": configs[0]["nin"], "nout": len(configs), "activation": configs[0]["activation"]}

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron.

    ``MLP(nin, [16, 16, 1])``: ReLU hidden layers and a linear last layer (micrograd);
    ``MLP(nin, [16, 16, 1], "tanh")``: another activation for the hidden layers (the last
    stays linear, as in ``torchvision.ops.MLP``); ``MLP(nin, [(4, "tanh"), (1, "sigmoid")])``:
    an activation per layer.

    >>> MLP(2, [(2, "tanh"), 1], seed=1)
    MLP of [Layer of [TanhNeuron(2), TanhNeuron(2)], Layer of [LinearNeuron(2)]]
    >>> MLP(2, [2, 1], "tanh")
    MLP of [Layer of [TanhNeuron(2), TanhNeuron(2)], Layer of [LinearNeuron(2)]]
    """

    def __init__(self, nin, nouts, activation=None, *, seed=None, rng=None):
        hidden = _activation(activation, "relu", "MLP")
        if not isinstance(nin, int) or isinstance(nin, bool):
            raise TypeError(f"nin (the number of inputs) must be an int, got {type(nin).__name__} {nin!r:.40}")
        if nin < 1:
            raise ValueError(f"nin (the number of inputs) must be at least 1, got {nin!r}")
        if not isinstance(nouts, (list, tuple)) or not nouts:
            raise ValueError(f"nouts must be a non-empty list of layer sizes, e.g. [16, 16, 1], got {nouts!r}")
        rng = _rng(seed, rng)
        sizes, kinds = [], []
        for i, spec in enumerate(nouts):
            size, kind = spec if isinstance(spec, (tuple, list)) else (spec, None)
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"layer sizes must be positive ints or (size, activation), got {spec!r}")
            sizes.append(size)
            kinds.append(kind or ("linear" if i == len(nouts) - 1 else hidden))
        sz = [nin] + sizes
        self.nin = nin
        self.layers = [Layer(sz[i], sz[i + 1], activation=kinds[i], rng=rng) for i in range(len(sizes))]

    def __call__(self, x):
        with gc_paused():  # the forward pass makes acyclic Values only
            for layer in self.layers:
                x = layer(x)
            return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def config(self):
        configs = [layer.config() if type(layer) is Layer else None for layer in self.layers]
        sizes = [self.nin] + [c and c["nout"] for c in configs]
        if not configs or None in configs or any(c["nin"] != n for c, n in zip(configs, sizes)):
            return None
        return {"nin": self.nin, "nouts": [[c["nout"], c["activation"]] for c in configs]}

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


class TanhMLP(MLP):
    """``MLP(nin, nouts, "tanh")``: tanh hidden layers and a linear last layer, the network of
    Karpathy's lecture that seeds such as Micrograd Implementation train
    (``from tracegrad.nn import TanhMLP as MLP``). For tanh on the last layer too:
    ``MLP(nin, [(4, "tanh"), (4, "tanh"), (1, "tanh")])``.

    >>> TanhMLP(3, [4, 1], seed=0)
    MLP of [Layer of [TanhNeuron(3), TanhNeuron(3), TanhNeuron(3), TanhNeuron(3)], Layer of [LinearNeuron(4)]]
    """

    def __init__(self, nin, nouts, *, seed=None, rng=None):
        super().__init__(nin, nouts, "tanh", seed=seed, rng=rng)
