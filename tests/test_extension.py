"""The compiled im2col extension: present after install, equal to the
portable path, and a missing build falls back with one warning."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from xpnn.backend import numpy as _kernels
from xpnn.backend.numpy import conv as conv_mod
from xpnn.layers import conv_backward_fast, conv_forward_fast
from xpnn.layers.conv import conv_backward_fast_params

from conftest import record_calls


@pytest.mark.skipif(os.environ.get("XPNN_ALLOW_PORTABLE") == "1",
                    reason="XPNN_ALLOW_PORTABLE=1: running without the compiled extension")
def test_extension_is_compiled():
    assert _kernels.has_compiled(), (
        "xpnn.backend.numpy._cython.im2col did not import; reinstall with pip install -e . "
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


@pytest.mark.parametrize("xs, ws, stride, pad", [
    ((7, 20, 16, 16), (3, 20, 3, 3), 1, 1),   # 256-output planes: one product per sample
    ((7, 3, 9, 8), (4, 3, 3, 2), 2, 1)])      # small planes: one product per chunk
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_conv_in_chunks_equals_portable(monkeypatch, xs, ws, stride, pad, need_dx, dtype):
    """The host path builds columns a few samples at a time: chunks of 1, 2
    and 3 samples (7 is no multiple of 2 or 3: a short last chunk), the
    weight gradient summed over chunks, against the portable path."""
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built")
    assert not conv_mod._direct(_kernels._cy, xs, ws, stride)   # the columns route
    r = np.random.RandomState(2)
    x, w, b = (r.randn(*xs).astype(dtype), r.randn(*ws).astype(dtype),
               r.randn(ws[0]).astype(dtype))
    p = {"stride": stride, "pad": pad}
    out_p, cache_p = conv_forward_fast(x, w, b, p)
    dout = r.randn(*out_p.shape).astype(dtype)
    with monkeypatch.context() as m:
        m.setattr(_kernels, "_cy", None)
        m.setattr(_kernels, "_warned", True)
        out_p, cache_p = conv_forward_fast(x, w, b, p)
        ref = conv_backward_fast_params(dout, cache_p, need_dx=need_dx)
    K = ws[1] * ws[2] * ws[3]
    P = out_p.shape[2] * out_p.shape[3]
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for per_chunk in (1, 2, 3):
        monkeypatch.setattr(conv_mod, "CHUNK_BYTES", per_chunk * K * P * x.itemsize)
        assert conv_mod._chunk(xs[0], K, P, x.itemsize) == per_chunk
        out, cache = conv_forward_fast(x, w, b, p)
        assert isinstance(cache[4], conv_mod.HostColumns)
        got = conv_backward_fast_params(dout, cache, need_dx=need_dx)
        assert (got[0] is None) == (not need_dx)
        for c, q in zip((out, *got), (out_p, *ref)):
            if q is None:
                continue
            assert c.dtype == dtype and c.shape == q.shape
            np.testing.assert_allclose(c, q, rtol=tol, atol=tol * np.abs(q).max())


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
    # a NaN in each corner of a window (b; c; d alone; a and d together)
    x[0, 0, 0, 1] = x[0, 1, 3, 2] = x[0, 2, 7, 7] = x[1, 2, 5, 5] = x[1, 2, 4, 4] = np.nan
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


@pytest.mark.parametrize("bad, why", [
    (np.empty((27, 195), np.float32), "of shape (27, 196)"),
    (np.empty((27, 196), np.float64), "float64 array"),
    (np.empty((196, 27), np.float32).T, "non-contiguous"),
    ([[0.0]], "got a list")])
def test_compiled_kernels_refuse_a_wrong_out_buffer(bad, why):
    """im2col / col2im write into a caller's buffer without bounds checks:
    anything but the exact array they would have allocated is refused."""
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built")
    x = np.zeros((4, 3, 9, 9), np.float32)
    with pytest.raises(ValueError, match="im2col: out must be a writeable C-contiguous float32 "
                       r"array of shape \(27, 196\)") as e:
        _kernels._cy.im2col(x, 3, 3, 1, 7, 7, out=bad)
    assert why in str(e.value)
    cols = np.zeros((27, 196), np.float32)
    ro = np.zeros((4, 3, 9, 9), np.float32)
    ro.flags.writeable = False
    for out in (np.zeros((4, 3, 9, 8), np.float32), ro):
        with pytest.raises(ValueError, match=r"col2im: out must be .* shape \(4, 3, 9, 9\)"):
            _kernels._cy.col2im(cols, 4, 3, 9, 9, 3, 3, 1, 7, 7, out=out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ph, pw, s", [(2, 2, 2), (3, 2, 1)])
def test_max_pool_runs_compiled_and_equals_portable(monkeypatch, dtype, ph, pw, s):
    """NumPy arrays of a floating dtype take the compiled kernels (forward
    and backward, counted), with the portable path's results."""
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built")
    from xpnn.layers import max_pool_backward_fast, max_pool_forward_fast
    r = np.random.RandomState(4)
    x = r.randn(3, 2, 7, 8).astype(dtype)
    p = {"pool_height": ph, "pool_width": pw, "stride": s}
    calls = []
    for name in ("max_pool_forward", "max_pool_backward"):
        record_calls(monkeypatch, _kernels._cy, name, calls)
    out, cache = max_pool_forward_fast(x, p)
    dout = r.randn(*out.shape).astype(dtype)
    dx = max_pool_backward_fast(dout, cache)
    assert calls == ["max_pool_forward", "max_pool_backward"]
    monkeypatch.undo()
    with monkeypatch.context() as m:
        m.setattr(_kernels, "_cy", None)
        m.setattr(_kernels, "_warned", True)
        out_p, cache_p = max_pool_forward_fast(x, p)
        dx_p = max_pool_backward_fast(dout, cache_p)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(out, out_p)
    # overlapping windows add into dx in another order
    np.testing.assert_allclose(dx, dx_p, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


@pytest.mark.parametrize("x_dtype, g_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                              (np.float32, np.float64)])
def test_batchnorm_runs_compiled_and_equals_portable(monkeypatch, x_dtype, g_dtype):
    """Batch norm's per-channel passes take the compiled kernel when every
    array has one dtype (forward and backward, counted); with float64 gamma
    on float32 data the portable path runs, and both give the promoted
    dtype."""
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built")
    from xpnn.layers import spatial_batchnorm_backward, spatial_batchnorm_forward
    r = np.random.RandomState(6)
    x = r.randn(4, 3, 5, 2).astype(x_dtype)
    g, b = (1 + r.rand(3)).astype(g_dtype), r.randn(3).astype(g_dtype)
    dout = r.randn(*x.shape).astype(x_dtype)
    calls = []
    record_calls(monkeypatch, _kernels._cy, "channel_affine", calls)
    out, cache = spatial_batchnorm_forward(x, g, b, {"mode": "train"})
    grads = spatial_batchnorm_backward(dout, cache)
    assert len(calls) == (2 if x_dtype == g_dtype else 0)
    monkeypatch.undo()
    with monkeypatch.context() as m:
        m.setattr(_kernels, "_cy", None)
        m.setattr(_kernels, "_warned", True)
        out_p, cache_p = spatial_batchnorm_forward(x, g, b, {"mode": "train"})
        grads_p = spatial_batchnorm_backward(dout, cache_p)
    tol = 1e-5 if x_dtype == np.float32 else 1e-13
    for got, want in zip((out, *grads), (out_p, *grads_p)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
