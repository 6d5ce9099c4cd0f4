"""The GPU convolution (xpnn.backend.cupy._cuda.conv_forward / conv_input_grad):
its kernels compiled for the host, driven by the functions the GPU runs,
against conv_forward_fast / conv_backward_fast on NumPy; odd sizes,
non-square filters, stride and padding."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.backend.cupy import _cuda
from xpnn.layers import conv_backward_fast, conv_forward_fast
from xpnn.layers._columns import im2col
from xpnn.layers._util import pad_hw

import cuda_host

pytestmark = pytest.mark.skipif(cuda_host.CXX is None,
                                reason="no C++ compiler to build the host harness")


@pytest.fixture(scope="module", params=["double", "float"])
def kernels(request, tmp_path_factory):
    return cuda_host.HostKernels(_cuda.CONV_ELEMENTWISE, request.param,
                                 tmp_path_factory.mktemp("conv" + request.param))


@pytest.mark.parametrize("xs, ws, stride, pad", [
    ((2, 3, 7, 6), (4, 3, 3, 2), 1, 1), ((1, 2, 9, 9), (3, 2, 3, 3), 2, 1),
    ((3, 1, 8, 7), (2, 1, 2, 3), 1, 0), ((2, 2, 5, 5), (5, 2, 3, 3), 2, 2)])
def test_gpu_conv_path_matches_numpy(kernels, xs, ws, stride, pad):
    dt = kernels.dt
    tol = 1e-12 if dt == np.float64 else 1e-5
    r = np.random.RandomState(0)
    x, w, b = r.randn(*xs).astype(dt), r.randn(*ws).astype(dt), r.randn(ws[0]).astype(dt)
    param = {"stride": stride, "pad": pad}
    ref, cache = conv_forward_fast(x, w, b, param)
    Ho, Wo = ref.shape[2:]
    out, cols = _cuda.conv_forward(x, w, b, stride, pad, Ho, Wo, kernel=kernels, xp=np)
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    kh, kw = ws[2], ws[3]
    np.testing.assert_array_equal(                     # the host's column layout
        cols, im2col(np, pad_hw(np, x, pad), kh, kw, stride, Ho, Wo))
    assert out.dtype == cols.dtype == dt               # allocated in the input's type
    dout = r.randn(*ref.shape).astype(dt)
    rdx, _, _ = conv_backward_fast(dout, cache)
    F, C, kh, kw = w.shape
    d2 = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(F, -1)
    dcols = w.reshape(F, -1).T @ d2
    dx = _cuda.conv_input_grad(dcols, xs[0], C, xs[2], xs[3], kh, kw, stride, pad, Ho, Wo,
                               kernel=kernels, xp=np)
    np.testing.assert_allclose(dx, rdx, rtol=tol, atol=tol)
    assert dx.dtype == dt
