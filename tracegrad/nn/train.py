"""An eager training loop: full-batch gradient descent on ``Value``s, returning the loss history.

>>> from tracegrad.nn import MLP, mse_loss
>>> model = MLP(1, [(4, "tanh"), 1], seed=0)
>>> history = train(model, [[0.0], [1.0]], [0.0, 1.0], loss_fn=mse_loss, epochs=50, lr=0.1)
>>> history[-1] < history[0]
True
"""
from ..ops import to_float
from ..value import gc_paused
from .losses import mse_loss
from .optim import SGD


def train(model, X, Y, loss_fn=mse_loss, epochs=100, lr=0.01, optimizer=None):
    """Fit ``model`` to rows ``X`` and targets ``Y``; return the loss after each epoch's forward pass.

    ``optimizer`` is an eager optimizer, a recipe (``SGD(lr=...)``, bound here to the
    model's parameters) or None for ``SGD(lr=lr)``. Each step runs with the cyclic
    garbage collector paused: a Value graph is freed by reference counting alone.

    >>> from tracegrad.nn import MLP
    >>> history = train(MLP(1, [(4, "tanh"), 1], seed=0), [[0.0], [1.0]], [0.0, 1.0], epochs=50, lr=0.1)
    >>> len(history), history[-1] < history[0]
    (50, True)
    """
    if optimizer is None:
        optimizer = SGD(lr=lr)
    if optimizer.params is None:
        optimizer = optimizer.for_parameters(model.parameters())
    rows = [[to_float(v) for v in row] for row in X]
    targets = [t if isinstance(t, (list, tuple)) else to_float(t) for t in Y]
    if len(rows) != len(targets):
        raise ValueError(f"X has {len(rows)} rows but Y has {len(targets)} targets")
    history = []
    for _ in range(epochs):
        with gc_paused():
            loss = loss_fn([model(row) for row in rows], targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.data)
            del loss  # free the graph before the collector resumes
    return history
