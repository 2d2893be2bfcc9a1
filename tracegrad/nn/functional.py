"""Functions of class scores (logits), as ``torch.nn.functional`` has them: ``logsumexp``
(also ``tg.logsumexp``), ``softmax`` and ``log_softmax``.

They take the scores of one sample, a list, tuple or 1-D array of floats, traced values or
Values, or of several, a 2-D array or a list of rows (taken row by row, as torch's
``dim=-1``): lists give lists, arrays give arrays. The largest score is taken out before
``exp``, as PyTorch does, so no score overflows.

>>> import tracegrad as tg
>>> round(tg.logsumexp([1000.0, 1000.0]), 9), tg.nn.softmax([0.0, 0.0]), tg.nn.log_softmax([1e3, -1e3])
(1000.693147181, [0.5, 0.5], [0.0, -2000.0])
"""
import numpy as np

from .. import ops
from ..pytree import as_array


def _rows(fn, scores, who):
    """``fn`` of one row of scores, or of each row of a 2-D array / list of rows; arrays give arrays."""
    array = isinstance(scores, np.ndarray)
    rows = scores.tolist() if array else scores
    if not isinstance(rows, (list, tuple)) or not rows:
        raise TypeError(f"{who} takes a non-empty list, tuple or array of scores, got {type(scores).__name__} "
                        f"{scores!r:.60}")
    if isinstance(rows[0], (list, tuple)):
        out = [fn(list(row)) for row in rows]
    else:
        out = fn(list(rows))
    return as_array(out) if array and isinstance(out, list) else out


def shifted(scores, finite=False):
    """``(top, [exp(s - top) ...], their sum)``: top is the largest score (with ``finite``, 0 where
    that is ±inf, as torch.logsumexp has it; torch's softmax and cross_entropy give nan there)."""
    top = scores[0]
    for s in scores[1:]:
        top = ops.maximum(top, s)
    if finite:
        top = ops.where(ops.eq(ops.abs_(top), np.inf), 0.0, top)
    exps = [ops.exp(s - top) for s in scores]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    return top, exps, total


def _logsumexp(scores):
    top, _, total = shifted(scores, finite=True)
    return top + ops.log(total)


def logsumexp(scores):
    """``log(sum(exp(s)))`` of the scores, computed as ``max + log(sum(exp(s - max)))``: finite
    for scores of any size, as ``torch.logsumexp``; its gradient is the softmax.

    >>> import tracegrad as tg
    >>> tg.logsumexp([0.0, 0.0]) == tg.log(2.0), tg.grad(tg.logsumexp)([1e3, 1e3])
    (True, [0.5, 0.5])
    """
    return _rows(_logsumexp, scores, "logsumexp")


def softmax(scores):
    """``exp(s_i) / sum(exp(s))``, as ``torch.softmax(scores, dim=-1)``.

    >>> softmax([0.0, 1e3])
    [0.0, 1.0]
    """
    def one(scores):
        _, exps, total = shifted(scores)
        return [ops.div(e, total) for e in exps]
    return _rows(one, scores, "softmax")


def log_softmax(scores):
    """``s_i - logsumexp(s)``, as ``torch.log_softmax(scores, dim=-1)``: ``s_i - max - log(sum(exp(s - max)))``.

    >>> log_softmax([0.0, 0.0])
    [-0.6931471805599453, -0.6931471805599453]
    """
    def one(scores):
        top, _, total = shifted(scores)
        lse = ops.log(total)
        return [(s - top) - lse for s in scores]
    return _rows(one, scores, "log_softmax")
