"""Convolutional networks: the course's three-layer net and a configurable ConvNet."""
from __future__ import annotations

import numpy as np

from ..nn.layers import (BatchNorm1d, BatchNorm2d, Conv2d, Dropout, GlobalAvgPool2d, Linear,
                         MaxPool2d, ReLU)
from ._course import CourseNet
from .registry import register

__all__ = ["ThreeLayerConvNet", "ConvNet"]


def _check_input_dim(input_dim):
    if len(input_dim) != 3 or any(int(d) < 1 for d in input_dim):
        raise ValueError(f"input_dim must be (C, H, W) with positive sizes, got {input_dim!r}")
    return tuple(int(d) for d in input_dim)


@register
class ThreeLayerConvNet(CourseNet):
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
        bn = bool(use_batchnorm)
        F, fs, Hd = int(num_filters), int(filter_size), int(hidden_dim)
        blocks = [[Conv2d(C, F, fs, padding=(fs - 1) // 2), *([BatchNorm2d(F)] if bn else []),
                   ReLU(), MaxPool2d(2)],
                  [Linear(F * (H // 2) * (W // 2), Hd), *([BatchNorm1d(Hd)] if bn else []),
                   ReLU()],
                  [Linear(Hd, int(num_classes))]]
        self._assemble(blocks, (C, H, W), rng, weight_scale)

    def _resized_kwargs(self, out_sizes):
        kw = self.init_kwargs
        return {**kw, "num_filters": out_sizes.get("W1", kw["num_filters"]),
                "hidden_dim": out_sizes.get("W2", kw["hidden_dim"])}


@register
class ConvNet(CourseNet):
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
        blocks_in = [[int(f) for f in block] for block in conv_blocks]
        if not blocks_in or any(not b or min(b) < 1 for b in blocks_in):
            raise ValueError(f"conv_blocks must be non-empty lists of positive filter "
                             f"counts, got {conv_blocks!r}")
        if filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd ('same' padding), got {filter_size}")
        keep = float(dropout_keep_ratio)
        if not 0.0 < keep <= 1.0:
            raise ValueError("dropout_keep_ratio is the probability of KEEPING a unit, in "
                             f"(0, 1]; got {dropout_keep_ratio!r}")
        if H >> len(blocks_in) < 1 or W >> len(blocks_in) < 1:
            raise ValueError(f"{len(blocks_in)} pooling blocks halve the {H}x{W} input below "
                             "1 pixel; use fewer blocks")
        self.init_kwargs = dict(input_dim=[C, H, W], conv_blocks=blocks_in,
                                filter_size=int(filter_size),
                                hidden_dims=[int(h) for h in hidden_dims],
                                num_classes=int(num_classes), batchnorm=bool(batchnorm),
                                global_pool=bool(global_pool), dropout_keep_ratio=keep,
                                weight_scale=weight_scale, reg=self.reg,
                                dtype=self.dtype.name, seed=seed)
        fs, c_in, h, w = int(filter_size), C, H, W
        blocks = []
        for block in blocks_in:
            for j, f in enumerate(block):
                blocks.append([Conv2d(c_in, f, fs, padding=(fs - 1) // 2),
                               *([BatchNorm2d(f)] if batchnorm else []), ReLU(),
                               *([MaxPool2d(2)] if j == len(block) - 1 else [])])
                c_in = f
            h, w = h // 2, w // 2
        if global_pool:
            blocks[-1].append(GlobalAvgPool2d())
        dims = [c_in if global_pool else c_in * h * w, *[int(d) for d in hidden_dims],
                int(num_classes)]
        for i in range(len(dims) - 1):
            if i == len(dims) - 2:
                blocks.append([Linear(dims[i], dims[i + 1])])
            else:
                blocks.append([Linear(dims[i], dims[i + 1]),
                               *([BatchNorm1d(dims[i + 1])] if batchnorm else []), ReLU(),
                               *([Dropout(keep=keep)] if keep != 1 else [])])
        self._assemble(blocks, (C, H, W), rng, weight_scale, keep, seed)

    def _resized_kwargs(self, out_sizes):
        kw, n, blocks = self.init_kwargs, 0, []
        for block in kw["conv_blocks"]:
            blocks.append([out_sizes.get(f"W{n + j + 1}", f) for j, f in enumerate(block)])
            n += len(block)
        hidden = [out_sizes.get(f"W{n + j + 1}", h) for j, h in enumerate(kw["hidden_dims"])]
        return {**kw, "conv_blocks": blocks, "hidden_dims": hidden}
