"""The fused CUDA batch norm, softmax loss and ReLU backward
(xpnn.backend.cupy._cuda): their kernels compiled for
the host with CuPy's calling conventions emulated, driven by the very
functions the GPU path runs, against the array path."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.backend.cupy import CupyKernels, _cuda
from xpnn.layers import relu_backward, relu_forward
from xpnn.layers.normalization import _bn_backward_core, _bn_core

import cuda_host

pytestmark = pytest.mark.skipif(cuda_host.CXX is None,
                                reason="no C++ compiler to build the host harness")


@pytest.fixture(scope="module", params=["double", "float"])
def kernels(request, tmp_path_factory):
    return cuda_host.HostKernels(_cuda.BN_ELEMENTWISE, request.param,
                                 tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (7, 5), (3, 4, 8, 5)])
@pytest.mark.parametrize("threads", [None, 7, 13])
def test_fused_batchnorm_train_matches_the_array_path(kernels, shape, threads, monkeypatch):
    """Also with few first-pass threads (many elements each, strided), in
    both thread arrangements (L >= 32 puts a channel's threads together)."""
    import array_api_compat.numpy as xp
    if threads is not None:
        monkeypatch.setattr(_cuda, "PARTIAL_THREADS", threads)
    dt = kernels.dt
    tol = 1e-12 if dt == np.float64 else 2e-5
    r = np.random.RandomState(0)
    x = (3 * r.randn(*shape) + 1.5).astype(dt)
    C = shape[1]
    gamma, beta = r.randn(C).astype(dt), r.randn(C).astype(dt)
    rm, rv = r.randn(C).astype(dt), r.rand(C).astype(dt)
    param = {"mode": "train", "eps": 1e-5, "momentum": 0.8, "running_mean": rm.copy(),
             "running_var": rv.copy()}
    ref, cache = _bn_core(xp, x, gamma, beta, param, "test")
    out, mean, var, inv, rm_new, rv_new = _cuda.bn_train_forward(
        x, gamma, beta, rm, rv, 1e-5, 0.8, kernel=kernels, xp=np)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(rm_new, param["running_mean"], rtol=tol, atol=tol)
    np.testing.assert_allclose(rv_new, param["running_var"], rtol=tol, atol=tol)
    np.testing.assert_allclose(inv, cache["inv_std"], rtol=tol)

    dout = r.randn(*shape).astype(dt)
    rdx, rdg, rdb = _bn_backward_core(xp, dout, cache)
    dx, dg, db = _cuda.bn_train_backward(dout, x, mean, gamma, inv, kernel=kernels, xp=np)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, rdx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dg, rdg, rtol=tol, atol=tol)
    np.testing.assert_allclose(db, rdb, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (6, 5), (3, 2, 40)])
@pytest.mark.parametrize("threads", [None, 5])
def test_channel_sum_matches_numpy(kernels, shape, threads, monkeypatch):
    """The bias gradient of a cuDNN convolution: per-channel sums over every
    other axis (few threads: many elements each, strided)."""
    if threads is not None:
        monkeypatch.setattr(_cuda, "PARTIAL_THREADS", threads)
    a = np.random.RandomState(3).randn(*shape).astype(kernels.dt)
    axes = (0,) + tuple(range(2, a.ndim))
    tol = 1e-12 if kernels.dt == np.float64 else 1e-5
    np.testing.assert_allclose(_cuda.channel_sum(a, kernel=kernels, xp=np), a.sum(axis=axes),
                               rtol=tol, atol=tol)


def test_fused_relu_backward_matches(kernels):
    r = np.random.RandomState(1)
    x = r.randn(40).astype(kernels.dt)
    x[:3] = 0.0
    _, cache = relu_forward(x)
    d = r.randn(40).astype(kernels.dt)
    np.testing.assert_array_equal(kernels("relu_bwd")(d, x), relu_backward(d, cache))


@pytest.mark.parametrize("N, C", [(5, 10), (1, 3), (64, 6)])
def test_fused_softmax_loss_matches(kernels, N, C):
    from xpnn.layers import softmax_loss
    r = np.random.RandomState(N)
    x = (4 * r.randn(N, C)).astype(kernels.dt)
    y = r.randint(C, size=N)
    ref_loss, ref_dx = softmax_loss(x, y)
    loss, dx = _cuda.softmax_loss(x, y, kernel=kernels, xp=np)
    tol = 1e-12 if kernels.dt == np.float64 else 1e-5
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=tol)
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)
    assert loss.dtype == dx.dtype == kernels.dt   # float32 stays float32 (its scratch too)


class _CupyLike:
    """Stands for a CuPy array where only its backend and dtype are read."""
    __module__ = "cupy._core.core"

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def test_fused_kernels_serve_cupy_arrays_of_one_floating_dtype(monkeypatch):
    """Which arrays the fused CUDA kernels take, and XPNN_NO_FUSED_KERNELS=1
    turning them off (any other value leaves them on)."""
    f32, f64 = _CupyLike(np.float32), _CupyLike(np.float64)
    fuses = CupyKernels().fuses
    monkeypatch.delenv("XPNN_NO_FUSED_KERNELS", raising=False)
    assert fuses(f32, f32) and fuses(f64)
    assert not fuses(f32, f64)                      # mixed dtypes
    assert not fuses(_CupyLike(np.int32))           # not floating
    assert not fuses(f32, np.zeros(2, np.float32))  # one host array
    for value, on in (("1", False), ("0", True), ("", True)):
        monkeypatch.setenv("XPNN_NO_FUSED_KERNELS", value)
        assert fuses(f32) is on, value
