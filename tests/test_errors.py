"""Bad input gets a ValueError/TypeError that says what was wrong."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.layers import *  # noqa: F403
from xpnn.layers import elu_forward, leaky_relu_forward, prelu_forward
from conftest import host


def test_conv_stride_that_does_not_fit(xb):
    x, w, b = (xb.asarray(np.zeros((2, 3, 8, 8))), xb.asarray(np.zeros((4, 3, 3, 3))),
               xb.asarray(np.zeros(4)))
    with pytest.raises(ValueError, match=r"stride 2 does not fit.*\(2, 3, 8, 8\).*\(4, 3, 3, 3\)"):
        conv_forward_fast(x, w, b, {"stride": 2, "pad": 0})


@pytest.mark.parametrize("param, match", [
    ({"stride": 1, "pad": -1}, r"pad'\] must be an integer >= 0, got -1"),
    ({"stride": 0, "pad": 0}, r"stride'\] must be an integer >= 1, got 0"),
    ({"stride": 1.5, "pad": 0}, r"stride'\] must be an integer"),
    # a missing key once meant pad 0 (the course's code reads both keys)
    ({"stride": 1}, r"conv_param is missing 'pad'; it takes exactly 'stride' and 'pad'"),
    ({"pad": 1}, r"conv_param is missing 'stride'"),
    ({"stride": 1, "padding": 1}, r"is missing 'pad' and has 'padding' \(did you mean 'pad'"),
    ({"stride": 1, "pad": 1, "dilation": 2}, r"conv_param has 'dilation'; it takes exactly"),
])
def test_conv_bad_params(xb, param, match):
    x, w, b = (xb.asarray(np.zeros((1, 1, 5, 5))), xb.asarray(np.zeros((1, 1, 3, 3))),
               xb.asarray(np.zeros(1)))
    for fwd in (conv_forward_fast, conv_forward_naive):
        with pytest.raises(ValueError, match=match):
            fwd(x, w, b, param)


def test_conv_mismatched_channels_and_ranks(xb):
    x, b = xb.asarray(np.zeros((1, 3, 5, 5))), xb.asarray(np.zeros(2))
    with pytest.raises(ValueError, match=r"x \(1, 3, 5, 5\) has 3 channels \(axis 1 of "
                                         r"\(N, C, H, W\)\) but w \(2, 4, 3, 3\) expects 4: x "
                                         r"must be \(N, 4, H, W\), or w \(F, 3, HH, WW\)"):
        conv_forward_fast(x, xb.asarray(np.zeros((2, 4, 3, 3))), b, {"stride": 1, "pad": 1})
    # an image batch as (N, H, W, C): x is named, with the transpose that fixes it
    nhwc = xb.asarray(np.zeros((2, 8, 8, 3)))
    for fwd in (conv_forward_fast, conv_forward_naive):
        with pytest.raises(ValueError, match=r"x \(2, 8, 8, 3\) looks channels-last .*"
                                             r"x.transpose\(0, 3, 1, 2\)"):
            fwd(nhwc, xb.asarray(np.zeros((2, 3, 3, 3))), b, {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)"):
        conv_forward_fast(xb.asarray(np.zeros((3, 5, 5))), xb.asarray(np.zeros((2, 3, 3, 3))),
                          b, {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        conv_forward_fast(x, xb.asarray(np.zeros((2, 3, 3, 3))), xb.asarray(np.zeros(3)),
                          {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"filter height 7 exceeds the padded input height 5"):
        conv_forward_fast(x, xb.asarray(np.zeros((2, 3, 7, 3))), b, {"stride": 1, "pad": 0})


def test_affine_shape_mismatch(xb):
    with pytest.raises(ValueError, match=r"flattens to \(N, 6\).*expected w of shape \(6, M\)"):
        affine_forward(xb.asarray(np.zeros((4, 2, 3))), xb.asarray(np.zeros((5, 2))),
                       xb.asarray(np.zeros(2)))


def test_pool_bad_params(xb):
    x = xb.asarray(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="larger than the input"):
        max_pool_forward_fast(x, {"pool_height": 5, "pool_width": 2, "stride": 1})
    with pytest.raises(ValueError, match="missing 'stride'"):
        max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2})
    with pytest.raises(ValueError, match=r"stride'\] must be an integer >= 1"):
        avg_pool_forward(x, {"pool_height": 2, "pool_width": 2, "stride": 0})


def test_dropout_keep_probability_checked(xb):
    x = xb.asarray(np.ones((2, 2)))
    for p in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="KEEPING"):
            dropout_forward(x, {"mode": "train", "p": p})
    with pytest.raises(ValueError, match="'train' or 'test'"):
        dropout_forward(x, {"mode": "eval", "p": 0.5})


def test_norm_errors(xb):
    x = xb.asarray(np.ones((2, 6, 3, 3)))
    g = xb.asarray(np.ones((1, 6, 1, 1)))
    with pytest.raises(ValueError, match="G=4 must divide the channel count C=6"):
        spatial_groupnorm_forward(x, g, g, 4, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        batchnorm_forward(xb.asarray(np.ones((2, 3))), xb.asarray(np.ones(4)),
                          xb.asarray(np.ones(3)), {"mode": "train"})
    with pytest.raises(ValueError, match="bn_param\\['mode'\\] must be 'train' or 'test'"):
        batchnorm_forward(xb.asarray(np.ones((2, 3))), xb.asarray(np.ones(3)),
                          xb.asarray(np.ones(3)), {})


def test_loss_label_errors(xb):
    x = xb.asarray(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        softmax_loss(x, xb.asarray(np.zeros(2, dtype=np.int64)))
    with pytest.raises(TypeError, match="integer class labels"):
        svm_loss(x, xb.asarray(np.zeros(3)))


def test_loss_label_range_on_host():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        softmax_loss(np.zeros((3, 4)), np.array([0, 4, 1]))


def test_mixed_backends_name_the_argument():
    import array_api_strict as xps
    with pytest.raises(TypeError, match=r"argument 'w' is a array_api_strict array but 'x' "
                                         r"is a numpy array"):
        affine_forward(np.ones((2, 3)), xps.ones((3, 2), dtype=xps.float64), np.ones(2))
    with pytest.raises(TypeError, match="argument 'x' must be an array"):
        relu_forward([1.0, -1.0])


def test_naive_conv_names_mixed_caches_and_promotes_dtypes():
    """The naive backward names a cache array from another backend and its
    own function in geometry errors; the naive forward computes in the
    promoted dtype of x and w, as the fast one does."""
    import array_api_strict as xps
    r = np.random.RandomState(0)
    x, w, b = r.randn(2, 3, 5, 5), r.randn(4, 3, 3, 3), r.randn(4)
    p = {"stride": 1, "pad": 1}
    out, (cx, cw, cb, cp) = conv_forward_naive(x, w, b, p)
    dout = np.ones_like(out)
    on_device = xps.asarray(x, device=xps.Device("device1"))
    for name, cache in (("x", (on_device, cw, cb, cp)),
                        ("w", (cx, xps.asarray(w, device=xps.Device("device1")), cb, cp))):
        with pytest.raises(TypeError, match=rf"argument '{name}' is a array_api_strict array "
                                            r"but 'dout' is a numpy array"):
            conv_backward_naive(dout, cache)
    with pytest.raises(ValueError, match=r"^conv_backward_naive: conv_param\['stride'\]"):
        conv_backward_naive(dout, (cx, cw, cb, {"stride": 0, "pad": 1}))
    for xd, wd in ((np.float32, np.float64), (np.float64, np.float32)):
        o32, _ = conv_forward_naive(x.astype(xd), w.astype(wd), b.astype(wd), p)
        ref, _ = conv_forward_fast(x.astype(xd), w.astype(wd), b.astype(wd), p)
        assert o32.dtype == ref.dtype == np.float64
        np.testing.assert_allclose(o32, ref, rtol=1e-6)


def test_out_of_range_labels_are_refused_on_every_backend(xb):
    """Off the host the range check used to be skipped: a label of 7 for 5
    classes gave a silently wrong loss."""
    from xpnn.layers import softmax_loss, svm_loss
    x = xb.asarray(np.zeros((3, 5)))
    for bad in ([0, 1, 7], [0, -1, 2]):
        y = xb.asarray(np.array(bad))
        for fn in (softmax_loss, svm_loss):
            with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\]"):
                fn(x, y)


def test_solver_checks_every_label_once_on_every_backend(xb):
    from xpnn.models import FullyConnectedNet
    from xpnn.solver import Solver
    r = np.random.RandomState(0)
    data = {"X_train": r.randn(40, 6), "y_train": r.randint(3, size=40),
            "X_val": r.randn(10, 6), "y_val": r.randint(3, size=10)}
    data["y_val"][4] = 3     # one bad label among the validation set
    model = FullyConnectedNet([4], input_dim=6, num_classes=3)
    solver = Solver(model, data, batch_size=10, num_epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"y_val holds labels in \[0, 3\] but the model "
                                         r"scores 3 classes"):
        solver.train()


@pytest.mark.parametrize("call, kind, message", [
    (lambda a: batchnorm_forward(a(np.ones(3)), a(np.ones(3)), a(np.zeros(3)), {"mode": "train"}),
     ValueError, "batchnorm_forward: x must be 2-D (N, D), got shape (3,)"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(4)), a(np.zeros(3)),
                                 {"mode": "train"}),
     ValueError, "batchnorm_forward: gamma must have shape (3,), got (4,)"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)), 3),
     TypeError, "batchnorm_forward: bn_param must be a dict, got int"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)),
                                 {"mode": "train", "momentum": -0.1}),
     ValueError, "batchnorm_forward: bn_param['momentum'] must be a finite number in [0.0, 1.0], "
                 "got -0.1"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)),
                                 {"mode": "train", "momentum": 1.5}),
     ValueError, "batchnorm_forward: bn_param['momentum'] must be a finite number in [0.0, 1.0], "
                 "got 1.5"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)),
                                 {"mode": "test", "running_mean": a(np.zeros(3))}),
     ValueError, "batchnorm_forward: test mode needs bn_param['running_mean'] and "
                 "['running_var'], which train-mode calls fill in; run the layer in 'train' "
                 "mode first (or set them)"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)),
                                 {"mode": "train", "running_mean": a(np.zeros(4))}),
     ValueError, "batchnorm_forward: bn_param['running_mean'] must have shape (3,), got (4,)"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)),
                                 {"mode": "train", "eps": 0.0}),
     ValueError, "batchnorm_forward: bn_param['eps'] must be a finite number in (0.0, inf], "
                 "got 0.0"),
    (lambda a: batchnorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(4)),
                                 {"mode": "train"}),
     ValueError, "batchnorm_forward: beta must have shape (3,), got (4,)"),
    (lambda a: spatial_batchnorm_forward(a(np.ones((2, 3, 4, 4))), a(np.ones(4)), a(np.zeros(3)),
                                         {"mode": "train"}),
     ValueError, "spatial_batchnorm_forward: gamma must have shape (3,), got (4,)"),
    (lambda a: layernorm_forward(a(np.ones(3)), a(np.ones(3)), a(np.zeros(3)), {}),
     ValueError, "layernorm_forward: x must be 2-D (N, D), got shape (3,)"),
    (lambda a: layernorm_forward(a(np.ones((2, 3))), a(np.ones(3)), a(np.zeros(3)), 5),
     TypeError, "layernorm_forward: ln_param must be a dict, got int"),
    (lambda a: layernorm_forward(a(np.ones((2, 3))), a(np.ones(4)), a(np.zeros(3)), {}),
     ValueError, "layernorm_forward: gamma must have shape (3,), got (4,)"),
    (lambda a: spatial_groupnorm_forward(a(np.ones((2, 4, 3, 3))), a(np.ones((1, 4, 1, 1))),
                                         a(np.zeros((1, 4, 1, 1))), 2, 7),
     TypeError, "spatial_groupnorm_forward: gn_param must be a dict, got int"),
    (lambda a: spatial_groupnorm_forward(a(np.ones((2, 4, 3, 3))), a(np.ones((1, 4, 1, 1))),
                                         a(np.zeros((1, 4, 1, 1))), 0, {}),
     ValueError, "spatial_groupnorm_forward: G must be an integer >= 1, got 0"),
    (lambda a: spatial_groupnorm_forward(a(np.ones((2, 4, 3, 3))), a(np.ones(4)),
                                         a(np.zeros((1, 4, 1, 1))), 2, {}),
     ValueError, "spatial_groupnorm_forward: gamma must have shape (1, 4, 1, 1), got (4,)"),
    (lambda a: max_pool_backward_naive(a(np.ones((1, 1, 1, 1))), (a(np.ones((1, 1, 2, 2))), {
        "pool_height": 0, "pool_width": 2, "stride": 2})),
     ValueError, "max_pool_backward_naive: pool_param['pool_height'] must be an integer >= 1, "
                 "got 0"),
    (lambda a: max_pool_forward_fast(a(np.ones((1, 1, 4, 4))), {
        "pool_height": 2, "pool_width": 0, "stride": 2}),
     ValueError, "max_pool_forward_fast: pool_param['pool_width'] must be an integer >= 1, "
                 "got 0"),
    (lambda a: max_pool_forward_fast(a(np.ones((1, 1, 4, 4))), {
        "pool_height": 2, "pool_width": 2, "stride": 0}),
     ValueError, "max_pool_forward_fast: pool_param['stride'] must be an integer >= 1, got 0"),
    (lambda a: prelu_forward(a(np.ones(3)), a(np.ones(4))),
     ValueError, "prelu_forward: a must have shape (1,) or (C,) (one slope per channel of x "
                 "(3,)), got (4,)"),
])
def test_every_norm_and_pool_error_names_its_function_and_argument(xb, call, kind, message):
    """The whole message: which function, which argument, what was expected."""
    with pytest.raises(kind) as info:
        call(xb.asarray)
    assert str(info.value) == message


def test_activation_defaults_and_one_group_norm(xb):
    x = xb.asarray(np.array([-2.0, 3.0]))
    np.testing.assert_allclose(host(leaky_relu_forward(x)[0]), [-0.02, 3.0])   # alpha 0.01
    np.testing.assert_allclose(host(elu_forward(x)[0]), [np.expm1(-2.0), 3.0])  # alpha 1
    # G=1 is a valid group count: one group per sample, normalised over C, H and W
    v = np.arange(24.0).reshape(1, 4, 3, 2)
    out, _ = spatial_groupnorm_forward(xb.asarray(v), xb.asarray(np.ones((1, 4, 1, 1))),
                                       xb.asarray(np.zeros((1, 4, 1, 1))), 1, {})
    np.testing.assert_allclose(host(out), (v - v.mean()) / np.sqrt(v.var() + 1e-5), rtol=1e-12)


def test_affine_one_feature_batches_and_a_flat_w(xb):
    """x of shape (N,) is N samples of one feature (D = 1, the empty
    product); a 1-D w is refused with the expected layout named."""
    out, _ = affine_forward(xb.asarray(np.array([1.0, 2.0, 3.0])),
                            xb.asarray(np.array([[2.0, -1.0]])), xb.asarray(np.array([0.5, 0.0])))
    np.testing.assert_array_equal(host(out), [[2.5, -1.0], [4.5, -2.0], [6.5, -3.0]])
    with pytest.raises(ValueError) as info:
        affine_forward(xb.asarray(np.ones((2, 3))), xb.asarray(np.ones(3)),
                       xb.asarray(np.zeros(1)))
    assert str(info.value) == "affine_forward: w must be 2-D (D, M), got shape (3,)"


def test_softmax_loss_is_stable_for_large_and_unequal_rows(xb):
    """Each row shifted by its own maximum: logits near 1000 do not
    overflow, and a row far below another does not underflow to log(0)."""
    x = np.array([[1000.0, 999.0, 998.0], [0.0, -1.0, -2.0], [-800.0, -801.0, -700.0]])
    y = np.array([0, 2, 1])
    loss, dx = softmax_loss(xb.asarray(x), xb.asarray(y))
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(float(loss), -logp[np.arange(3), y].mean(), rtol=1e-12)
    p = np.exp(logp)
    p[np.arange(3), y] -= 1
    np.testing.assert_allclose(host(dx), p / 3, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs, value, message", [
    (dict(low=0.0, high=1.0), 1.5, "s must be a finite number in [0.0, 1.0], got 1.5"),
    (dict(low=0.0, high=1.0, high_inclusive=False), 1.0,
     "s must be a finite number in [0.0, 1.0), got 1.0"),
    (dict(low=0.0, low_inclusive=False), 0.0, "s must be a finite number in (0.0, inf], got 0.0"),
    (dict(high=2.0), 3, "s must be a finite number in [-inf, 2.0], got 3"),
    (dict(), float("nan"), "s must be a finite number in [-inf, inf], got nan"),
])
def test_check_number_bounds_and_messages(kwargs, value, message):
    from xpnn.layers._util import check_number
    with pytest.raises(ValueError) as info:
        check_number("s", value, **kwargs)
    assert str(info.value) == message
    # the bounds themselves, where inclusive, and values inside pass
    assert check_number("s", 1.0, low=0.0, high=1.0) == 1.0
    assert check_number("s", 0.0, low=0.0, high=1.0, high_inclusive=False) == 0.0
    assert check_number("s", 0.5, low=0.0, high=1.0, low_inclusive=False,
                        high_inclusive=False) == 0.5
    with pytest.raises(TypeError, match=r"s must be a number, got '1' \(str\)"):
        check_number("s", "1")


def test_check_int_bounds_and_check_dout_wants_an_array():
    from xpnn.layers._util import MAX_INT, check_dout, check_int
    assert check_int("k", MAX_INT, 1) == MAX_INT and check_int("k", 1, 1) == 1
    with pytest.raises(ValueError) as info:
        check_int("k", 5, 1, maximum=4)
    assert str(info.value) == "k must be at most 4, got 5"
    assert check_int("k", 4, 1, maximum=4) == 4

    class ShapeOnly:                     # a shape but no dtype: not an array
        shape = (2, 3)
    with pytest.raises(TypeError) as info:
        check_dout("f_backward", np, ShapeOnly(), (2, 3))
    assert str(info.value) == "f_backward: dout must be an array, got ShapeOnly"
