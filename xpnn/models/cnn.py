"""Convolutional networks: the course's three-layer net and a configurable ConvNet."""
from __future__ import annotations

import numpy as np

from .base import LayeredModel, _as_rng

__all__ = ["ThreeLayerConvNet", "ConvNet"]

POOL2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _check_input_dim(input_dim):
    if len(input_dim) != 3 or any(int(d) < 1 for d in input_dim):
        raise ValueError(f"input_dim must be (C, H, W) with positive sizes, got {input_dim!r}")
    return tuple(int(d) for d in input_dim)


class ThreeLayerConvNet(LayeredModel):
    """conv - [spatial bn] - relu - 2x2 max pool - affine - [bn] - relu - affine - softmax.

    The convolution keeps the spatial size (stride 1, pad (filter_size-1)//2;
    filter_size must be odd). Weights W1 (F, C, fs, fs), W2 (F*H/2*W/2,
    hidden_dim), W3 (hidden_dim, num_classes), drawn in that order.
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32,
                 use_batchnorm=False, rng=None):
        super().__init__(reg=reg, dtype=dtype)
        C, H, W = _check_input_dim(input_dim)
        if filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd so the convolution keeps the "
                             f"input size, got {filter_size}")
        self.init_kwargs = dict(input_dim=[C, H, W], num_filters=int(num_filters),
                                filter_size=int(filter_size), hidden_dim=int(hidden_dim),
                                num_classes=int(num_classes), weight_scale=weight_scale,
                                reg=self.reg, dtype=self.dtype.name,
                                use_batchnorm=bool(use_batchnorm))
        self.use_batchnorm = bool(use_batchnorm)
        norm = "batchnorm" if use_batchnorm else None
        rng = _as_rng(rng)
        F, fs = int(num_filters), int(filter_size)
        self._add_layer(rng, "conv", 1, (F, C, fs, fs), weight_scale, norm=norm,
                        conv_param={"stride": 1, "pad": (fs - 1) // 2}, pool=dict(POOL2))
        self._add_layer(rng, "affine", 2, (F * (H // 2) * (W // 2), int(hidden_dim)),
                        weight_scale, norm=norm)
        self._add_layer(rng, "affine", 3, (int(hidden_dim), int(num_classes)), weight_scale,
                        relu=False)
        self._finish_init()


class ConvNet(LayeredModel):
    """A configurable deeper network:

        {[conv - (bn) - relu] x k - 2x2 max pool} per block
        - (global average pool) - {affine - (bn) - relu - (dropout)} x M - affine - softmax

    conv_blocks: filter counts per block, e.g. ((32, 32), (64, 64)); each conv
    is filter_size x filter_size with 'same' padding. hidden_dims: sizes of the
    M hidden affine layers. weight_scale None uses He initialisation.
    """

    def __init__(self, input_dim=(3, 32, 32), conv_blocks=((32,), (64,)), filter_size=3,
                 hidden_dims=(128,), num_classes=10, batchnorm=True, global_pool=False,
                 dropout_keep_ratio=1.0, weight_scale=None, reg=0.0, dtype=np.float32,
                 seed=None, rng=None):
        super().__init__(reg=reg, dtype=dtype)
        C, H, W = _check_input_dim(input_dim)
        blocks = [[int(f) for f in block] for block in conv_blocks]
        if not blocks or any(not b or min(b) < 1 for b in blocks):
            raise ValueError(f"conv_blocks must be non-empty lists of positive filter "
                             f"counts, got {conv_blocks!r}")
        if filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd ('same' padding), got {filter_size}")
        keep = float(dropout_keep_ratio)
        if not 0.0 < keep <= 1.0:
            raise ValueError("dropout_keep_ratio is the probability of KEEPING a unit, in "
                             f"(0, 1]; got {dropout_keep_ratio!r}")
        if H >> len(blocks) < 1 or W >> len(blocks) < 1:
            raise ValueError(f"{len(blocks)} pooling blocks halve the {H}x{W} input below "
                             "1 pixel; use fewer blocks")
        self.init_kwargs = dict(input_dim=[C, H, W], conv_blocks=blocks,
                                filter_size=int(filter_size),
                                hidden_dims=[int(h) for h in hidden_dims],
                                num_classes=int(num_classes), batchnorm=bool(batchnorm),
                                global_pool=bool(global_pool), dropout_keep_ratio=keep,
                                weight_scale=weight_scale, reg=self.reg,
                                dtype=self.dtype.name, seed=seed)
        rng = _as_rng(rng)
        norm = "batchnorm" if batchnorm else None
        fs, idx, c_in, h, w = int(filter_size), 1, C, H, W
        for block in blocks:
            for j, f in enumerate(block):
                last_in_block = j == len(block) - 1
                self._add_layer(rng, "conv", idx, (f, c_in, fs, fs), weight_scale, norm=norm,
                                conv_param={"stride": 1, "pad": (fs - 1) // 2},
                                pool=dict(POOL2) if last_in_block else None)
                idx, c_in = idx + 1, f
            h, w = h // 2, w // 2
        if global_pool:
            self.layers[-1]["global_pool"] = True
            flat = c_in
        else:
            flat = c_in * h * w
        dims = [flat, *[int(d) for d in hidden_dims], int(num_classes)]
        self.use_dropout = keep != 1
        for i in range(len(dims) - 1):
            last = i == len(dims) - 2
            spec = self._add_layer(rng, "affine", idx, (dims[i], dims[i + 1]), weight_scale,
                                   norm=None if last else norm)
            spec["relu"] = spec["dropout"] = not last
            idx += 1
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": keep}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self._finish_init()
