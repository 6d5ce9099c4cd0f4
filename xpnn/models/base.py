"""The engine shared by the course models: an explicit list of layer specs.

Each spec is a dict describing one weight layer and what follows it::

    {"kind": "conv" | "affine", "W": "W1", "b": "b1",
     "conv_param": {...},                      # conv only
     "norm": None | "batchnorm" | "layernorm", "gamma": "gamma1", "beta": "beta1",
     "relu": True, "pool": None | pool_param, "global_pool": False,
     "dropout": False}

so the forward pass of a layer is weight -> norm -> ReLU -> pool -> dropout,
and the backward pass walks the same list in reverse. Because the structure
is data, other tools (pruning, shrinking, checkpoints) can read how layers
connect instead of guessing from parameter names.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..layers.conv import conv_backward_fast_params
from ..layers import (affine_backward, affine_forward, batchnorm_backward_alt,
                      batchnorm_forward, conv_forward_fast,
                      dropout_backward, dropout_forward, global_avg_pool_backward,
                      global_avg_pool_forward, layernorm_backward, layernorm_forward,
                      max_pool_backward_fast, max_pool_forward_fast, relu_backward,
                      relu_forward, softmax_loss, spatial_batchnorm_backward,
                      spatial_batchnorm_forward)

__all__ = ["DeviceModel", "LayeredModel", "draw_normal", "init_weight"]


def draw_normal(rng, shape):
    """Standard normals from ``rng`` (a NumPy Generator/RandomState) or, when
    None, from NumPy's global RandomState in call order, as the course does."""
    if rng is None:
        return np.random.randn(*shape)
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(shape)
    return rng.randn(*shape)


def init_weight(rng, shape, fan_in, weight_scale=None):
    """Normal weights of ``shape``: std ``weight_scale``, or He's
    sqrt(2 / fan_in) when it is None; drawn as :func:`draw_normal` draws."""
    scale = np.sqrt(2.0 / fan_in) if weight_scale is None else float(weight_scale)
    return scale * draw_normal(rng, shape)


def _as_rng(seed_or_rng):
    if seed_or_rng is None or isinstance(seed_or_rng, (np.random.Generator,
                                                       np.random.RandomState)):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


class DeviceModel:
    """What every xpnn model shares: ``params`` (the dict the Solver
    updates), ``reg``, ``dtype``, the batch-norm ``bn_params`` (running
    statistics), and the moves of all of them (and pruning masks) between
    backends."""

    #: set by subclasses: the constructor arguments, for checkpoints
    init_kwargs: dict

    def __init__(self, reg=0.0, dtype=np.float32):
        self.reg = float(reg)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating type (float32 or float64), got {dtype!r}")
        self.params: dict = {}
        self.bn_params: list[dict] = []

    def _finish_init(self):
        """Cast params to the model dtype and move them to the active backend."""
        self.params = backend.to_device(
            {k: np.asarray(v).astype(self.dtype) for k, v in self.params.items()})
        for p in self.bn_params:
            for key in ("running_mean", "running_var"):
                if key in p:
                    p[key] = backend.to_device(np.asarray(p[key]).astype(self.dtype))

    # ------------------------------------------------------------ device moves
    def _sync_device(self):
        """Forgiving boundary: params assigned from NumPy (as notebooks do)
        are moved to the active backend, once."""
        name = backend.get_backend()
        for k, v in self.params.items():
            if backend.backend_of(v) != name:
                self.params[k] = backend.to_device(v, name)
        for p in self.bn_params:
            for key in ("running_mean", "running_var"):
                if key in p and backend.backend_of(p[key]) != name:
                    p[key] = backend.to_device(p[key], name)
        masks = getattr(self, "masks", None)  # pruning masks travel with their weights
        if masks:
            for k, m in masks.items():
                if backend.backend_of(m) != name:
                    masks[k] = backend.to_device(m, name)

    def to_device(self, name=None):
        """Move params, normalisation running statistics and pruning masks
        to a backend."""
        with backend.use_backend(name or backend.get_backend()):
            self._sync_device()
        return self

    def _input(self, X, y):
        xp = backend.namespace()
        X = backend.to_device(X)
        X = xp.astype(X, getattr(xp, self.dtype.name), copy=False)  # no copy (no GPU launch) if typed
        if y is not None:
            y = backend.to_device(y)
        return xp, X, y


class LayeredModel(DeviceModel):
    """The course models' engine: the layer specs, and loss()."""

    def __init__(self, reg=0.0, dtype=np.float32):
        super().__init__(reg, dtype)
        self.layers: list[dict] = []
        self.dropout_param: dict = {}
        self.use_dropout = False

    # ------------------------------------------------------------ building
    def _add_layer(self, rng, kind, idx, w_shape, weight_scale, norm=None, **extra):
        W, b = f"W{idx}", f"b{idx}"
        fan_in = int(np.prod(w_shape[1:])) if kind == "conv" else w_shape[0]
        out_dim = w_shape[0] if kind == "conv" else w_shape[1]
        self.params[W] = init_weight(rng, w_shape, fan_in, weight_scale)
        self.params[b] = np.zeros(out_dim)
        spec = {"kind": kind, "W": W, "b": b, "norm": norm, "relu": True, "pool": None,
                "global_pool": False, "dropout": False}
        if norm is not None:
            spec["gamma"], spec["beta"] = f"gamma{idx}", f"beta{idx}"
            self.params[spec["gamma"]] = np.ones(out_dim)
            self.params[spec["beta"]] = np.zeros(out_dim)
            spec["bn_index"] = len(self.bn_params)
            # zero running statistics, as the course's layers start from, so a
            # test-mode pass before any training is defined (and repeats the course)
            self.bn_params.append({"mode": "train", "running_mean": np.zeros(out_dim),
                                   "running_var": np.zeros(out_dim)}
                                  if norm == "batchnorm" else {})
        spec.update(extra)
        self.layers.append(spec)
        return spec

    # ------------------------------------------------------------ forward/backward
    def _set_mode(self, mode):
        for p in self.bn_params:
            p["mode"] = mode
        if self.use_dropout:
            self.dropout_param["mode"] = mode

    def _forward_layer(self, spec, h):
        P = self.params
        cache = {}
        if spec["kind"] == "conv":
            h, cache["w"] = conv_forward_fast(h, P[spec["W"]], P[spec["b"]], spec["conv_param"])
        else:
            h, cache["w"] = affine_forward(h, P[spec["W"]], P[spec["b"]])
        norm = spec["norm"]
        if norm is not None:
            g, be = P[spec["gamma"]], P[spec["beta"]]
            bnp = self.bn_params[spec["bn_index"]]
            if norm == "layernorm":
                h, cache["n"] = layernorm_forward(h, g, be, bnp)
            elif spec["kind"] == "conv":
                h, cache["n"] = spatial_batchnorm_forward(h, g, be, bnp)
            else:
                h, cache["n"] = batchnorm_forward(h, g, be, bnp)
        if spec["relu"]:
            h, cache["r"] = relu_forward(h)
        if spec["pool"] is not None:
            h, cache["p"] = max_pool_forward_fast(h, spec["pool"])
        if spec["global_pool"]:
            h, cache["g"] = global_avg_pool_forward(h)
        if spec["dropout"] and self.use_dropout:
            h, cache["d"] = dropout_forward(h, self.dropout_param)
        return h, cache

    def _backward_layer(self, spec, dh, cache, grads, need_dx=True):
        if "d" in cache:
            dh = dropout_backward(dh, cache["d"])
        if "g" in cache:
            dh = global_avg_pool_backward(dh, cache["g"])
        if "p" in cache:
            dh = max_pool_backward_fast(dh, cache["p"])
        if "r" in cache:
            dh = relu_backward(dh, cache["r"])
        if "n" in cache:
            if spec["norm"] == "layernorm":
                dh, dg, db = layernorm_backward(dh, cache["n"])
            elif spec["kind"] == "conv":
                dh, dg, db = spatial_batchnorm_backward(dh, cache["n"])
            else:
                dh, dg, db = batchnorm_backward_alt(dh, cache["n"])
            grads[spec["gamma"]], grads[spec["beta"]] = dg, db
        if spec["kind"] == "conv":
            dh, grads[spec["W"]], grads[spec["b"]] = conv_backward_fast_params(
                dh, cache["w"], need_dx=need_dx)
        else:
            dh, grads[spec["W"]], grads[spec["b"]] = affine_backward(dh, cache["w"])
        return dh

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (test mode); else (loss, grads) with
        grads keyed like params. Loss is softmax cross-entropy plus
        ``0.5 * reg * sum(W**2)`` over every weight matrix."""
        self._sync_device()
        xp, h, y = self._input(X, y)
        self._set_mode("test" if y is None else "train")
        caches = []
        for spec in self.layers:
            h, cache = self._forward_layer(spec, h)
            caches.append(cache)
        if y is None:
            return h
        loss, dh = softmax_loss(h, y)
        grads: dict = {}
        first = self.layers[0]
        for spec, cache in zip(reversed(self.layers), reversed(caches)):
            # nothing consumes the input gradient of the first layer: skip it
            dh = self._backward_layer(spec, dh, cache, grads, need_dx=spec is not first)
        if self.reg:  # no work (on a GPU, no kernel launches) when reg == 0
            for spec in self.layers:
                W = self.params[spec["W"]]
                loss = loss + 0.5 * self.reg * xp.sum(W * W)
                grads[spec["W"]] = grads[spec["W"]] + self.reg * W
        return loss, grads

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.init_kwargs.items())
        return f"{type(self).__name__}({args})"
