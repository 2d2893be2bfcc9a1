"""Losses: the mean over samples of a per-sample loss, on Values, floats or tracers.

>>> mse_loss([1.0, 2.0], [0.0, 0.0])
2.5
>>> hinge_loss([2.0, -0.5], [1, 1])
0.75
"""
from .. import ops


def _pairs(preds, targets, name):
    if not isinstance(preds, (list, tuple)):
        preds, targets = [preds], [targets]
    if not isinstance(targets, (list, tuple)):
        targets = list(targets)
    if len(preds) != len(targets) or not preds:
        raise ValueError(f"{name} needs as many targets as predictions (at least one), "
                         f"got {len(preds)} predictions and {len(targets)} targets")
    return preds, targets


def _mean(losses):
    return sum(losses) * (1.0 / len(losses))  # as micrograd's demo: the same bits


def mse_loss(preds, targets):
    """Mean of ``(pred - target) ** 2``.

    >>> mse_loss([1.0, 2.0], [0.0, 0.0])
    2.5
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


def binary_cross_entropy(preds, targets, from_logits=False):
    """Mean of ``-(t log p + (1 - t) log(1 - p))``, targets in [0, 1].

    With ``from_logits=True`` the predictions are logits z and the loss is computed as
    ``softplus(z) - t z``, which never overflows. With probabilities, each log is
    clamped at -100 as PyTorch does, so p = 0 or 1 gives a finite loss.

    >>> round(binary_cross_entropy([0.0], [1.0], from_logits=True), 6)
    0.693147
    """
    preds, targets = _pairs(preds, targets, "binary_cross_entropy")
    if from_logits:
        return _mean([ops.softplus(z) - t * z for z, t in zip(preds, targets)])
    losses = []
    for p, t in zip(preds, targets):
        log_p = ops.maximum(ops.log(p), -100.0)
        log_q = ops.maximum(ops.log(1.0 - p), -100.0)
        losses.append(-(t * log_p + (1.0 - t) * log_q))
    return _mean(losses)
