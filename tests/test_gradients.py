"""Every backward against a centred-difference gradient, in float64, on
every backend."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from xpnn.layers import softmax_loss, svm_loss

from layer_cases import CASES


def _normwise(a, b):
    """||a - b|| / max(||a||, ||b||, 1): relative for O(1) gradients, absolute
    for gradients that are exactly zero (the bias before a batchnorm)."""
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_matches_numerical_gradient(xb, name):
    c = CASES[name]
    a = xb.put(c["make"](np.random.RandomState(sum(map(ord, name)))))
    out, cache = c["fwd"](a)
    assert out.dtype == a["x"].dtype
    dout = xb.asarray(np.random.RandomState(1).randn(*out.shape))
    analytic = c["bwd"](dout, cache)
    assert len(analytic) == len(c["grads"])
    for gname, g in zip(c["grads"], analytic):
        num = eval_numerical_gradient_array(lambda _: c["fwd"](a)[0], a[gname], dout)
        g = xb.host(g)
        assert g.shape == num.shape, f"d{gname} has shape {g.shape}, expected {num.shape}"
        err = _normwise(num, g)
        assert err < 1e-8, f"d{gname}: normwise error {err:.2e}"


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss])
def test_loss_gradients(xb, loss_fn):
    r = np.random.RandomState(231)
    x = xb.asarray(0.5 * r.randn(20, 7))
    y = xb.asarray(r.randint(7, size=20))
    loss, dx = loss_fn(x, y)
    num = eval_numerical_gradient(lambda _: loss_fn(x, y)[0], x, verbose=False)
    assert rel_error(num, dx) < 1e-7
    assert _normwise(num, xb.host(dx)) < 1e-8


def test_gradient_check_catches_a_wrong_backward(xb):
    """The checker itself must be able to fail: a backward off by 1% is caught."""
    c = CASES["affine"]
    a = xb.put(c["make"](np.random.RandomState(3)))
    out, cache = c["fwd"](a)
    dout = xb.asarray(np.random.RandomState(1).randn(*out.shape))
    dx = xb.host(c["bwd"](dout, cache)[0]) * 1.01
    num = eval_numerical_gradient_array(lambda _: c["fwd"](a)[0], a["x"], dout)
    assert _normwise(num, dx) > 1e-3


def test_a_float32_gradient_check_says_to_use_float64(xb):
    """In float32 every relative error is near 1 (the step drowns in
    round-off); the check now says why and what to do. float64 stays
    silent."""
    import warnings
    x32 = xb.asarray(np.linspace(-1, 1, 6).astype(np.float32))
    with pytest.warns(RuntimeWarning, match="x is float32; .* Check gradients in float64"):
        eval_numerical_gradient(lambda v: xb.xp.sum(v * v), x32, verbose=False)
    with pytest.warns(RuntimeWarning, match="eval_numerical_gradient_array: x is float32"):
        eval_numerical_gradient_array(lambda v: v * 2, x32, xb.asarray(np.ones(6, np.float32)))
    x64 = xb.asarray(np.linspace(-1, 1, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = eval_numerical_gradient(lambda v: xb.xp.sum(v * v), x64, verbose=False)
    assert rel_error(grad, 2 * np.linspace(-1, 1, 6)) < 1e-8


def test_a_float64_param_in_a_float32_model_is_named(xb):
    """Assigning a float64 W1 into a float32 model once made the whole
    model float64 after train(), silently; the first loss() warns, once."""
    import warnings
    from xpnn.models import FullyConnectedNet
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, dtype=np.float32)
    X = np.ones((2, 3), dtype=np.float32)
    model.params["W1"] = np.ones((3, 4))            # float64, as np.random.randn gives
    with pytest.warns(RuntimeWarning, match=r"params\['W1'\] is float64 but the model is "
                                            r"float32.*astype\(np.float32\)"):
        model.loss(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.loss(X)                                # once per param and dtype
        model.params["W1"] = np.ones((3, 4), dtype=np.float32)
        model.loss(X)
