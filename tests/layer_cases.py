"""One table of every differentiable layer: how to build inputs, run it
forward, run it backward, and which inputs get gradients.

``make(r)`` returns NumPy float64 inputs (and fixed parameters); ``fwd(a)``
runs the layer on a dict of backend arrays and returns (out, cache);
``bwd(dout, cache)`` returns the gradients in the order of ``grads``.
"""
from __future__ import annotations

import functools

from xpnn.layers import *  # noqa: F403

CONV = {"stride": 2, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
POOL_OVERLAP = {"pool_height": 3, "pool_width": 2, "stride": 1}


def _tuple(f):
    @functools.wraps(f)
    def g(dout, cache):
        r = f(dout, cache)
        return r if isinstance(r, tuple) else (r,)
    return g


def case(make, fwd, bwd, grads, scalar=False, dout="dout"):
    """``dout``: the backward's name for its upstream gradient (the course's
    recurrent backwards call it dnext_h or dh)."""
    return dict(make=make, fwd=fwd, bwd=_tuple(bwd), grads=grads, scalar=scalar, dout=dout)


def _lstm_step_forward(a):
    """An LSTM step as a one-output layer: its next_h (next_c's gradient is
    zero, so the backward is checked through next_h alone)."""
    next_h, _, cache = lstm_step_forward(a["x"], a["prev_h"], a["prev_c"], a["Wx"], a["Wh"],
                                         a["b"])
    return next_h, cache


def _lstm_step_backward(dnext_h, cache):
    return lstm_step_backward(dnext_h, dnext_h * 0, cache)


_lstm_step_backward.__name__ = "lstm_step_backward"


def _recurrent(step, k):
    """Inputs of an RNN (k = 1) or LSTM (k = 4) step (N=3, D=4, H=5) or
    sequence (T=4), scaled so the gates are neither saturated nor linear."""
    def make(r):
        x = r.randn(3, 4, 4) if not step else r.randn(3, 4)
        a = dict(x=x, Wx=r.randn(4, k * 5) / 2, Wh=r.randn(5, k * 5) / 2, b=r.randn(k * 5) / 2)
        a["prev_h" if step else "h0"] = r.randn(3, 5)
        if step and k == 4:
            a["prev_c"] = r.randn(3, 5)
        return a
    return make


CASES = {
    "affine": case(
        lambda r: dict(x=r.randn(4, 2, 3), w=r.randn(6, 5), b=r.randn(5)),
        lambda a: affine_forward(a["x"], a["w"], a["b"]), affine_backward, ("x", "w", "b")),
    "relu": case(lambda r: dict(x=r.randn(5, 6)),
                 lambda a: relu_forward(a["x"]), relu_backward, ("x",)),
    "leaky_relu": case(lambda r: dict(x=r.randn(5, 6)),
                       lambda a: leaky_relu_forward(a["x"], 0.1), leaky_relu_backward, ("x",)),
    "elu": case(lambda r: dict(x=2 * r.randn(5, 6)),
                lambda a: elu_forward(a["x"], 0.7), elu_backward, ("x",)),
    "prelu_channels": case(lambda r: dict(x=r.randn(3, 4, 2, 5), a=r.rand(4)),
                           lambda a: prelu_forward(a["x"], a["a"]), prelu_backward, ("x", "a")),
    "prelu_shared": case(lambda r: dict(x=r.randn(5, 6), a=r.rand(1)),
                         lambda a: prelu_forward(a["x"], a["a"]), prelu_backward, ("x", "a")),
    "sigmoid": case(lambda r: dict(x=3 * r.randn(5, 6)),
                    lambda a: sigmoid_forward(a["x"]), sigmoid_backward, ("x",)),
    "tanh": case(lambda r: dict(x=r.randn(5, 6)),
                 lambda a: tanh_forward(a["x"]), tanh_backward, ("x",)),
    "dropout": case(lambda r: dict(x=r.randn(8, 9) + 10),
                    lambda a: dropout_forward(a["x"], {"mode": "train", "p": 0.6, "seed": 123}),
                    dropout_backward, ("x",)),
    "batchnorm": case(
        lambda r: dict(x=5 * r.randn(6, 5) + 12, gamma=r.randn(5), beta=r.randn(5)),
        lambda a: batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"}),
        batchnorm_backward, ("x", "gamma", "beta")),
    "batchnorm_alt": case(
        lambda r: dict(x=5 * r.randn(6, 5) + 12, gamma=r.randn(5), beta=r.randn(5)),
        lambda a: batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"}),
        batchnorm_backward_alt, ("x", "gamma", "beta")),
    "batchnorm_test_mode": case(
        lambda r: dict(x=r.randn(6, 5), gamma=r.randn(5), beta=r.randn(5),
                       rm=r.randn(5), rv=r.rand(5) + 0.5),
        lambda a: batchnorm_forward(a["x"], a["gamma"], a["beta"],
                                    {"mode": "test", "running_mean": a["rm"],
                                     "running_var": a["rv"]}),
        batchnorm_backward, ("x", "gamma", "beta")),
    "layernorm": case(
        lambda r: dict(x=5 * r.randn(4, 7) + 12, gamma=r.randn(7), beta=r.randn(7)),
        lambda a: layernorm_forward(a["x"], a["gamma"], a["beta"], {}),
        layernorm_backward, ("x", "gamma", "beta")),
    "spatial_batchnorm": case(
        lambda r: dict(x=5 * r.randn(2, 3, 4, 5) + 12, gamma=r.randn(3), beta=r.randn(3)),
        lambda a: spatial_batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"}),
        spatial_batchnorm_backward, ("x", "gamma", "beta")),
    "spatial_groupnorm": case(
        lambda r: dict(x=5 * r.randn(2, 6, 4, 5) + 12, gamma=r.randn(1, 6, 1, 1),
                       beta=r.randn(1, 6, 1, 1)),
        lambda a: spatial_groupnorm_forward(a["x"], a["gamma"], a["beta"], 2, {}),
        spatial_groupnorm_backward, ("x", "gamma", "beta")),
    "conv_naive": case(
        lambda r: dict(x=r.randn(2, 2, 5, 5), w=r.randn(3, 2, 3, 3), b=r.randn(3)),
        lambda a: conv_forward_naive(a["x"], a["w"], a["b"], CONV),
        conv_backward_naive, ("x", "w", "b")),
    "conv_fast": case(
        lambda r: dict(x=r.randn(2, 3, 7, 6), w=r.randn(4, 3, 3, 2), b=r.randn(4)),
        lambda a: conv_forward_fast(a["x"], a["w"], a["b"], {"stride": 2, "pad": 2}),
        conv_backward_fast, ("x", "w", "b")),
    "conv_fast_stride1": case(
        lambda r: dict(x=r.randn(2, 2, 5, 5), w=r.randn(3, 2, 3, 3), b=r.randn(3)),
        lambda a: conv_forward_fast(a["x"], a["w"], a["b"], {"stride": 1, "pad": 1}),
        conv_backward_fast, ("x", "w", "b")),
    "max_pool_naive": case(
        lambda r: dict(x=r.randn(2, 2, 6, 6)),
        lambda a: max_pool_forward_naive(a["x"], POOL), max_pool_backward_naive, ("x",)),
    "max_pool_fast": case(
        lambda r: dict(x=r.randn(2, 2, 6, 7)),
        lambda a: max_pool_forward_fast(a["x"], POOL), max_pool_backward_fast, ("x",)),
    "max_pool_fast_overlap": case(
        lambda r: dict(x=r.randn(2, 2, 6, 5)),
        lambda a: max_pool_forward_fast(a["x"], POOL_OVERLAP), max_pool_backward_fast, ("x",)),
    "avg_pool": case(
        lambda r: dict(x=r.randn(2, 2, 5, 6)),
        lambda a: avg_pool_forward(a["x"], POOL), avg_pool_backward, ("x",)),
    "avg_pool_overlap": case(
        lambda r: dict(x=r.randn(2, 2, 6, 5)),
        lambda a: avg_pool_forward(a["x"], POOL_OVERLAP), avg_pool_backward, ("x",)),
    "global_avg_pool": case(
        lambda r: dict(x=r.randn(2, 3, 4, 5)),
        lambda a: global_avg_pool_forward(a["x"]), global_avg_pool_backward, ("x",)),
    "affine_relu": case(
        lambda r: dict(x=r.randn(4, 6), w=r.randn(6, 5), b=r.randn(5)),
        lambda a: affine_relu_forward(a["x"], a["w"], a["b"]), affine_relu_backward,
        ("x", "w", "b")),
    "affine_bn_relu": case(
        lambda r: dict(x=r.randn(5, 6), w=r.randn(6, 4), b=r.randn(4),
                       gamma=r.randn(4), beta=r.randn(4)),
        lambda a: affine_bn_relu_forward(a["x"], a["w"], a["b"], a["gamma"], a["beta"],
                                         {"mode": "train"}),
        affine_bn_relu_backward, ("x", "w", "b", "gamma", "beta")),
    "affine_ln_relu": case(
        lambda r: dict(x=r.randn(5, 6), w=r.randn(6, 4), b=r.randn(4),
                       gamma=r.randn(4), beta=r.randn(4)),
        lambda a: affine_ln_relu_forward(a["x"], a["w"], a["b"], a["gamma"], a["beta"], {}),
        affine_ln_relu_backward, ("x", "w", "b", "gamma", "beta")),
    "conv_relu": case(
        lambda r: dict(x=r.randn(2, 2, 5, 5), w=r.randn(3, 2, 3, 3), b=r.randn(3)),
        lambda a: conv_relu_forward(a["x"], a["w"], a["b"], {"stride": 1, "pad": 1}),
        conv_relu_backward, ("x", "w", "b")),
    "conv_relu_pool": case(
        lambda r: dict(x=r.randn(2, 2, 6, 6), w=r.randn(3, 2, 3, 3), b=r.randn(3)),
        lambda a: conv_relu_pool_forward(a["x"], a["w"], a["b"], {"stride": 1, "pad": 1}, POOL),
        conv_relu_pool_backward, ("x", "w", "b")),
    "conv_bn_relu": case(
        lambda r: dict(x=r.randn(2, 2, 5, 5), w=r.randn(3, 2, 3, 3), b=r.randn(3),
                       gamma=r.randn(3), beta=r.randn(3)),
        lambda a: conv_bn_relu_forward(a["x"], a["w"], a["b"], a["gamma"], a["beta"],
                                       {"stride": 1, "pad": 1}, {"mode": "train"}),
        conv_bn_relu_backward, ("x", "w", "b", "gamma", "beta")),
    "conv_bn_relu_pool": case(
        lambda r: dict(x=r.randn(2, 2, 6, 6), w=r.randn(3, 2, 3, 3), b=r.randn(3),
                       gamma=r.randn(3), beta=r.randn(3)),
        lambda a: conv_bn_relu_pool_forward(a["x"], a["w"], a["b"], a["gamma"], a["beta"],
                                            {"stride": 1, "pad": 1}, {"mode": "train"}, POOL),
        conv_bn_relu_pool_backward, ("x", "w", "b", "gamma", "beta")),
    "rnn_step": case(
        _recurrent(True, 1),
        lambda a: rnn_step_forward(a["x"], a["prev_h"], a["Wx"], a["Wh"], a["b"]),
        rnn_step_backward, ("x", "prev_h", "Wx", "Wh", "b"), dout="dnext_h"),
    "rnn": case(
        _recurrent(False, 1), lambda a: rnn_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"]),
        rnn_backward, ("x", "h0", "Wx", "Wh", "b"), dout="dh"),
    "lstm_step": case(
        _recurrent(True, 4), _lstm_step_forward, _lstm_step_backward,
        ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), dout="dnext_h"),
    "lstm": case(
        _recurrent(False, 4), lambda a: lstm_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"]),
        lstm_backward, ("x", "h0", "Wx", "Wh", "b"), dout="dh"),
    "temporal_affine": case(
        lambda r: dict(x=r.randn(2, 3, 4), w=r.randn(4, 5), b=r.randn(5)),
        lambda a: temporal_affine_forward(a["x"], a["w"], a["b"]), temporal_affine_backward,
        ("x", "w", "b")),
}


# ---------------------------------------------------------------- layer objects (xpnn.nn)
def _layer_objects():
    from xpnn.nn import (ELU, LSTM, RNN, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout,
                         Embedding, Flatten, GlobalAvgPool2d, GroupNorm, LayerNorm, LeakyReLU,
                         Linear, MaxPool2d, PReLU, ReLU, Residual, TemporalAffine)

    def row(make, shape, shrink="equal", vocab=None):
        return dict(make=make, shape=shape, shrink=shrink, vocab=vocab)
    no_rule = "declares no channel rule"
    return {
        "Conv2d": row(lambda: Conv2d(3, 4, (3, 2), stride=2, padding=1), (3, 7, 6)),
        "Linear": row(lambda: Linear(12, 5), (12,)),
        "BatchNorm2d": row(lambda: BatchNorm2d(3), (3, 4, 5)),
        "BatchNorm1d": row(lambda: BatchNorm1d(6), (6,)),
        "LayerNorm": row(lambda: LayerNorm(6), (6,), shrink="feeds a layer norm"),
        "GroupNorm": row(lambda: GroupNorm(3, 6), (6, 3, 4), shrink="feeds a group norm"),
        "ReLU": row(lambda: ReLU(), (3, 4, 4)),
        "LeakyReLU": row(lambda: LeakyReLU(0.1), (3, 4, 4)),
        "ELU": row(lambda: ELU(0.7), (5,)),
        "PReLU": row(lambda: PReLU(3, init=0.3), (3, 4, 4)),
        "PReLU_shared": row(lambda: PReLU(), (6,)),
        "MaxPool2d": row(lambda: MaxPool2d(2), (3, 6, 5)),
        "MaxPool2d_overlap": row(lambda: MaxPool2d((3, 2), stride=1), (3, 5, 5)),
        "AvgPool2d": row(lambda: AvgPool2d(3, stride=2), (3, 7, 6)),
        "AvgPool2d_padding": row(lambda: AvgPool2d(3, stride=2, padding=1), (3, 7, 6)),
        "GlobalAvgPool2d": row(lambda: GlobalAvgPool2d(), (3, 4, 5)),
        "Dropout": row(lambda: Dropout(drop=0.3), (3, 4, 4)),
        "Flatten": row(lambda: Flatten(), (3, 2, 2)),
        "Residual": row(lambda: Residual([Conv2d(3, 3, 3, padding=1), ReLU()]), (3, 4, 4)),
        "Residual_shortcut": row(lambda: Residual([Conv2d(3, 4, 3, stride=2, padding=1)],
                                                  Conv2d(3, 4, 1, stride=2)), (3, 5, 5)),
        # sequences (T, D) per sample; word indices (T,) for an Embedding
        "Embedding": row(lambda: Embedding(6, 4), (5,), shrink=no_rule, vocab=6),
        "RNN": row(lambda: RNN(3, 4), (5, 3), shrink=no_rule),
        "LSTM": row(lambda: LSTM(3, 4), (5, 3), shrink=no_rule),
        "TemporalAffine": row(lambda: TemporalAffine(3, 4), (5, 3), shrink=no_rule),
    }


#: every layer class of xpnn.nn, one row per case: ``make()`` builds the layer,
#: ``shape`` is its per-sample input, ``shrink`` what shrink does once the
#: channel feeding it is pruned ("equal": the shrunk model computes the same;
#: else the refusal's words), ``vocab`` the number of words when its input
#: is word indices. tests/test_layer_table.py runs every row.
LAYERS = _layer_objects()
