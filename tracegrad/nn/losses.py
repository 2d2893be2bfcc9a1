"""Losses: the mean over samples of a per-sample loss, on Values, floats or tracers.

Predictions and targets are lists, tuples or 1-D numpy arrays (what ``predict``
returns), or one prediction and its target.

>>> mse_loss([1.0, 2.0], [0.0, 0.0])
2.5
>>> hinge_loss([2.0, -0.5], [1, 1])
0.75
"""
import numbers

import numpy as np

from .. import ops
from ..custom import custom_vjp
from ..pytree import is_boxed
from .functional import shifted

_EPS = float(np.float32(1e-12))  # PyTorch's EPSILON in binary_cross_entropy's backward, a C++ float


def _samples(x, name):
    """A list, tuple or 1-D array as a list of samples; None for anything else."""
    if isinstance(x, np.ndarray) and x.ndim:
        if x.ndim > 1:
            raise ValueError(f"{name} takes one prediction and one target per sample (1-D), got an array "
                             f"of shape {x.shape}; for one output per sample pass a.ravel()")
        return x.tolist()
    return list(x) if isinstance(x, (list, tuple)) else None


def _pairs(preds, targets, name):
    ps = _samples(preds, name)
    if ps is None:  # one prediction and its target
        ps, ts = [preds], [targets]
    else:
        ts = _samples(targets, name)
        if ts is None:
            ts = list(targets) if hasattr(targets, "__iter__") else [targets]
    if len(ps) != len(ts) or not ps:
        raise ValueError(f"{name} needs as many targets as predictions (at least one), "
                         f"got {len(ps)} predictions and {len(ts)} targets")
    return ps, ts


def _mean(losses):
    return sum(losses) * (1.0 / len(losses))  # as micrograd's demo: the same bits


def mse_loss(preds, targets):
    """Mean of ``(pred - target) ** 2``.

    >>> import numpy as np
    >>> mse_loss([1.0, 2.0], [0.0, 0.0]), mse_loss(np.array([1.0, 2.0]), np.zeros(2))
    (2.5, 2.5)
    """
    preds, targets = _pairs(preds, targets, "mse_loss")
    return _mean([(p - t) ** 2 for p, t in zip(preds, targets)])


def hinge_loss(scores, targets):
    """Mean of ``relu(1 - target * score)``, targets in {-1, +1}: micrograd's max-margin loss.

    >>> hinge_loss([0.5, -2.0], [1.0, -1.0])
    0.25
    """
    scores, targets = _pairs(scores, targets, "hinge_loss")
    return _mean([ops.relu(1.0 + -t * s) for s, t in zip(scores, targets)])


@custom_vjp
def _bce(p, t):
    """One sample's loss, as ``torch.nn.functional.binary_cross_entropy`` computes it."""
    return (t - 1.0) * ops.maximum(ops.log1p(-p), -100.0) - t * ops.maximum(ops.log(p), -100.0)


@_bce.defvjp
def _bce_rule(g, out, p, t):
    # In p, PyTorch's backward: the chain rule through the clamped logs is 0/0 where p is 0 or 1
    # (sigmoid(z) is 1.0 for z > 36.7); this is finite, at most 1 / EPS. In t, PyTorch's -logit(p),
    # clamped as the logs are: the loss is linear in t with that slope, finite where p is 0 or 1.
    return (g * ops.div(p - t, ops.maximum((1.0 - p) * p, _EPS)),
            g * ops.clamp(-ops.log(ops.div(p, 1.0 - p)), -100.0, 100.0))


def binary_cross_entropy(preds, targets, from_logits=False):
    """Mean of ``-(t log p + (1 - t) log(1 - p))``, targets in [0, 1].

    With ``from_logits=True`` the predictions are logits z and the loss is computed as
    ``softplus(z) - t z``, which never overflows. With probabilities, the loss and its
    gradient are PyTorch's: each log is clamped at -100, and the gradient
    ``(p - t) / max(p (1 - p), 1e-12)`` stays finite where p is 0 or 1.

    >>> round(binary_cross_entropy([0.0], [1.0], from_logits=True), 6)
    0.693147
    >>> import tracegrad as tg
    >>> tg.grad(lambda p: binary_cross_entropy([p], [1.0]))(1.0)   # sigmoid(40.0) is 1.0
    0.0
    """
    preds, targets = _pairs(preds, targets, "binary_cross_entropy")
    if from_logits:
        return _mean([ops.softplus(z) - t * z for z, t in zip(preds, targets)])
    return _mean([_bce(p, t) for p, t in zip(preds, targets)])


def cross_entropy(logits, target):
    """Softmax cross-entropy of class scores and the true class, as
    ``torch.nn.functional.cross_entropy``: ``logsumexp(logits) - logits[target]``, finite for
    logits of any size.

    One sample: ``logits``, a list, tuple or 1-D array of C scores, and ``target``, the class:
    an int in ``[0, C)`` (an integral float too; a traced value or a Value is compared with
    each class index, as in the Trainer). Several: logits of N rows (a 2-D array, as
    ``model.predict`` returns, or a list of lists) and N targets: the mean, as PyTorch's.

    >>> cross_entropy([1000.0, -1000.0, 0.0], 1), cross_entropy([[0.0, 0.0], [0.0, 0.0]], [0, 1])
    (2000.0, 0.6931471805599453)
    >>> import tracegrad as tg
    >>> tg.grad(lambda z: cross_entropy(z, 0))([0.0, 0.0])
    [-0.5, 0.5]
    """
    rows = logits.tolist() if isinstance(logits, np.ndarray) else logits
    if not isinstance(rows, (list, tuple)) or not rows:
        raise TypeError(f"cross_entropy takes the class scores of a sample (a list or 1-D array) or of a batch "
                        f"(a 2-D array or a list of rows), got {type(logits).__name__} {logits!r:.60}")
    if not isinstance(rows[0], (list, tuple)):
        return _cross_entropy(list(rows), target)
    targets = target.tolist() if isinstance(target, np.ndarray) else target
    if not isinstance(targets, (list, tuple)) or len(targets) != len(rows):
        count = len(targets) if isinstance(targets, (list, tuple)) else type(target).__name__
        raise ValueError(f"cross_entropy of {len(rows)} rows of scores needs {len(rows)} targets, got {count}")
    return _mean([_cross_entropy(list(row), t) for row, t in zip(rows, targets)])


def _cross_entropy(scores, target):
    if len(scores) < 2:
        raise ValueError(f"cross_entropy needs a score per class (at least 2), got {len(scores)}")
    if is_boxed(target):  # a traced class: the sum of the scores times the one-hot flags (target == k);
        # not tg.where, whose masked cotangents would go down the whole model, one mask per class
        picked = scores[0] * ops.eq(target, 0.0)
        for k, s in enumerate(scores[1:], 1):
            picked = picked + s * ops.eq(target, float(k))
    else:
        picked = scores[_class_index(target, len(scores))]
    top, _, total = shifted(scores)
    return ops.log(total) - (picked - top)  # -log_softmax(scores)[target], as torch computes it


def _class_index(target, n):
    """``target`` as a class index in ``[0, n)``, or a TypeError / ValueError that says what it is."""
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (numbers.Real, np.number)):
        raise TypeError(f"cross_entropy takes the class index (an int) as target, got {type(target).__name__} "
                        f"{target!r:.60}; class probabilities are not supported")
    if isinstance(target, (numbers.Integral, np.integer)) or float(target).is_integer():
        if 0 <= target < n:
            return int(target)
    raise ValueError(f"the target of cross_entropy must be a class index 0 ... {n - 1} (an int), got {target!r}")
