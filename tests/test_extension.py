"""The compiled im2col extension: present after install, equal to the
portable path, and a missing build falls back with one warning."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from xpnn.layers import _kernels, conv_backward_fast, conv_forward_fast


@pytest.mark.skipif(os.environ.get("XPNN_ALLOW_PORTABLE") == "1",
                    reason="XPNN_ALLOW_PORTABLE=1: running without the compiled extension")
def test_extension_is_compiled():
    assert _kernels.has_compiled(), (
        "xpnn._cython.im2col did not import; reinstall with pip install -e . "
        "(set XPNN_ALLOW_PORTABLE=1 to test the portable path alone)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_equals_portable(monkeypatch, dtype):
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built")
    r = np.random.RandomState(0)
    x, w, b = (r.randn(3, 2, 9, 8).astype(dtype), r.randn(4, 2, 3, 2).astype(dtype),
               r.randn(4).astype(dtype))
    p = {"stride": 2, "pad": 1}
    out_c, cache_c = conv_forward_fast(x, w, b, p)
    dout = r.randn(*out_c.shape).astype(dtype)
    grads_c = conv_backward_fast(dout, cache_c)
    monkeypatch.setattr(_kernels, "_cy", None)
    monkeypatch.setattr(_kernels, "_warned", True)
    out_p, cache_p = conv_forward_fast(x, w, b, p)
    grads_p = conv_backward_fast(dout, cache_p)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for c, q in zip((out_c, *grads_c), (out_p, *grads_p)):
        assert c.dtype == dtype
        np.testing.assert_allclose(c, q, rtol=tol, atol=tol)


def test_missing_extension_warns_once(monkeypatch):
    monkeypatch.setattr(_kernels, "_cy", None)
    monkeypatch.setattr(_kernels, "_warned", False)
    x, w, b = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.zeros(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out1, _ = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    msgs = [str(c.message) for c in caught if issubclass(c.category, RuntimeWarning)]
    assert len(msgs) == 1 and "pip install -e ." in msgs[0]
    assert float(out1[0, 0, 1, 1]) == 9.0


@pytest.mark.parametrize("pool", [(2, 2, 2), (3, 2, 1), (3, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_max_pool_equals_portable_with_ties_and_nans(monkeypatch, pool, dtype):
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built")
    from xpnn.layers import max_pool_backward_fast, max_pool_forward_fast
    r = np.random.RandomState(1)
    x = r.randint(0, 3, size=(2, 3, 8, 9)).astype(dtype)  # many ties
    x[0, 0, 0, 1] = x[1, 2, 5, 5] = x[1, 2, 4, 4] = np.nan
    p = {"pool_height": pool[0], "pool_width": pool[1], "stride": pool[2]}
    out_c, cache_c = max_pool_forward_fast(x, p)
    dout = r.randn(*out_c.shape).astype(dtype)
    dx_c = max_pool_backward_fast(dout, cache_c)
    monkeypatch.setattr(_kernels, "_cy", None)
    monkeypatch.setattr(_kernels, "_warned", True)
    out_p, cache_p = max_pool_forward_fast(x, p)
    np.testing.assert_array_equal(out_c, out_p)
    # overlapping windows add in a different order: equal up to rounding
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(dx_c, max_pool_backward_fast(dout, cache_p), rtol=tol, atol=tol)
