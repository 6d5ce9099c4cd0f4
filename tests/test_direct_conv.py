"""The direct convolution kernels (stride 1, few input channels; NumPy's
compiled path): outputs and weight gradients equal to the naive loops for
every tail of the vector width, filter counts that do not fill a pass,
non-square filters and both dtypes; the same bits whatever the thread count;
inf/NaN where the naive loops put them; and a kernel that refuses what it was
not built for."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.backend import numpy as _kernels
from xpnn.backend.numpy import conv
from xpnn.layers import conv_backward_naive, conv_forward_naive
from xpnn.layers.conv import conv_backward_fast_params, conv_forward_fast

from conftest import record_calls

# x shape, w shape, pad: output widths 1, 5, 8, 9, 17 and 32 (vector tails of
# 8 floats / 4 doubles and passes of 16 / 8 columns), 1 to 9 filters (passes
# of 4 filters, gradient groups of 3), filters 1x1 to 4x7 and 7x7
GEOMETRIES = [
    ((2, 3, 8, 8), (5, 3, 3, 3), 1),
    ((3, 1, 4, 9), (2, 1, 4, 7), 2),
    ((2, 2, 6, 13), (9, 2, 2, 5), 0),
    ((1, 3, 5, 1), (1, 3, 1, 1), 0),
    ((2, 3, 12, 32), (7, 3, 7, 7), 3),
    ((1, 2, 3, 17), (4, 2, 3, 2), 1),
]


def _data(xs, ws, dtype, seed=0):
    r = np.random.RandomState(seed)
    return (r.randn(*xs).astype(dtype), r.randn(*ws).astype(dtype),
            r.randn(ws[0]).astype(dtype))


def _direct_kernels():
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built (the direct kernels are part of it)")
    return _kernels._cy


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("xs, ws, pad", GEOMETRIES)
def test_direct_equals_naive(xs, ws, pad, dtype, rtol):
    cy = _direct_kernels()
    assert conv._direct(cy, xs, ws, 1), "this geometry must take the direct route"
    x, w, b = _data(xs, ws, dtype)
    p = {"stride": 1, "pad": pad}
    ref, cache_ref = conv_forward_naive(x.astype(np.float64), w.astype(np.float64),
                                        b.astype(np.float64), p)
    ran = []
    with pytest.MonkeyPatch.context() as m:
        record_calls(m, cy, "conv_direct_forward", ran)
        out, cache = conv_forward_fast(x, w, b, p)
    assert ran, "the direct forward must run"
    assert out.dtype == dtype and isinstance(cache[4], conv.HostColumns)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * scale)
    dout = np.random.RandomState(1).randn(*out.shape).astype(dtype)
    _, dw_ref, db_ref = conv_backward_naive(dout.astype(np.float64), cache_ref)
    ran = []
    with pytest.MonkeyPatch.context() as m:
        record_calls(m, cy, "conv_direct_weight_grad", ran)
        dx, dw, db = conv_backward_fast_params(dout, cache)
    assert ran, "the direct weight gradient must run"
    assert dx is None and dw.dtype == dtype and dw.shape == w.shape
    np.testing.assert_allclose(dw, dw_ref, rtol=rtol, atol=rtol * np.abs(dw_ref).max())
    np.testing.assert_allclose(db, db_ref, rtol=rtol, atol=rtol * np.abs(db_ref).max())
    # with dx asked for, dx is right and dw and db are the very same numbers
    dx_full, dw_full, db_full = conv_backward_fast_params(dout, cache, need_dx=True)
    dx_ref = conv_backward_naive(dout.astype(np.float64), cache_ref)[0]
    np.testing.assert_allclose(dx_full, dx_ref, rtol=rtol, atol=rtol * np.abs(dx_ref).max())
    np.testing.assert_array_equal(dw_full, dw)
    np.testing.assert_array_equal(db_full, db)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_whatever_the_thread_count(monkeypatch, dtype):
    """Samples are claimed by whichever thread is free; outputs and the
    weight gradient (summed in sample order) must not depend on that."""
    _direct_kernels()
    x, w, b = _data((7, 3, 10, 19), (6, 3, 5, 5), dtype, seed=3)
    p = {"stride": 1, "pad": 2}
    runs = []
    for threads in ("1", "2", "5"):
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", threads)
        out, cache = conv_forward_fast(x, w, b, p)
        _, dw, db = conv_backward_fast_params(np.cos(out), cache)
        runs.append((out, dw, db))
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            np.testing.assert_array_equal(a, c)


def test_inf_and_nan_land_where_the_naive_loops_put_them():
    """The last, partial vector of a row reads past the row's end; those
    lanes must not reach a sum (0 * inf would put NaN into finite entries)."""
    _direct_kernels()
    x, w, b = _data((2, 2, 5, 11), (3, 2, 2, 3), np.float64, seed=5)
    x[0, 1, 2, 10] = np.inf     # the last column of a row: one tap sees it
    x[1, 0, 4, 0] = np.nan      # the first column of the last row
    p = {"stride": 1, "pad": 0}
    ref, cache_ref = conv_forward_naive(x, w, b, p)
    out, cache = conv_forward_fast(x, w, b, p)
    np.testing.assert_allclose(out, ref, rtol=1e-12)   # equal_nan: NaN where ref has NaN
    dout = np.random.RandomState(2).randn(*out.shape)
    _, dw_ref, _ = conv_backward_naive(dout, cache_ref)
    _, dw, _ = conv_backward_fast_params(dout, cache)
    assert np.isfinite(dw_ref).any() and not np.isfinite(dw_ref).all()
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12)


def test_strided_wide_and_empty_layers_keep_the_columns_route():
    cy = _direct_kernels()
    x = (50, 3, 32, 32)
    assert conv._direct(cy, x, (32, 3, 7, 7), 1)                     # ThreeLayerConvNet's
    assert not conv._direct(cy, x, (32, 3, 3, 3), 2)                 # stride 2
    assert not conv._direct(cy, (2, 64, 8, 8), (8, 64, 3, 3), 1)     # 576 taps
    assert not conv._direct(cy, x, (2, 3, 1, cy.DIRECT_MAX_KW + 1), 1)   # wider than the kernel
    for xs, ws in (((0, 3, 8, 8), (4, 3, 3, 3)), ((2, 3, 8, 8), (0, 3, 3, 3)),
                   ((2, 0, 8, 8), (4, 0, 3, 3))):
        assert not conv._direct(cy, xs, ws, 1)


@pytest.mark.parametrize("xs, ws", [((0, 3, 8, 8), (4, 3, 3, 3)), ((2, 3, 8, 8), (0, 3, 3, 3)),
                                    ((2, 0, 8, 8), (4, 0, 3, 3))])
def test_empty_batches_filters_and_channels(xb, xs, ws):
    """Shapes a direct-sized layer can take with nothing in them: the
    naive loops' shapes and values (zeros; the bias where there are no
    channels), on every backend; an empty batch's weight gradient was once
    an unfilled buffer on NumPy."""
    x, w, b = (xb.asarray(a) for a in _data(xs, ws, np.float64))
    p = {"stride": 1, "pad": 1}
    ref, cache_ref = conv_forward_naive(x, w, b, p)
    out, cache = conv_forward_fast(x, w, b, p)
    np.testing.assert_array_equal(xb.host(out), xb.host(ref))
    dout = xb.asarray(np.ones(tuple(ref.shape)))
    for got, want in zip(conv_backward_fast_params(dout, cache, need_dx=True),
                         conv_backward_naive(dout, cache_ref)):
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_array_equal(xb.host(got), xb.host(want))


def test_kernels_refuse_what_they_were_not_built_for():
    cy = _direct_kernels()
    N, C, Hp, Wp, F, k = 2, 2, 6, 7, 3, 3
    size = N * C * Hp * Wp
    flat = np.zeros(size + cy.DIRECT_SLACK)
    w2 = np.zeros((4, C * k * k))
    b = np.zeros(F)
    out = np.empty((N, F, Hp - k + 1, Wp - k + 1))
    cy.conv_direct_forward(flat, N, C, Hp, Wp, w2, b, out, k, k, 0, N)  # the valid call
    bad = [
        (flat[:size], w2, b, out, k, k, 0, N, "holds"),               # no slack to read
        (flat, w2[:3], b, out, k, k, 0, N, "do not match"),           # 3 rows: not a pass
        (flat, w2, b[:2], out, k, k, 0, N, "do not match"),
        (flat, w2, b, np.empty((N, F, Hp - k, Wp - k + 1)), k, k, 0, N, "do not match"),
        (flat, w2, b, out, Hp + 1, k, 0, N, "do not fit"),
        (flat, w2, b, out, k, k, 1, N + 1, "outside a batch"),
        (flat, w2, b, out, k, k, 2, 1, "outside a batch"),
    ]
    for fl, ww, bb, oo, kh, kw, n0, n1, words in bad:
        with pytest.raises(ValueError, match=words):
            cy.conv_direct_forward(fl, N, C, Hp, Wp, ww, bb, oo, kh, kw, n0, n1)
    dout = np.zeros_like(out)
    part = np.empty((N, F * C * k * k))
    cy.conv_direct_weight_grad(flat[:size], N, C, Hp, Wp, dout, part, k, k, 0, N)
    with pytest.raises(ValueError, match="do not match"):
        cy.conv_direct_weight_grad(flat, N, C, Hp, Wp, dout, part[1:], k, k, 0, N)
    with pytest.raises(ValueError, match="holds"):
        cy.conv_direct_weight_grad(flat[:size - 1], N, C, Hp, Wp, dout, part, k, k, 0, N)
    wide = np.zeros((1, 1, 1, 1))
    with pytest.raises(ValueError, match="at most 7 wide"):
        cy.conv_direct_weight_grad(np.zeros(9), 1, 1, 1, 9, wide[:, :, :, :1],
                                   np.empty((1, 9)), 1, 9, 0, 1)


def test_host_threads_follow_the_environment(monkeypatch):
    from xpnn.backend.numpy._host import host_threads
    for var in ("XPNN_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    cores = host_threads()
    assert cores >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert host_threads() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert host_threads() == 2                      # BLAS's own count before OpenMP's
    monkeypatch.setenv("XPNN_NUM_THREADS", "5")
    assert host_threads() == 5                      # xpnn's own setting first
    for junk in ("0", "-1", "two", ""):
        monkeypatch.setenv("XPNN_NUM_THREADS", junk)
        assert host_threads() == 2                  # not a positive count: the next one


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no os.fork on this platform")
def test_a_forked_child_convolves_without_the_parents_threads():
    """The thread pool is made on first use; a child forked after that (a
    multiprocessing worker) has none of its threads, and waiting on them
    would hang it."""
    import subprocess
    import sys
    import textwrap
    script = textwrap.dedent("""
        import os
        import numpy as np
        from xpnn.layers import conv_forward_fast
        x, w, b = np.ones((4, 3, 8, 8)), np.ones((2, 3, 3, 3)), np.zeros(2)
        conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})      # the pool exists now
        pid = os.fork()
        if pid == 0:
            out, _ = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
            os._exit(0 if out[0, 0, 1, 1] == 27 else 3)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
    """)
    env = dict(__import__("os").environ, XPNN_NUM_THREADS="2", XPNN_BACKEND="numpy")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert "child exit 0" in res.stdout


@pytest.mark.parametrize("stride", [1, 2])        # on NumPy: the direct and the columns route
def test_a_float64_dout_gives_the_layers_float32_gradients(xb, stride):
    """dout of another floating dtype is taken in the layer's dtype, on
    every backend and route: the gradients of the cast dout, float32."""
    x, w, b = (xb.asarray(a) for a in _data((3, 3, 9, 9), (5, 3, 3, 3), np.float32, seed=8))
    out, cache = conv_forward_fast(x, w, b, {"stride": stride, "pad": 1})
    d64 = np.random.RandomState(4).randn(*tuple(out.shape))
    got = conv_backward_fast_params(xb.asarray(d64), cache, need_dx=True)
    want = conv_backward_fast_params(xb.asarray(d64.astype(np.float32)), cache, need_dx=True)
    for g, h in zip(got, want):
        assert xb.host(g).dtype == np.float32
        np.testing.assert_array_equal(xb.host(g), xb.host(h))


def test_the_thread_pool_is_made_once(monkeypatch):
    """Threads are started on first use and reused by every later call
    (a pool per call would start threads in every layer of every step)."""
    _direct_kernels()
    monkeypatch.setenv("XPNN_NUM_THREADS", "2")
    monkeypatch.setattr(conv, "_pool", None)      # whatever earlier tests made
    x, w, b = _data((3, 3, 8, 8), (4, 3, 3, 3), np.float32)
    conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    pool = conv._pool
    assert pool is not None and pool[1] == 1
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    conv_backward_fast_params(out, cache)
    assert conv._pool is pool


@pytest.mark.parametrize("per_chunk", [1, 2, 3])
def test_direct_dx_in_chunks_with_a_short_last_one(monkeypatch, per_chunk):
    """With dx asked for, the direct route still builds dx a few samples at
    a time (GEMM + col2im): 7 samples in chunks of 1, 2 and 3, against the
    naive loops."""
    _direct_kernels()
    x, w, b = _data((7, 3, 6, 5), (4, 3, 3, 3), np.float64, seed=9)
    p = {"stride": 1, "pad": 1}
    K, P = 3 * 3 * 3, 6 * 5
    monkeypatch.setattr(conv, "CHUNK_BYTES", per_chunk * K * P * 8)
    assert conv._chunk(7, K, P, 8) == per_chunk
    out, cache = conv_forward_fast(x, w, b, p)
    dout = np.random.RandomState(3).randn(*out.shape)
    _, cache_ref = conv_forward_naive(x, w, b, p)
    for got, want in zip(conv_backward_fast_params(dout, cache, need_dx=True),
                         conv_backward_naive(dout, cache_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_dtype, w_dtype", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_dtypes_compute_in_the_promoted_dtype(xb, x_dtype, w_dtype):
    """x and w of different float dtypes: the forward computes in the
    promoted dtype (as the naive one does), and so do the gradients."""
    x, w, b = _data((2, 3, 6, 6), (4, 3, 3, 3), np.float64, seed=12)
    p = {"stride": 1, "pad": 1}
    out, cache = conv_forward_fast(xb.asarray(x.astype(x_dtype)), xb.asarray(w.astype(w_dtype)),
                                   xb.asarray(b.astype(w_dtype)), p)
    assert xb.host(out).dtype == np.float64
    dout = np.random.RandomState(5).randn(*tuple(out.shape))
    ref_out, cache_ref = conv_forward_naive(x.astype(x_dtype).astype(np.float64),
                                            w.astype(w_dtype).astype(np.float64),
                                            b.astype(w_dtype).astype(np.float64), p)
    np.testing.assert_allclose(xb.host(out), ref_out, rtol=1e-12)
    for got, want in zip(conv_backward_fast_params(xb.asarray(dout), cache, need_dx=True),
                         conv_backward_naive(dout, cache_ref)):
        assert xb.host(got).dtype == np.float64
        np.testing.assert_allclose(xb.host(got), want, rtol=1e-10, atol=1e-12)


def test_a_tampered_cache_is_refused_by_the_backward_by_name():
    x, w, b = _data((2, 3, 5, 5), (4, 3, 3, 3), np.float64)
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    cache[3]["stride"] = 3
    with pytest.raises(ValueError) as info:
        conv_backward_fast_params(np.ones(out.shape), cache)
    assert str(info.value).startswith("conv_backward_fast: stride 3 does not fit")


def test_a_filter_bank_of_the_wrong_rank_is_named_whole():
    x, w, b = _data((2, 3, 5, 5), (4, 3, 3), np.float64)
    with pytest.raises(ValueError) as info:
        conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    assert str(info.value) == "conv_forward_fast: w must be 4-D (F, C, HH, WW), got shape (4, 3, 3)"
