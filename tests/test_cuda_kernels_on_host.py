"""The CUDA pooling kernels' bodies, checked without a GPU (the
convolution's are in test_cuda_conv_on_host.py).

CuPy's ElementwiseKernel runs its body once per output index ``i``, with
``raw`` arrays indexed directly and output names bound to ``out[i]``. This
test compiles the very same body strings from xpnn.layers._cuda as C++ in a
host loop that does exactly that (T = double) and compares the results with
the NumPy path, so the index arithmetic of the argmax pooling and its
gather backward is verified here; on a GPU the CuPy tests run them
for real.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from xpnn.layers import _cuda, max_pool_backward_fast, max_pool_forward_fast

CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build the host harness")

D = ctypes.POINTER(ctypes.c_double)
I = ctypes.POINTER(ctypes.c_int32)


def _fn(name, args, outs, body):
    binds = " ".join(f"T& {o} = {o}_out[i];" if o != "idx" else f"int& {o} = {o}_out[i];"
                     for o in outs)
    params = ", ".join([args] + [f"{'int' if o == 'idx' else 'T'}* {o}_out" for o in outs])
    return (f'extern "C" void {name}({params}, long long n) {{\n'
            f"  for (long long i = 0; i < n; i++) {{ {binds}\n{body}\n  }}\n}}\n")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    src = "#include <algorithm>\nusing std::min;\ntypedef double T;\n"
    src += _fn("pool_fwd", "const T* x, int H, int W, int ph, int pw, int s, int Ho, int Wo",
               ["out", "idx"], _cuda._POOL_FWD)
    src += _fn("pool_bwd", "const T* dout, const int* idx, int H, int W, int ph, int pw, "
                           "int s, int Ho, int Wo", ["dx"], _cuda._POOL_BWD)
    d = tmp_path_factory.mktemp("cudahost")
    (d / "k.cpp").write_text(src)
    res = subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-o", str(d / "k.so"),
                          str(d / "k.cpp")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return ctypes.CDLL(str(d / "k.so"))


def _p(a, kind=D):
    return a.ctypes.data_as(kind)


@pytest.mark.parametrize("ph, pw, s", [(2, 2, 2), (3, 2, 1), (3, 3, 2), (2, 3, 3)])
def test_argmax_pooling_and_gather_backward(lib, ph, pw, s):
    r = np.random.RandomState(1)
    x = r.randint(0, 3, size=(2, 3, 8, 9)).astype(np.float64)  # ties
    x[0, 1, 2, 3] = np.nan
    N, C, H, W = x.shape
    p = {"pool_height": ph, "pool_width": pw, "stride": s}
    ref_out, cache = max_pool_forward_fast(x, p)
    Ho, Wo = ref_out.shape[2:]
    out = np.empty(ref_out.shape)
    idx = np.empty(ref_out.shape, dtype=np.int32)
    lib.pool_fwd(_p(x), H, W, ph, pw, s, Ho, Wo, _p(out), _p(idx, I),
                 ctypes.c_longlong(out.size))
    np.testing.assert_array_equal(out, ref_out)
    dout = r.randn(*ref_out.shape)
    ref_dx = max_pool_backward_fast(dout, cache)
    dx = np.empty(x.shape)
    lib.pool_bwd(_p(dout), _p(idx, I), H, W, ph, pw, s, Ho, Wo, _p(dx),
                 ctypes.c_longlong(dx.size))
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-13, atol=1e-13)
