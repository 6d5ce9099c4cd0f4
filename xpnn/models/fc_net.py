"""Fully connected networks with the course constructors."""
from __future__ import annotations

import numpy as np

from ..nn.layers import BatchNorm1d, Dropout, LayerNorm, Linear, ReLU
from ._course import CourseNet
from .registry import register

__all__ = ["TwoLayerNet", "FullyConnectedNet"]


@register
class FullyConnectedNet(CourseNet):
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
        self.num_layers = 1 + len(hidden_dims)
        norm = {"batchnorm": BatchNorm1d, "layernorm": LayerNorm}.get(normalization)
        dims = [int(input_dim), *hidden_dims, int(num_classes)]
        blocks = []
        for i in range(self.num_layers - 1):
            blocks.append([Linear(dims[i], dims[i + 1]), *([norm(dims[i + 1])] if norm else []),
                           ReLU(), *([Dropout(keep=keep)] if keep != 1 else [])])
        blocks.append([Linear(dims[-2], dims[-1])])
        self._assemble(blocks, (dims[0],), rng, weight_scale, keep, seed)

    def _resized_kwargs(self, out_sizes):
        hidden = [out_sizes.get(f"W{i + 1}", h) for i, h in enumerate(self.init_kwargs[
            "hidden_dims"])]
        return {**self.init_kwargs, "hidden_dims": hidden}


@register
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

    def _resized_kwargs(self, out_sizes):
        return {**self.init_kwargs, "hidden_dim": out_sizes.get("W1",
                                                                self.init_kwargs["hidden_dim"])}
