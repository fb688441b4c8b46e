"""Losses: each returns (loss, gradient of the loss with respect to its first argument)."""
from __future__ import annotations

import numpy as np

from . import anomaly
from ._checks import check_array
from .ops import log_softmax


def _weights(mask, shape, dtype):
    """mask: None or bool/0-1 array of exactly `shape` -> (weights of `shape`, their sum)."""
    if mask is None:
        return None, float(np.prod(shape))
    mask = check_array("mask", np.asarray(mask), shape)
    count = float(mask.sum())
    if count == 0:
        raise ValueError("mask: selects no position, so the mean loss is undefined")
    return mask.astype(dtype), count


def mse(pred: np.ndarray, target: np.ndarray, mask=None):
    """Mean squared error. pred, target: (..., O); mask: pred.shape[:-1] or None.

    Returns (loss, dpred) with the mean taken over the unmasked positions and the O outputs.
    """
    check_array("pred", pred, (..., None), finite=True)
    check_array("target", target, pred.shape, pred.dtype, finite=True)
    w, count = _weights(mask, pred.shape[:-1], pred.dtype)
    diff = pred - target
    if w is not None:
        diff *= w[..., None]
    count *= pred.shape[-1]
    loss, dpred = float((diff * diff).sum() / count), (2 / count) * diff
    anomaly.check_loss("mse", loss, dpred, pred, target)
    return loss, dpred


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray, mask=None):
    """Cross-entropy of softmax(logits) against class indices.

    logits: (..., C); targets: logits.shape[:-1] ints in [0, C); mask: same shape as targets or None.
    Returns (mean loss over unmasked positions, dlogits of logits' shape).
    """
    check_array("logits", logits, (..., None), finite=True)
    C = logits.shape[-1]
    check_array("targets", targets, logits.shape[:-1])
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets: expected integer class indices, got dtype {targets.dtype.name}")
    w, count = _weights(mask, targets.shape, logits.dtype)
    if w is not None:
        targets = np.where(w > 0, targets, 0)  # masked positions may hold any placeholder
    if targets.size and (targets.min() < 0 or targets.max() >= C):
        raise ValueError(f"targets: expected class indices in [0, {C}), got values in [{targets.min()}, {targets.max()}]")
    logp = log_softmax(logits)
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    dlogits = np.exp(logp)                   # softmax
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1, -1)
    if w is not None:
        nll = nll * w
        dlogits *= w[..., None]
    loss, dlogits = float(nll.sum() / count), dlogits / np.asarray(count, logits.dtype)
    anomaly.check_loss("softmax cross-entropy", loss, dlogits, logits, targets)
    return loss, dlogits
