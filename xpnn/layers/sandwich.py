"""Convenience layers that chain the common layer sequences."""
from __future__ import annotations

from .conv import conv_backward_fast, conv_forward_fast
from .core import affine_backward, affine_forward, relu_backward, relu_forward
from .normalization import (batchnorm_backward_alt, batchnorm_forward, layernorm_backward,
                            layernorm_forward, spatial_batchnorm_backward,
                            spatial_batchnorm_forward)
from .pooling import _max_pool_relu_backward, _max_pool_relu_forward

__all__ = [
    "affine_relu_forward", "affine_relu_backward", "affine_bn_relu_forward",
    "affine_bn_relu_backward", "affine_ln_relu_forward", "affine_ln_relu_backward",
    "conv_relu_forward", "conv_relu_backward", "conv_relu_pool_forward",
    "conv_relu_pool_backward", "conv_bn_relu_forward", "conv_bn_relu_backward",
    "conv_bn_relu_pool_forward", "conv_bn_relu_pool_backward",
]


def affine_relu_forward(x, w, b):
    """affine -> ReLU. Returns out and cache (fc_cache, relu_cache)."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """affine -> batchnorm -> ReLU."""
    a, fc_cache = affine_forward(x, w, b)
    an, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, bn_cache, relu_cache = cache
    dan, dgamma, dbeta = batchnorm_backward_alt(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = affine_backward(dan, fc_cache)
    return dx, dw, db, dgamma, dbeta


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """affine -> layernorm -> ReLU."""
    a, fc_cache = affine_forward(x, w, b)
    an, ln_cache = layernorm_forward(a, gamma, beta, ln_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, ln_cache, relu_cache)


def affine_ln_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, ln_cache, relu_cache = cache
    dan, dgamma, dbeta = layernorm_backward(relu_backward(dout, relu_cache), ln_cache)
    dx, dw, db = affine_backward(dan, fc_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """conv -> ReLU."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """conv -> ReLU -> max pool, computed as conv -> max pool -> ReLU: a
    maximum commutes with the ReLU, so the output and the gradients are the
    same (up to the sign of a zero), and the ReLU sees a quarter of the
    values."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, pool_cache = _max_pool_relu_forward(a, pool_param)
    return out, (conv_cache, out, pool_cache)


def conv_relu_pool_backward(dout, cache):
    conv_cache, relu_cache, pool_cache = cache
    return conv_backward_fast(_max_pool_relu_backward(dout, relu_cache, pool_cache), conv_cache)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """conv -> spatial batchnorm -> ReLU."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    conv_cache, bn_cache, relu_cache = cache
    dan, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = conv_backward_fast(dan, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_bn_relu_pool_forward(x, w, b, gamma, beta, conv_param, bn_param, pool_param):
    """conv -> spatial batchnorm -> ReLU -> max pool, the ReLU computed after
    the pooling (see :func:`conv_relu_pool_forward`)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, pool_cache = _max_pool_relu_forward(an, pool_param)
    return out, (conv_cache, bn_cache, out, pool_cache)


def conv_bn_relu_pool_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    conv_cache, bn_cache, relu_cache, pool_cache = cache
    dp = _max_pool_relu_backward(dout, relu_cache, pool_cache)
    dan, dgamma, dbeta = spatial_batchnorm_backward(dp, bn_cache)
    dx, dw, db = conv_backward_fast(dan, conv_cache)
    return dx, dw, db, dgamma, dbeta
