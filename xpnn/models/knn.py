"""Assignment 1's k-nearest-neighbour classifier with Euclidean (L2)
distances, in the course's three versions: two loops, one loop and none
(the notebooks time them against each other, so the loops stay loops).

The distances are computed on the active backend (the no-loop version is
one product, ``|x|^2 + |t|^2 - 2 x.t``, clipped at zero before the square
root so round-off never makes a point's distance to itself NaN); they and the predicted labels
come back as NumPy arrays, which the notebooks plot and compare with NumPy
labels.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import device as _device

from .. import backend
from ..layers._util import as_device_array, as_scalar, check_int
from .linear import training_set

__all__ = ["KNearestNeighbor", "l2_distances"]


def l2_distances(X, T):
    """Euclidean distances (M, N) between the rows of X (M, D) and T (N, D),
    on their backend, without loops."""
    xp = backend.namespace_of(X=X, T=T)
    sq = xp.sum(X * X, axis=1)[:, None] + xp.sum(T * T, axis=1)[None, :] \
        - 2 * (xp.matmul(X, xp.matrix_transpose(T)))
    return xp.sqrt(xp.maximum(sq, xp.zeros_like(sq)))


def _points(fn, X):
    """X on the active backend as (M, D) points of a floating dtype: integer
    or boolean images become float64 (uint8 differences would wrap around);
    NaN or infinite values, which no neighbour is nearest to, are refused."""
    X = as_device_array(f"{fn}: X", X, "of points (M, D)")
    xp = backend.namespace()
    if X.ndim != 2:
        raise ValueError(f"{fn}: X must be 2-D points (M, D) (flatten images first: "
                         f"X.reshape(X.shape[0], -1)), got shape {tuple(X.shape)}")
    if xp.isdtype(X.dtype, ("integral", "bool")):
        X = xp.astype(X, xp.float64)
    elif not xp.isdtype(X.dtype, "real floating"):
        raise TypeError(f"{fn}: X must hold numbers, got dtype {X.dtype}")
    if X.size and not bool(backend.to_numpy(xp.all(xp.isfinite(X)))):
        raise ValueError(f"{fn}: X holds NaN or infinite values; every point needs finite "
                         f"coordinates")
    return X


class KNearestNeighbor:
    """k-NN with L2 distances: ``train`` memorises, ``predict`` votes."""

    #: the dtype of predict_labels' result: None keeps the training labels'
    #: (the course's code returns float64 zeros filled in; its editions set it)
    label_dtype = None

    def __init__(self):
        self.X_train = None
        self.y_train = None

    def train(self, X, y):
        """Memorise the training data X (N, D), N >= 1, and labels y (N,).
        Integer images (uint8 pixels) are kept as float64, so that no
        distance wraps around."""
        X, y, _ = training_set(_points("train", X), y)
        self.X_train, self.y_train = X, y

    def _test_points(self, fn, X):
        if self.X_train is None:
            raise RuntimeError(f"{fn}: call train(X, y) first")
        X = _points(fn, X)
        if X.shape[1] != self.X_train.shape[1]:
            raise ValueError(f"{fn}: X must be (M, {self.X_train.shape[1]}) like the training "
                             f"data, got {tuple(X.shape)}")
        return backend.namespace(), X

    def predict(self, X, k=1, num_loops=0):
        """Labels of the test points X (M, D) by a vote of their k nearest
        training points; num_loops (0, 1 or 2) picks the distance version."""
        versions = {0: self.compute_distances_no_loops, 1: self.compute_distances_one_loop,
                    2: self.compute_distances_two_loops}
        if isinstance(num_loops, bool) or num_loops not in versions:
            raise ValueError(f"Invalid value {num_loops!r} for num_loops: 0, 1 or 2")
        return self.predict_labels(versions[num_loops](X), k=k)

    def compute_distances_two_loops(self, X):
        """dists[i, j] = ||X[i] - X_train[j]||, one pair at a time (on the
        host, in NumPy: a device would wait for every pair)."""
        _, X = self._test_points("compute_distances_two_loops", X)
        Xh = np.asarray(backend.to_numpy(X), dtype=np.float64)
        Th = np.asarray(backend.to_numpy(self.X_train), dtype=np.float64)
        dists = np.zeros((Xh.shape[0], Th.shape[0]))
        for i in range(Xh.shape[0]):
            for j in range(Th.shape[0]):
                d = Xh[i] - Th[j]
                dists[i, j] = np.sqrt(np.sum(d * d))
        return dists

    def compute_distances_one_loop(self, X):
        """dists[i, :] for one test point at a time, against every training point."""
        xp, X = self._test_points("compute_distances_one_loop", X)
        rows = []
        for i in range(X.shape[0]):
            d = self.X_train - X[i, ...][None, :]
            rows.append(xp.sqrt(xp.sum(d * d, axis=1)))
        if not rows:
            return np.zeros((0, self.X_train.shape[0]))
        return np.asarray(backend.to_numpy(xp.stack(rows)), dtype=np.float64)

    def compute_distances_no_loops(self, X):
        """All distances at once (:func:`l2_distances`)."""
        xp, X = self._test_points("compute_distances_no_loops", X)
        return np.asarray(backend.to_numpy(l2_distances(X, self.X_train)), dtype=np.float64)

    def predict_labels(self, dists, k=1):
        """The most common label among each row's k nearest training points,
        ties going to the smaller label (and equal distances to the earlier
        training point)."""
        if self.y_train is None:
            raise RuntimeError("predict_labels: call train(X, y) first")
        N = self.y_train.shape[0]
        k = check_int("predict_labels: k", as_scalar(k), 1)
        if k > N:
            raise ValueError(f"predict_labels: k must be in [1, {N}] (the training points), "
                             f"got {k}")
        xp = backend.namespace()
        dists = backend.to_device(dists)
        if dists.ndim != 2 or dists.shape[1] != N:
            raise ValueError(f"predict_labels: dists must be (M, {N}), got {tuple(dists.shape)}")
        nearest = xp.argsort(dists, axis=1, stable=True)[:, :k]
        labels = xp.take(self.y_train, xp.reshape(nearest, (-1,)), axis=0)
        labels = xp.reshape(labels, nearest.shape)
        C = int(backend.to_numpy(xp.max(self.y_train))) + 1 if N else 0
        classes = xp.arange(C, dtype=labels.dtype, device=_device(labels))
        votes = xp.sum(xp.astype(labels[:, :, None] == classes[None, None, :], xp.int64),
                       axis=1)
        pred = backend.to_numpy(xp.argmax(votes, axis=1))   # the first maximum: smaller label
        dtype = self.label_dtype or backend.to_numpy(self.y_train[:1]).dtype
        return np.asarray(pred).astype(dtype)
