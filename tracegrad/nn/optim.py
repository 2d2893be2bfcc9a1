"""Optimizers: SGD (momentum, weight decay) and Adam, as PyTorch defines them.

With parameters they step eagerly on ``Value``s (``zero_grad()``, ``step()``).
Without, they are a recipe: plain attributes that a compiled trainer reads
(``lr``, ``momentum``, ``weight_decay`` for SGD; ``lr``, ``betas``, ``eps``,
``weight_decay`` for Adam). ``lr`` is a number or a function of the step number
(0 for the first step), e.g. micrograd's demo schedule ``lambda k: 1.0 - 0.9 * k / 100``.

>>> from tracegrad import Value
>>> w = Value(3.0)
>>> opt = SGD([w], lr=0.1)
>>> opt.zero_grad(); (w * w).backward(); opt.step()
>>> w.data
2.4
"""
from ..ops import sqrt


class Optimizer:
    """Common part: parameters (or None for a recipe), the lr schedule, the step count.

    >>> recipe = SGD(lr=lambda k: 0.1 / (1 + k), momentum=0.9)   # no parameters: a recipe
    >>> recipe.learning_rate(1)
    0.05
    >>> sorted(recipe.hyperparameters())
    ['lr', 'momentum', 'weight_decay']
    """

    def __init__(self, params, lr):
        if not (callable(lr) or isinstance(lr, (int, float))) or isinstance(lr, bool):
            raise TypeError(f"lr must be a number or a function of the step number, got {lr!r}")
        if not callable(lr) and not lr >= 0.0:
            raise ValueError(f"lr must be >= 0 (as in PyTorch), got {lr!r}")
        self.params = None if params is None else list(params)
        self.state = None  # per parameter, once stepping eagerly
        self.lr = lr
        self.steps = 0  # steps taken so far

    def learning_rate(self, step=None):
        """The learning rate at ``step`` (default: the next step)."""
        step = self.steps if step is None else step
        return float(self.lr(step)) if callable(self.lr) else float(self.lr)

    def hyperparameters(self):
        """The recipe as plain data, e.g. ``{"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}``."""
        return {name: getattr(self, name) for name in self._HYPER}

    def for_parameters(self, params):
        """An eager optimizer with the same hyperparameters, stepping ``params`` (fresh state)."""
        return type(self)(params, **self.hyperparameters())

    def _bound(self):
        if self.params is None:
            raise ValueError(f"this {type(self).__name__} was made without parameters (a recipe); "
                             f"pass them to step eagerly: {type(self).__name__}(model.parameters(), ...)")
        return self.params

    def zero_grad(self):
        for p in self._bound():
            p.grad = 0.0

    def step(self):
        params = self._bound()
        if self.state is None:
            self.state = [self.init_state(p.data) for p in params]
        lr, t = self.learning_rate(), self.steps + 1
        for i, p in enumerate(params):
            p.data, self.state[i] = self.update(p.data, p.grad, self.state[i], lr, t)
        self.steps += 1

    def init_state(self, p):
        """The initial state of one parameter, a list of floats (momentum, moments ...)."""
        return [0.0] * self._STATE

    def update(self, p, g, state, lr, t):
        """One parameter's update at step ``t`` (1 for the first): ``(new p, new state)``.

        Written with tracegrad's operations, so the eager ``step`` runs it on floats and
        the compiled Trainer traces it into its update kernel.
        """
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """``v = momentum * v + (grad + weight_decay * p)``; ``p -= lr * v`` (PyTorch's SGD).

    >>> from tracegrad import Value
    >>> p = Value(1.0)
    >>> p.grad = 0.5
    >>> SGD([p], lr=0.1).step()
    >>> p.data
    0.95
    """

    _HYPER = ("lr", "momentum", "weight_decay")
    _STATE = 1  # velocity

    def __init__(self, params=None, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def update(self, p, g, state, lr, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:  # the velocity starts at 0, so the first step's is the gradient
            g = self.momentum * state[0] + g
            state = [g]
        return p - lr * g, state


class Adam(Optimizer):
    """Adam with bias correction, computed in PyTorch's order of operations.

    >>> from tracegrad import Value
    >>> p = Value(1.0)
    >>> p.grad = 0.5
    >>> Adam([p], lr=0.1).step()      # the first step moves each parameter by about lr
    >>> round(p.data, 6)
    0.9
    """

    _HYPER = ("lr", "betas", "eps", "weight_decay")
    _STATE = 2  # first and second moments

    def __init__(self, params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def update(self, p, g, state, lr, t):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        m = b1 * state[0] + (1.0 - b1) * g
        v = b2 * state[1] + (1.0 - b2) * g * g
        step_size = lr / (1.0 - b1 ** t)
        root_bc2 = sqrt(1.0 - b2 ** t)
        return p - step_size * (m / (sqrt(v) / root_bc2 + self.eps)), [m, v]
