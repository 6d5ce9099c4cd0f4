"""Assignment 1's linear classifiers: the multiclass SVM and softmax losses
of a weight matrix W (D, C), naive (loops over samples and classes, as the
notebooks time them) and vectorized (one product and the layer losses of
:mod:`xpnn.layers.losses`, so a GPU runs them as the other layers), and
``LinearClassifier`` trained by minibatch SGD.

The regularisation is ``reg_scale * reg * sum(W**2)`` with gradient
``2 * reg_scale * reg * W``: ``reg_scale`` 1 as CS231n since 2017, 0.5 as
in 2016 (``xpnn.compat.cs231n_2016``).

Arrays go to the active backend on entry; a loss comes back as a Python
float, a gradient on the backend, and predictions as NumPy labels (the
notebooks compare them with NumPy label arrays).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import backend
from ..layers import softmax_loss, svm_loss
from ..layers._util import as_device_array, as_scalar, check_int, check_number

__all__ = ["svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive",
           "softmax_loss_vectorized", "LinearClassifier", "LinearSVM", "Softmax"]


def _inputs(fn, W, X, y, reg):
    """(xp, W, X, y, reg): W, X and y on the active backend, their shapes
    and dtypes checked, and reg a finite float >= 0."""
    reg = check_number(f"{fn}: reg", as_scalar(reg), low=0.0)
    xp = backend.namespace()
    W = as_device_array(f"{fn}: W", W, "of weights (D, C)")
    X = as_device_array(f"{fn}: X", X, "of samples (N, D)")
    y = as_device_array(f"{fn}: y", y, "of labels (N,)", "integer class labels")
    for name, arr in (("W", W), ("X", X)):
        if not xp.isdtype(arr.dtype, ("real floating", "integral")):
            raise TypeError(f"{fn}: {name} must hold numbers, got dtype {arr.dtype}")
    if W.ndim != 2 or X.ndim != 2 or y.ndim != 1:
        raise ValueError(f"{fn}: W must be (D, C), X (N, D) and y (N,); got W {tuple(W.shape)}, "
                         f"X {tuple(X.shape)}, y {tuple(y.shape)}")
    if X.shape[1] != W.shape[0] or y.shape[0] != X.shape[0]:
        raise ValueError(f"{fn}: X {tuple(X.shape)} needs W with {X.shape[1]} rows and "
                         f"{X.shape[0]} labels; got W {tuple(W.shape)}, y {tuple(y.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{fn}: X is an empty batch; the loss is an average over samples")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"{fn}: y must hold integer class labels, got dtype {y.dtype}")
    return xp, W, X, y, reg


def _check_label_range(fn, lo, hi, C):
    if lo < 0 or hi >= C:
        raise ValueError(f"{fn}: labels must lie in [0, {C - 1}] for W's {C} classes, got "
                         f"values in [{lo}, {hi}]")


def _host_labels(fn, y, C):
    """The labels as Python ints (the loops index with them), checked."""
    labels = [int(v) for v in backend.to_numpy(y)]
    if labels:
        _check_label_range(fn, min(labels), max(labels), C)
    return labels


def _device_labels_checked(fn, y, C):
    """Check the labels' range under the caller's name (one read-back), so
    that the layer loss it calls next, inside ``backend.labels_checked()``,
    need not check them again."""
    if y.shape[0] and backend.labels_need_check(y):
        _check_label_range(fn, *backend.label_range(y), C)
    return backend.labels_checked()


def _regularised(xp, W, loss, dW, reg, reg_scale):
    k = reg_scale * reg
    return float(loss) + k * float(xp.sum(W * W)), dW + (2 * k) * W


def svm_loss_naive(W, X, y, reg, *, reg_scale=1.0):
    """Multiclass SVM loss (margin 1) and its gradient with explicit loops
    over the samples and the classes. Returns (loss, dW)."""
    xp, W, X, y, reg = _inputs("svm_loss_naive", W, X, y, reg)
    N, C = X.shape[0], W.shape[1]
    labels = _host_labels("svm_loss_naive", y, C)
    dW = xp.zeros_like(W)
    loss = 0.0
    for i in range(N):
        x = X[i, ...]
        scores = xp.matmul(x, W)
        correct = float(scores[labels[i]])
        for j in range(C):
            if j == labels[i]:
                continue
            margin = float(scores[j]) - correct + 1.0
            if margin > 0:
                loss += margin
                dW[:, j] = dW[:, j] + x
                dW[:, labels[i]] = dW[:, labels[i]] - x
    return _regularised(xp, W, loss / N, dW / N, reg, reg_scale)


def svm_loss_vectorized(W, X, y, reg, *, reg_scale=1.0):
    """The SVM loss and gradient of :func:`svm_loss_naive` without loops:
    scores ``X @ W``, the hinge loss of :func:`xpnn.layers.svm_loss`, and
    ``X.T @ dscores``."""
    xp, W, X, y, reg = _inputs("svm_loss_vectorized", W, X, y, reg)
    with _device_labels_checked("svm_loss_vectorized", y, W.shape[1]):
        loss, dscores = svm_loss(xp.matmul(X, W), y)
    return _regularised(xp, W, loss, xp.matmul(xp.matrix_transpose(X), dscores), reg, reg_scale)


def softmax_loss_naive(W, X, y, reg, *, reg_scale=1.0):
    """Softmax (cross-entropy) loss and gradient with an explicit loop over
    the samples (scores shifted by their maximum first). Returns (loss, dW)."""
    xp, W, X, y, reg = _inputs("softmax_loss_naive", W, X, y, reg)
    N, C = X.shape[0], W.shape[1]
    labels = _host_labels("softmax_loss_naive", y, C)
    dW = xp.zeros_like(W)
    loss = 0.0
    for i in range(N):
        x = X[i, ...]
        scores = xp.matmul(x, W)
        scores = scores - xp.max(scores)
        p = xp.exp(scores) / xp.sum(xp.exp(scores))
        loss -= float(xp.log(p[labels[i]]))
        for j in range(C):
            dW[:, j] = dW[:, j] + (p[j] - (1.0 if j == labels[i] else 0.0)) * x
    return _regularised(xp, W, loss / N, dW / N, reg, reg_scale)


def softmax_loss_vectorized(W, X, y, reg, *, reg_scale=1.0):
    """The softmax loss and gradient of :func:`softmax_loss_naive` without
    loops, through :func:`xpnn.layers.softmax_loss`."""
    xp, W, X, y, reg = _inputs("softmax_loss_vectorized", W, X, y, reg)
    with _device_labels_checked("softmax_loss_vectorized", y, W.shape[1]):
        loss, dscores = softmax_loss(xp.matmul(X, W), y)
    return _regularised(xp, W, loss, xp.matmul(xp.matrix_transpose(X), dscores), reg, reg_scale)


def training_set(X, y, fn="train"):
    """X (N, D) numbers and y (N,) integer labels >= 0 on the active backend,
    N >= 1, and the number of classes max(y) + 1."""
    xp = backend.namespace()
    X = as_device_array(f"{fn}: X", X, "of samples (N, D)")
    y = as_device_array(f"{fn}: y", y, "of labels (N,)", "integer class labels")
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"{fn}: X must be (N, D) with N >= 1 and y (N,); got X "
                         f"{tuple(X.shape)}, y {tuple(y.shape)}")
    if not xp.isdtype(X.dtype, ("real floating", "integral")):
        raise TypeError(f"{fn}: X must hold numbers, got dtype {X.dtype}")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"{fn}: y must hold integer class labels, got dtype {y.dtype}")
    lo, hi = backend.label_range(y)
    if lo < 0:
        raise ValueError(f"{fn}: class labels must be >= 0 (the classes are 0 .. max(y)), "
                         f"got values in [{lo}, {hi}]")
    return X, y, hi + 1


def check_sgd(fn, learning_rate, num_iters, batch_size):
    """The SGD loop's settings checked: (learning_rate > 0 finite,
    num_iters >= 0, batch_size >= 1)."""
    return (check_number(f"{fn}: learning_rate", as_scalar(learning_rate), low=0.0,
                         low_inclusive=False),
            check_int(f"{fn}: num_iters", as_scalar(num_iters), 0),
            check_int(f"{fn}: batch_size", as_scalar(batch_size), 1))


def warn_non_finite(loss, it, warned):
    """Warn, unless ``warned``, when the loss of iteration ``it`` is NaN or
    infinite (training goes on, as the course's loop does). Returns
    whether a warning has now been given."""
    if warned or math.isfinite(loss):
        return warned
    warnings.warn(f"train: the loss is {loss} at iteration {it}: the weights are diverging; "
                  f"lower the learning_rate (or the reg)", RuntimeWarning, stacklevel=3)
    return True


class LinearClassifier:
    """A linear classifier, scores ``X @ W`` with W (D, C), trained by
    minibatch SGD on :meth:`loss` (LinearSVM, Softmax)."""

    #: the factor of reg * sum(W**2) (0.5 in CS231n 2016)
    reg_scale = 1.0

    def __init__(self):
        self.W = None

    def train(self, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200,
              verbose=False):
        """Minibatch SGD. W starts (if it is None) as ``0.001 * randn(D, C)``
        from NumPy's global RandomState, C = max(y) + 1; each iteration draws
        ``batch_size`` rows with replacement by ``np.random.choice``. Prints
        the loss every 100 iterations when verbose, and warns once if it
        becomes NaN or infinite. Returns the losses."""
        X, y, num_classes = training_set(X, y)
        learning_rate, num_iters, batch_size = check_sgd("train", learning_rate, num_iters,
                                                         batch_size)
        reg = check_number("train: reg", as_scalar(reg), low=0.0)
        num_train, dim = X.shape
        if self.W is not None:
            W = as_device_array("train: the classifier's W", self.W, f"({dim}, C)")
            if W.ndim != 2 or W.shape[0] != dim or W.shape[1] < num_classes:
                raise ValueError(f"train: the classifier's W {tuple(W.shape)} does not fit X "
                                 f"{tuple(X.shape)} with {num_classes} classes; it must be "
                                 f"({dim}, C) with C >= {num_classes} (set W = None to "
                                 f"start again)")
        if self.W is None:
            self.W = 0.001 * np.random.randn(dim, num_classes)
        self.W = backend.to_device(self.W)
        history, warned = [], False
        for it in range(num_iters):
            idx = np.random.choice(num_train, batch_size)
            X_batch, y_batch = backend.take_rows(X, idx), backend.take_rows(y, idx)
            loss, grad = self.loss(X_batch, y_batch, reg)
            history.append(loss)
            warned = warn_non_finite(loss, it, warned)
            self.W = self.W - learning_rate * grad
            if verbose and it % 100 == 0:
                print("iteration %d / %d: loss %f" % (it, num_iters, loss))
        return history

    def predict(self, X):
        """The highest-scoring class of each row of X, as NumPy labels."""
        xp = backend.namespace()
        if self.W is None:
            raise RuntimeError("predict: the classifier has no weights yet; call train() first")
        X = as_device_array("predict: X", X, "of samples (N, D)")
        D = int(self.W.shape[0])
        if X.ndim != 2 or X.shape[1] != D:
            raise ValueError(f"predict: X must be (N, {D}), as the classifier's W "
                             f"{tuple(self.W.shape)} takes, got {tuple(X.shape)}")
        return backend.to_numpy(xp.argmax(xp.matmul(X, backend.to_device(self.W)), axis=1))

    def loss(self, X_batch, y_batch, reg):
        """(loss, dW) of a minibatch; set by the subclasses."""
        raise NotImplementedError("LinearClassifier.loss: use LinearSVM or Softmax, or "
                                  "define loss(X_batch, y_batch, reg) in a subclass")


class LinearSVM(LinearClassifier):
    """A linear classifier trained on the multiclass SVM loss."""

    def loss(self, X_batch, y_batch, reg):
        return svm_loss_vectorized(self.W, X_batch, y_batch, reg, reg_scale=self.reg_scale)


class Softmax(LinearClassifier):
    """A linear classifier trained on the softmax loss."""

    def loss(self, X_batch, y_batch, reg):
        return softmax_loss_vectorized(self.W, X_batch, y_batch, reg, reg_scale=self.reg_scale)
