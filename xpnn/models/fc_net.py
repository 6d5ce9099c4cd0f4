"""Fully connected networks with the course constructors."""
from __future__ import annotations

import numpy as np

from .base import LayeredModel, _as_rng

__all__ = ["TwoLayerNet", "FullyConnectedNet"]


class FullyConnectedNet(LayeredModel):
    """{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax.

    hidden_dims: list of hidden layer sizes; input_dim, num_classes;
    dropout_keep_ratio: keep probability, 1 disables dropout (``dropout=`` is
    the older course spelling); normalization: None, 'batchnorm' or
    'layernorm'; reg: L2 strength; weight_scale: std of the initial weights;
    dtype: float32 or float64; seed: seeds the dropout layers (each forward
    reseeds, as in the course, so gradient checks are repeatable);
    rng: optional NumPy Generator/RandomState or int for the weights, which
    otherwise come from NumPy's global RandomState in the course's order.
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10,
                 dropout_keep_ratio=1, normalization=None, reg=0.0, weight_scale=1e-2,
                 dtype=np.float32, seed=None, dropout=None, rng=None):
        super().__init__(reg=reg, dtype=dtype)
        if dropout is not None:
            dropout_keep_ratio = dropout
        if normalization not in (None, "batchnorm", "layernorm"):
            raise ValueError("normalization must be None, 'batchnorm' or 'layernorm', "
                             f"got {normalization!r}")
        keep = float(dropout_keep_ratio)
        if not 0.0 < keep <= 1.0:
            raise ValueError("dropout_keep_ratio is the probability of KEEPING a unit, in "
                             f"(0, 1]; got {dropout_keep_ratio!r}")
        hidden_dims = [int(h) for h in hidden_dims]
        if any(h < 1 for h in hidden_dims) or int(input_dim) < 1 or int(num_classes) < 1:
            raise ValueError("hidden_dims, input_dim and num_classes must be positive, got "
                             f"{hidden_dims}, {input_dim}, {num_classes}")
        self.init_kwargs = dict(hidden_dims=hidden_dims, input_dim=int(input_dim),
                                num_classes=int(num_classes), dropout_keep_ratio=keep,
                                normalization=normalization, reg=self.reg,
                                weight_scale=weight_scale, dtype=self.dtype.name, seed=seed)
        self.normalization = normalization
        self.use_dropout = keep != 1
        self.num_layers = 1 + len(hidden_dims)
        rng = _as_rng(rng)
        dims = [int(input_dim), *hidden_dims, int(num_classes)]
        for i in range(self.num_layers):
            last = i == self.num_layers - 1
            spec = self._add_layer(rng, "affine", i + 1, (dims[i], dims[i + 1]), weight_scale,
                                   norm=None if last else normalization)
            spec["relu"] = spec["dropout"] = not last
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": keep}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self._finish_init()


class TwoLayerNet(FullyConnectedNet):
    """affine - relu - affine - softmax, the course's modular two-layer net
    (float64). input_dim, hidden_dim, num_classes, weight_scale, reg."""

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, reg=0.0, rng=None):
        super().__init__([hidden_dim], input_dim=input_dim, num_classes=num_classes,
                         reg=reg, weight_scale=weight_scale, dtype=np.float64, rng=rng)
        self.init_kwargs = dict(input_dim=int(input_dim), hidden_dim=int(hidden_dim),
                                num_classes=int(num_classes), weight_scale=weight_scale,
                                reg=self.reg)
