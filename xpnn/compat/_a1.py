"""Assignment 1 as each edition presents it, over xpnn.models.knn,
xpnn.models.linear and xpnn.features.

- CS231n: ``classifiers.k_nearest_neighbor.KNearestNeighbor``,
  ``classifiers.linear_svm`` / ``.softmax`` (the naive and vectorized
  losses of W (D, C)), ``classifiers.linear_classifier`` (LinearSVM,
  Softmax) and ``features``; ``reg * sum(W**2)`` since 2017, ``0.5 * reg *
  sum(W**2)`` in 2016. Predicted labels are float64, as the course's
  ``np.zeros(num_test)`` filled in.
- UCLA: class-based ``knn.KNN`` (``compute_distances(X, norm=None)``,
  ``compute_L2_distances_vectorized``), ``softmax.Softmax`` and ``svm.SVM``
  holding W (C, D), without regularisation, with ``loss``,
  ``loss_and_grad``, ``fast_loss_and_grad``, ``grad_check_sparse``,
  ``train`` (which draws new weights each call) and ``predict``.
"""
from __future__ import annotations

import numpy as np

from .. import backend, features
from ..layers._util import as_device_array, check_int, check_number
from ..models import knn as _knn
from ..models import linear as _linear
from ._variants import CourseSaving, _named


class _SavesW(CourseSaving):
    """save/load of a linear classifier: its W, as {"W": W}."""

    def _saved_params(self):
        return {"W": self.W}

    def _restore_params(self, params):
        self.W = params["W"]

    def _expected_shapes(self):
        # a new classifier (W None) takes a W of any size
        return {"W": None if self.W is None else tuple(int(d) for d in self.W.shape)}


def _losses(reg_scale):
    """The four loss functions with the course signature (W, X, y, reg)."""
    out = {}
    for name in ("svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive",
                 "softmax_loss_vectorized"):
        fn = getattr(_linear, name)
        if reg_scale != 1.0:
            def fn(W, X, y, reg, _fn=fn):
                return _fn(W, X, y, reg, reg_scale=reg_scale)
            fn.__name__ = fn.__qualname__ = name
            fn.__doc__ = (f"{getattr(_linear, name).__doc__}\n\n    Regularisation "
                          f"{reg_scale} * reg * sum(W**2), as in this edition.")
        out[name] = fn
    return out


def _course_labels(cls):
    return _named(type(cls.__name__, (cls,), {"label_dtype": np.float64,
                                              "__doc__": cls.__doc__}), cls.__name__)


FEATURES = {name: getattr(features, name) for name in features.__all__}


def cs231n_modules(reg_scale=1.0, features_2016=False):
    """The assignment 1 module table of a CS231n edition (``features_2016``:
    extract_features reports progress as 2016's did)."""
    losses = _losses(reg_scale)
    knn = {"KNearestNeighbor": _course_labels(_knn.KNearestNeighbor)}
    classes = {name: _named(type(name, (_SavesW, getattr(_linear, name)), {
        "reg_scale": reg_scale, "__doc__": getattr(_linear, name).__doc__}), name)
        for name in ("LinearClassifier", "LinearSVM", "Softmax")}
    linear_classifier = {**losses, **classes}
    feats = dict(FEATURES)
    if features_2016:
        feats["extract_features"] = features.extract_features_2016
    return {"classifiers.k_nearest_neighbor": knn,
            "classifiers.linear_svm": {k: v for k, v in losses.items() if "svm" in k},
            "classifiers.softmax": {k: v for k, v in losses.items() if "softmax" in k},
            "classifiers.linear_classifier": linear_classifier,
            "features": feats,
            "classifiers": {**knn, **linear_classifier}}


# ------------------------------------------------------------------ UCLA
class KNN(_knn.KNearestNeighbor):
    """UCLA's k-NN: ``train(X, y)``, ``compute_distances(X, norm=None)``
    (two loops, ``norm`` applied to each difference; default the L2 norm),
    ``compute_L2_distances_vectorized(X)``, ``predict_labels(dists, k=1)``
    (ties to the smaller label; float64 labels)."""

    label_dtype = np.float64

    def compute_distances(self, X, norm=None):
        if norm is None:
            return self.compute_distances_two_loops(X)
        _, Xd = self._test_points("compute_distances", X)
        Xh, Th = backend.to_numpy(Xd), backend.to_numpy(self.X_train)
        dists = np.zeros((Xh.shape[0], Th.shape[0]))
        for i in range(Xh.shape[0]):
            for j in range(Th.shape[0]):
                dists[i, j] = norm(Xh[i] - Th[j])
        return dists

    def compute_L2_distances_vectorized(self, X):
        return self.compute_distances_no_loops(X)


class _UCLALinear:
    """UCLA's linear classifiers: W (C, D) drawn by ``init_weights``; the
    losses are the CS231n ones of W.T without regularisation."""

    naive = fast = None
    weight_scale = 1.0

    def __init__(self, dims=[10, 3073]):  # noqa: B006 (the course's default, never mutated)
        self.init_weights(dims=dims)

    def init_weights(self, dims):
        """W of shape dims = (C, D) from ``np.random.normal``."""
        self.W = np.random.normal(size=dims) * self.weight_scale

    def _grad(self, fn, X, y):
        loss, dW = fn(np.asarray(backend.to_numpy(self.W)).T, X, y, 0.0)
        return loss, np.asarray(backend.to_numpy(dW)).T

    def loss(self, X, y):
        """The loss (loops over the samples)."""
        return self._grad(type(self).naive, X, y)[0]

    def loss_and_grad(self, X, y):
        """(loss, grad) with loops; grad has W's shape (C, D)."""
        return self._grad(type(self).naive, X, y)

    def fast_loss_and_grad(self, X, y):
        """(loss, grad) without loops."""
        return self._grad(type(self).fast, X, y)

    def grad_check_sparse(self, X, y, your_grad, num_checks=10, h=1e-5):
        """Print the numerical and analytic gradient of ``num_checks``
        random entries of W (drawn as the course draws them)."""
        W = self.W
        num_checks = check_int("grad_check_sparse: num_checks", num_checks, 0)
        h = check_number("grad_check_sparse: h", h, low=0.0, low_inclusive=False)
        for _ in range(num_checks):
            ix = tuple(np.random.randint(m) for m in W.shape)
            old = W[ix]
            W[ix] = old + h
            fxph = self.loss(X, y)
            W[ix] = old - h
            fxmh = self.loss(X, y)
            W[ix] = old
            num = (fxph - fxmh) / (2 * h)
            ana = float(your_grad[ix])
            rel = abs(num - ana) / (abs(num) + abs(ana)) if num or ana else 0.0
            print("numerical: %f analytic: %f, relative error: %e" % (num, ana, rel))

    def train(self, X, y, learning_rate=1e-3, num_iters=100, batch_size=200, verbose=False):
        """Minibatch SGD on fast_loss_and_grad from new weights (C = max(y)
        + 1); batch_size rows drawn with replacement by np.random.choice.
        Returns the losses."""
        with backend.use_backend("numpy"):   # checked where UCLA's classes compute
            X, y, num_classes = _linear.training_set(X, y)
        learning_rate, num_iters, batch_size = _linear.check_sgd("train", learning_rate,
                                                                 num_iters, batch_size)
        num_train = X.shape[0]
        self.init_weights(dims=[num_classes, X.shape[1]])
        history, warned = [], False
        for it in range(num_iters):
            idx = np.random.choice(np.arange(num_train), batch_size)
            loss, grad = self.fast_loss_and_grad(X[idx], y[idx])
            history.append(loss)
            warned = _linear.warn_non_finite(loss, it, warned)
            self.W = self.W - learning_rate * grad
            if verbose and it % 100 == 0:
                print("iteration {} / {}: loss {}".format(it, num_iters, loss))
        return history

    def predict(self, X):
        """The highest-scoring class of each row of X."""
        with backend.use_backend("numpy"):
            X = as_device_array("predict: X", X, "of samples (N, D)")
        W = np.asarray(backend.to_numpy(self.W))
        if X.ndim != 2 or X.shape[1] != W.shape[1]:
            raise ValueError(f"predict: X must be (N, {W.shape[1]}), as the classifier's W "
                             f"{W.shape} (C, D) takes, got {X.shape}")
        return np.argmax(X @ W.T, axis=1)


class Softmax(_UCLALinear):
    """UCLA's softmax classifier, W (C, D) initialised 1e-4 * normal."""
    naive = staticmethod(_linear.softmax_loss_naive)
    fast = staticmethod(_linear.softmax_loss_vectorized)
    weight_scale = 1e-4


class SVM(_UCLALinear):
    """UCLA's multiclass SVM (margin 1), W (C, D) initialised normal."""
    naive = staticmethod(_linear.svm_loss_naive)
    fast = staticmethod(_linear.svm_loss_vectorized)


UCLA_MODULES = {"knn": {"KNN": KNN}, "softmax": {"Softmax": Softmax}, "svm": {"SVM": SVM}}
