"""ReLU followed by max pooling is computed as pooling then ReLU (in any
network and in the conv_relu_pool sandwich): the output and every gradient
must equal those of the order as written, exactly, ties, windows with
nothing positive and overlapping windows included."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn import layers as L
from xpnn.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from xpnn.nn.layers import _back, _run

from conftest import host


def _integer_data(r, *shape):
    # small integers: convolution outputs are exact and full of ties and zeros
    return r.randint(-2, 3, size=shape).astype(np.float64)


@pytest.mark.parametrize("pool", [(2, 2, 2), (3, 3, 1)])   # (3, 3, 1): windows overlap
def test_sandwich_equals_the_order_as_written(xb, pool):
    r = np.random.RandomState(0)
    x, w = _integer_data(r, 3, 2, 8, 8), _integer_data(r, 4, 2, 3, 3)
    b = _integer_data(r, 4) - 6                      # many windows with nothing positive
    x[0, 0, 2, 3] = np.nan                           # a NaN reaches one window's maximum
    x, w, b = xb.asarray(x), xb.asarray(w), xb.asarray(b)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": pool[0], "pool_width": pool[1], "stride": pool[2]}
    out, cache = L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)

    a, conv_cache = L.conv_forward_fast(x, w, b, conv_param)
    rl, relu_cache = L.relu_forward(a)
    ref, pool_cache = L.max_pool_forward_fast(rl, pool_param)
    np.testing.assert_array_equal(host(out), host(ref))
    assert np.isnan(host(out)).any() and (host(out) == 0).mean() > 0.1

    dout = xb.asarray(_integer_data(r, *out.shape))
    got = L.conv_relu_pool_backward(dout, cache)
    want = L.conv_backward_fast(
        L.relu_backward(L.max_pool_backward_fast(dout, pool_cache), relu_cache), conv_cache)
    for g, q, name in zip(got, want, ("dx", "dw", "db")):
        np.testing.assert_array_equal(host(g), host(q), err_msg=name)


def _layer_by_layer(model, X, y):
    """Loss and grads by each layer's forward and backward in the written
    order, with no reordering."""
    h, caches = X, []
    for layer in model.modules:
        h, c = layer.forward(h, True)
        caches.append(c)
    loss, d = L.softmax_loss(h, y)
    grads = {}
    for layer, c in zip(reversed(model.modules), reversed(caches)):
        d, g = layer.backward(d, c)
        grads.update({layer._names[k]: v for k, v in g.items()})
    return loss, grads


def test_network_equals_the_order_as_written(xb):
    model = Sequential(Conv2d(2, 4, 3, padding=1), ReLU(), MaxPool2d(2),
                       Conv2d(4, 3, 3, padding=1), ReLU(), MaxPool2d(3, stride=1),
                       Flatten(), Linear(3 * 2 * 2, 5), ReLU(), Linear(5, 3),
                       input_shape=(2, 8, 8), dtype=np.float64, seed=0)
    r = np.random.RandomState(1)
    model.to_device(xb.name)
    for name in model.params:
        model.params[name] = xb.asarray(_integer_data(r, *model.params[name].shape))
    X = xb.asarray(_integer_data(r, 5, 2, 8, 8))
    y = xb.asarray(r.randint(3, size=5))
    loss, grads = model.loss(X, y)
    ref_loss, ref_grads = _layer_by_layer(model, X, y)
    assert float(loss) == float(ref_loss)
    assert sorted(grads) == sorted(ref_grads) == sorted(model.params)
    for name in grads:
        np.testing.assert_array_equal(host(grads[name]), host(ref_grads[name]), err_msg=name)
    # both pairs were reordered: the ReLU's cache is the pooled (smaller) input
    _, caches = _run(model.modules, X, True)
    assert caches[1].shape == (5, 4, 4, 4) and caches[4].shape == (5, 3, 2, 2)
    assert caches[8].shape == (5, 5)                  # a ReLU before a Linear: as written
    dx, _ = _back(model.modules, xb.asarray(np.ones((5, 3))), caches)
    assert tuple(dx.shape) == (5, 2, 8, 8)


def test_batchnorm_sandwich_equals_the_order_as_written(xb):
    r = np.random.RandomState(3)
    x, w = _integer_data(r, 4, 2, 6, 6), _integer_data(r, 3, 2, 3, 3)
    b, gamma = _integer_data(r, 3), xb.asarray(np.array([1.0, 2.0, 0.5]))
    beta = xb.asarray(np.array([-1.0, 0.0, -3.0]))      # many windows below zero
    x, w, b = xb.asarray(x), xb.asarray(w), xb.asarray(b)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = L.conv_bn_relu_pool_forward(x, w, b, gamma, beta, conv_param,
                                             {"mode": "train"}, pool_param)
    r_, cbr_cache = L.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})
    ref, pool_cache = L.max_pool_forward_fast(r_, pool_param)
    np.testing.assert_array_equal(host(out), host(ref))
    assert (host(out) == 0).mean() > 0.1
    dout = xb.asarray(_integer_data(r, *out.shape))
    got = L.conv_bn_relu_pool_backward(dout, cache)
    want = L.conv_bn_relu_backward(L.max_pool_backward_fast(dout, pool_cache), cbr_cache)
    for g, q, name in zip(got, want, ("dx", "dw", "db", "dgamma", "dbeta")):
        np.testing.assert_array_equal(host(g), host(q), err_msg=name)
