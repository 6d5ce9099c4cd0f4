"""Classification losses: multiclass SVM (hinge) and softmax cross-entropy."""
from __future__ import annotations

from array_api_compat import device as _device

from .. import backend
from ._util import check_ndim, shape_str, xp_of

__all__ = ["softmax_loss", "svm_loss"]


def _one_hot(xp, x, y):
    """(N, C) 0/1 matrix of the (checked) labels."""
    classes = xp.arange(x.shape[1], dtype=y.dtype, device=_device(x))
    return y[:, None] == classes[None, :]


def _check_labels(xp, x, y, fn):
    if x.ndim == 2 and x.shape[0] == 0:
        raise ValueError(f"{fn}: x {shape_str(x)} is an empty batch; the loss is an average "
                         "over samples and needs at least one")
    check_ndim(f"{fn}: x", x, 2, "scores (N, C)")
    N, C = x.shape
    if y.ndim != 1 or y.shape[0] != N:
        raise ValueError(f"{fn}: y must have shape ({N},) to match x {shape_str(x)}, "
                         f"got {shape_str(y)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"{fn}: y must hold integer class labels, got dtype {y.dtype}")
    # off the host this reads two numbers back (a device sync), unless the
    # caller has checked every label already (backend.labels_checked)
    if N and backend.labels_need_check(y):
        lo, hi = backend.label_range(y)
        if lo < 0 or hi >= C:
            raise ValueError(f"{fn}: labels must lie in [0, {C - 1}] for {C} classes, "
                             f"got values in [{lo}, {hi}]")


def softmax_loss(x, y):
    """Softmax cross-entropy averaged over the batch.

    x: (N, C) scores; y: (N,) integer labels in [0, C).
    Returns (loss, dx) with loss a 0-d value of x's dtype and dx (N, C).
    """
    xp = xp_of(x=x, y=y)
    _check_labels(xp, x, y, "softmax_loss")
    fast = backend.kernels(x, y).softmax_loss(x, y)
    if fast is not None:
        return fast
    hot = _one_hot(xp, x, y)
    N = x.shape[0]
    shifted = x - xp.max(x, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    hotf = xp.astype(hot, x.dtype)
    loss = -xp.sum(log_probs * hotf) / N
    dx = (xp.exp(log_probs) - hotf) / N
    return loss, dx


def svm_loss(x, y):
    """Multiclass hinge loss (margin 1) averaged over the batch.

    x: (N, C) scores; y: (N,) integer labels in [0, C).
    Returns (loss, dx).
    """
    xp = xp_of(x=x, y=y)
    _check_labels(xp, x, y, "svm_loss")
    hot = _one_hot(xp, x, y)
    N = x.shape[0]
    hotf = xp.astype(hot, x.dtype)
    correct = xp.sum(x * hotf, axis=1, keepdims=True)
    margins = x - correct + 1.0
    active = (margins > 0) & ~hot
    zeros = xp.zeros_like(x)
    loss = xp.sum(xp.where(active, margins, zeros)) / N
    activef = xp.astype(active, x.dtype)
    dx = (activef - hotf * xp.sum(activef, axis=1, keepdims=True)) / N
    return loss, dx
