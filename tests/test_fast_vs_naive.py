"""Fast layers against the naive loops: odd sizes, non-square kernels,
strides, overlapping and non-tiling pools, and ties."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.layers import *  # noqa: F403

GEOMETRIES = [  # x shape, w shape, stride, pad
    ((2, 3, 7, 5), (4, 3, 3, 1), 2, 1),
    ((1, 2, 6, 9), (3, 2, 2, 4), 1, 0),
    ((3, 1, 5, 5), (2, 1, 5, 5), 1, 2),
    ((2, 2, 10, 7), (2, 2, 3, 3), 3, 1),
]


@pytest.mark.parametrize("xs, ws, stride, pad", GEOMETRIES)
def test_conv_fast_equals_naive(xb, xs, ws, stride, pad):
    r = np.random.RandomState(7)
    x, w, b = (xb.asarray(r.randn(*xs)), xb.asarray(r.randn(*ws)), xb.asarray(r.randn(ws[0])))
    p = {"stride": stride, "pad": pad}
    out_n, cache_n = conv_forward_naive(x, w, b, p)
    out_f, cache_f = conv_forward_fast(x, w, b, p)
    np.testing.assert_allclose(xb.host(out_f), xb.host(out_n), rtol=1e-12, atol=1e-13)
    dout = xb.asarray(r.randn(*out_n.shape))
    for gn, gf in zip(conv_backward_naive(dout, cache_n), conv_backward_fast(dout, cache_f)):
        np.testing.assert_allclose(xb.host(gf), xb.host(gn), rtol=1e-12, atol=1e-13)


POOLS = [(2, 2, 2), (3, 3, 2), (2, 3, 1), (3, 2, 3), (1, 1, 1)]


@pytest.mark.parametrize("ph, pw, s", POOLS)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_fast_equals_naive(xb, ph, pw, s, ties):
    r = np.random.RandomState(3)
    x = r.randint(0, 3, size=(2, 3, 7, 8)).astype(np.float64) if ties else r.randn(2, 3, 7, 8)
    p = {"pool_height": ph, "pool_width": pw, "stride": s}
    out_n, cache_n = max_pool_forward_naive(xb.asarray(x), p)
    out_f, cache_f = max_pool_forward_fast(xb.asarray(x), p)
    np.testing.assert_array_equal(xb.host(out_f), xb.host(out_n))
    dout = xb.asarray(r.randn(*out_n.shape))
    np.testing.assert_allclose(xb.host(max_pool_backward_fast(dout, cache_f)),
                               xb.host(max_pool_backward_naive(dout, cache_n)), rtol=1e-14)


def test_max_pool_ties_go_to_first_maximum(xb):
    x = xb.asarray(np.ones((1, 1, 2, 2)))
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for fwd, bwd in ((max_pool_forward_naive, max_pool_backward_naive),
                     (max_pool_forward_fast, max_pool_backward_fast)):
        _, cache = fwd(x, pool)
        dx = xb.host(bwd(xb.asarray(np.full((1, 1, 1, 1), 5.0)), cache))
        np.testing.assert_array_equal(dx, [[[[5.0, 0.0], [0.0, 0.0]]]])


def test_course_naive_vs_fast_cell(xb):
    """The notebook's naive-vs-fast comparison (batch cut to keep it quick)."""
    r = np.random.RandomState(231)
    x, w, b = r.randn(4, 3, 31, 31), r.randn(25, 3, 3, 3), r.randn(25)
    p = {"stride": 2, "pad": 1}
    out_n, cn = conv_forward_naive(xb.asarray(x), xb.asarray(w), xb.asarray(b), p)
    out_f, cf = conv_forward_fast(xb.asarray(x), xb.asarray(w), xb.asarray(b), p)
    assert out_f.shape == (4, 25, 16, 16)
    np.testing.assert_allclose(xb.host(out_f), xb.host(out_n), rtol=1e-11, atol=1e-12)
    dout = xb.asarray(r.randn(*out_n.shape))
    for gn, gf in zip(conv_backward_naive(dout, cn), conv_backward_fast(dout, cf)):
        np.testing.assert_allclose(xb.host(gf), xb.host(gn), rtol=1e-11, atol=1e-11)


def test_avg_and_global_pool_values(xb):
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)
    out, _ = avg_pool_forward(xb.asarray(x), {"pool_height": 2, "pool_width": 3, "stride": 1})
    ref = np.mean(np.stack([x[:, :, i:i + 3, j:j + 4] for i in range(2) for j in range(3)]), 0)
    np.testing.assert_allclose(xb.host(out), ref, rtol=1e-14)
    g, _ = global_avg_pool_forward(xb.asarray(x))
    np.testing.assert_allclose(xb.host(g), x.mean(axis=(2, 3)), rtol=1e-14)


@pytest.mark.parametrize("ph, pw, s", POOLS + [(2, 3, 2), (3, 2, 2)])
def test_avg_pool_equals_loops(xb, ph, pw, s):
    """Average pooling (a reshape when windows tile, shifted slices
    otherwise) against loops over the windows, forward and backward."""
    r = np.random.RandomState(5)
    x, p = r.randn(2, 3, 7, 8), {"pool_height": ph, "pool_width": pw, "stride": s}
    Ho, Wo = (7 - ph) // s + 1, (8 - pw) // s + 1
    out, cache = avg_pool_forward(xb.asarray(x), p)
    dout = r.randn(2, 3, Ho, Wo)
    ref, dref = np.zeros((2, 3, Ho, Wo)), np.zeros_like(x)
    for i in range(Ho):
        for j in range(Wo):
            ref[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].mean(axis=(2, 3))
            share = dout[:, :, i:i + 1, j:j + 1] / (ph * pw)
            dref[:, :, i * s:i * s + ph, j * s:j * s + pw] += share
    np.testing.assert_allclose(xb.host(out), ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(xb.host(avg_pool_backward(xb.asarray(dout), cache)), dref,
                               rtol=1e-13, atol=1e-15)


def test_views_give_the_results_of_their_copies(xb):
    """Strided and transposed views (a user's x[:, :, ::2] or a channels-
    last batch moved to N, C, H, W) through the fast layers: the results of
    their contiguous copies."""
    r = np.random.RandomState(11)
    base = r.randn(2, 9, 10, 3)
    x = np.transpose(base, (0, 3, 1, 2))[:, :, :, ::2]          # (2, 3, 9, 5), not contiguous
    assert not x.flags.c_contiguous
    pool = {"pool_height": 2, "pool_width": 2, "stride": 1}
    out_v, cache_v = max_pool_forward_fast(xb.asarray(x), pool)
    out_c, cache_c = max_pool_forward_fast(xb.asarray(np.ascontiguousarray(x)), pool)
    np.testing.assert_array_equal(xb.host(out_v), xb.host(out_c))
    dout = np.transpose(r.randn(*out_c.shape[::-1]), (3, 2, 1, 0))   # a non-contiguous dout
    np.testing.assert_array_equal(
        xb.host(max_pool_backward_fast(xb.asarray(dout), cache_v)),
        xb.host(max_pool_backward_fast(xb.asarray(np.ascontiguousarray(dout)), cache_c)))
    w, b = r.randn(4, 3, 3, 3), r.randn(4)
    for stride in (1, 2):                                     # the direct and the columns route
        p = {"stride": stride, "pad": 1}
        got, cache_g = conv_forward_fast(xb.asarray(x), xb.asarray(w), xb.asarray(b), p)
        want, cache_w = conv_forward_fast(xb.asarray(np.ascontiguousarray(x)), xb.asarray(w),
                                          xb.asarray(b), p)
        np.testing.assert_array_equal(xb.host(got), xb.host(want))
        d = np.transpose(r.randn(*tuple(want.shape)[::-1]), (3, 2, 1, 0))
        for g, h in zip(conv_backward_fast(xb.asarray(d), cache_g),
                        conv_backward_fast(xb.asarray(np.ascontiguousarray(d)), cache_w)):
            np.testing.assert_array_equal(xb.host(g), xb.host(h))


def test_integer_images_through_fast_max_pooling(xb):
    """Integer pixels (not what the compiled kernels take) pool by the
    portable path: the naive loops' values, the integer dtype kept."""
    x = np.arange(2 * 2 * 6 * 6).reshape(2, 2, 6, 6) % 11
    p = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, _ = max_pool_forward_fast(xb.asarray(x), p)
    ref, _ = max_pool_forward_naive(xb.asarray(x), p)
    assert xb.host(out).dtype == x.dtype
    np.testing.assert_array_equal(xb.host(out), xb.host(ref))


def test_conv_param_defaults_and_a_stride_that_is_no_multiple_of_the_filter(xb):
    """An empty conv_param is refused, as the course's code (which reads both
    keys) refuses it (it once meant stride 1 and no padding, so a forgotten
    'pad' went unnoticed); stride 3 with a 1x2 filter (7 - 1 and 8 - 2
    divisible by 3, 7 + 1 and 8 + 2 not)."""
    r = np.random.RandomState(13)
    x, w, b = r.randn(2, 2, 5, 6), r.randn(3, 2, 3, 2), r.randn(3)
    for fwd in (conv_forward_fast, conv_forward_naive):
        with pytest.raises(ValueError, match=r"conv_param is missing 'stride', 'pad'"):
            fwd(xb.asarray(x), xb.asarray(w), xb.asarray(b), {})
    x, w, b = r.randn(1, 2, 7, 8), r.randn(2, 2, 1, 2), r.randn(2)
    p = {"stride": 3, "pad": 0}
    out, _ = conv_forward_fast(xb.asarray(x), xb.asarray(w), xb.asarray(b), p)
    ref, _ = conv_forward_naive(xb.asarray(x), xb.asarray(w), xb.asarray(b), p)
    assert tuple(out.shape) == (1, 2, 3, 3)
    np.testing.assert_allclose(xb.host(out), xb.host(ref), rtol=1e-12, atol=1e-13)


def test_a_stride_that_does_not_fit_the_width_names_the_width(xb):
    x, w, b = np.ones((1, 1, 7, 8)), np.ones((1, 1, 3, 3)), np.zeros(1)
    with pytest.raises(ValueError) as info:
        conv_forward_fast(xb.asarray(x), xb.asarray(w), xb.asarray(b), {"stride": 2, "pad": 0})
    assert str(info.value) == (
        "conv_forward_fast: stride 2 does not fit: padded input width 8 minus filter width 3 "
        "must be divisible by the stride (x (1, 1, 7, 8), w (1, 1, 3, 3), pad 0)")
