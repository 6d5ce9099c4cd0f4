"""The CUDA pooling kernels' bodies, checked without a GPU (the
convolution's are in test_cuda_conv_on_host.py).

CuPy's ElementwiseKernel runs its body once per output index ``i``, with
``raw`` arrays indexed directly and output names bound to ``out[i]``. This
test compiles the very same body strings from xpnn.backend.cupy._cuda as C++ in a
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

from xpnn.backend.cupy import CupyKernels, _cuda
from xpnn.layers import max_pool_backward_fast, max_pool_forward_fast

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


# ---------------------------------------------------------------- max pooling and ReLU in one kernel
@pytest.fixture(scope="module", params=["double", "float"])
def pool_kernels(request, tmp_path_factory):
    import cuda_host
    return cuda_host.HostKernels(_cuda.POOL_SPECS, request.param,
                                 tmp_path_factory.mktemp("pool" + request.param))


def _pool_relu_case(dt, seed=2):
    """Integer-valued planes around zero (ties, all-negative windows,
    windows whose maximum is 0), one NaN."""
    r = np.random.RandomState(seed)
    x = r.randint(-3, 3, size=(2, 3, 8, 9)).astype(dt)
    x[1, 2, :4, :4] = -1.0
    x[0, 1, 0, 0] = np.nan                          # in the first window of every geometry
    return x, r


@pytest.mark.parametrize("ph, pw, s", [(2, 2, 2), (3, 2, 1), (2, 3, 3)])
def test_pool_relu_kernels_equal_pool_then_relu(pool_kernels, ph, pw, s):
    """ReLU(max pool) and its backward, each one kernel, against the array
    path's max pooling and ReLU (the ReLU's mask taken from the output)."""
    from xpnn.layers import relu_backward, relu_forward
    dt = pool_kernels.dt
    x, r = _pool_relu_case(dt)
    N, C, H, W = x.shape
    param = {"pool_height": ph, "pool_width": pw, "stride": s}
    p, cache = max_pool_forward_fast(x, param)
    ref_out, relu_cache = relu_forward(p)
    Ho, Wo = p.shape[2:]
    out, idx = _cuda.max_pool_forward(x, ph, pw, s, Ho, Wo, relu=True, kernel=pool_kernels,
                                      xp=np)
    np.testing.assert_array_equal(out, ref_out)
    assert np.isnan(out).sum() == np.isnan(ref_out).sum() >= 1 and (out >= 0)[~np.isnan(out)].all()
    _, plain_idx = _cuda.max_pool_forward(x, ph, pw, s, Ho, Wo, kernel=pool_kernels, xp=np)
    np.testing.assert_array_equal(idx, plain_idx)
    dout = r.randn(*p.shape).astype(dt)
    dout[0, 0, 0, 0] = np.inf                       # where the ReLU passes nothing, too
    ref_dx = max_pool_backward_fast(relu_backward(dout, relu_cache), cache)
    dx = _cuda.max_pool_backward(dout, idx, H, W, ph, pw, s, relu_out=out, kernel=pool_kernels,
                                 xp=np)
    np.testing.assert_array_equal(dx, ref_dx)
    plain = _cuda.max_pool_backward(dout, idx, H, W, ph, pw, s, kernel=pool_kernels, xp=np)
    np.testing.assert_array_equal(plain, max_pool_backward_fast(dout, cache))


@pytest.fixture(scope="module", params=["double", "float"])
def cuda(request, tmp_path_factory):
    import cuda_host
    return cuda_host.HostCudaKernels(request.param, tmp_path_factory.mktemp("all" + request.param))


def test_networks_and_sandwiches_take_the_one_kernel_route(cuda, monkeypatch):
    """A ReLU followed by max pooling (in a model, and in the sandwiches)
    runs as the one-kernel pair where the CUDA kernels serve: here the whole
    model runs through the CuPy backend's kernels (compiled for the host),
    with the loss and gradients of NumPy's path, the pair's route asserted."""
    from xpnn import backend
    from xpnn.layers import conv_relu_pool_backward, conv_relu_pool_forward, pooling
    from xpnn.models import ConvNet
    dt = cuda.dt
    r = np.random.RandomState(0)
    X, y = r.randn(4, 2, 8, 6).astype(dt), r.randint(3, size=4)      # planes not square
    model = ConvNet(input_dim=(2, 8, 6), conv_blocks=((3,),), hidden_dims=(5,), num_classes=3,
                    dtype=dt, seed=0)
    w, b = r.randn(3, 2, 3, 3).astype(dt), r.randn(3).astype(dt)
    conv, pool = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    with backend.use_backend("numpy"):
        ref_loss, ref_grads = model.loss(X, y)
    ref_out, cache = conv_relu_pool_forward(X, w, b, conv, pool)
    dout = r.randn(*ref_out.shape).astype(dt)
    ref_sandwich = conv_relu_pool_backward(dout, cache)
    calls = []
    for name in ("max_pool_forward", "max_pool_backward"):
        real = getattr(_cuda, name)

        def recorded(*a, _real=real, _name=name, **k):
            calls.append((_name, k.get("relu", False) or k.get("relu_out") is not None))
            return _real(*a, **k)
        monkeypatch.setattr(_cuda, name, recorded)
    monkeypatch.setattr(backend.get("numpy"), "kernels", cuda)
    tol = 1e-10 if dt == np.float64 else 2e-4
    with backend.use_backend("numpy"):     # NumPy arrays stand in for CuPy's, whatever the default
        loss, grads = model.loss(X, y)
    assert calls == [("max_pool_forward", True), ("max_pool_backward", True)]
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    for k in ref_grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=tol, atol=tol, err_msg=k)
    out, cache = conv_relu_pool_forward(X, w, b, conv, pool)
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for got, want in zip(conv_relu_pool_backward(dout, cache), ref_sandwich):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert len(calls) == 4 and all(relu for _, relu in calls)
    # the one-kernel route checks what the two layers check, in their words
    with pytest.raises(ValueError, match="^relu_backward: dout has shape"):
        conv_relu_pool_backward(dout[:, :, :1], cache)
    with pytest.raises(ValueError, match="^max_pool_forward_fast: pool window 9x2"):
        pooling._max_pool_relu_forward(X, {"pool_height": 9, "pool_width": 2, "stride": 1})
    assert len(calls) == 4


def test_the_one_kernel_pair_needs_float32_or_float64_of_one_dtype(monkeypatch):
    """float16 and mixed dtypes do not take the pair's kernels (the layers
    then run the ReLU and the pool's backward apart, which refuses float16,
    as before); float32 and float64 do."""
    k = CupyKernels()
    monkeypatch.setattr(k, "_owns", lambda a: isinstance(a, np.ndarray))  # NumPy for CuPy

    def fused_route(*args, **kwargs):
        raise AssertionError("the one-kernel route was taken")
    monkeypatch.setattr(_cuda, "max_pool_forward", fused_route)
    monkeypatch.setattr(_cuda, "max_pool_backward", fused_route)
    x16 = np.ones((1, 1, 2, 2), np.float16)
    assert k.max_pool_relu_forward(x16, 2, 2, 2, 1, 1) is None
    one = {dt: np.ones((1, 1, 1, 1), dt) for dt in (np.float16, np.float32, np.float64)}
    assert k.max_pool_relu_backward(one[np.float16], None, one[np.float16], 2, 2, 2, 2, 2) \
        is None
    assert k.max_pool_relu_backward(one[np.float32], None, one[np.float64], 2, 2, 2, 2, 2) \
        is None
    for dt in (np.float32, np.float64):
        with pytest.raises(AssertionError, match="one-kernel"):
            k.max_pool_relu_forward(np.ones((1, 1, 2, 2), dt), 2, 2, 2, 1, 1)
        with pytest.raises(AssertionError, match="one-kernel"):
            k.max_pool_relu_backward(one[dt], None, one[dt], 2, 2, 2, 2, 2)


def test_the_pair_falls_back_to_the_two_layers_where_its_kernel_declines(monkeypatch):
    """A backend whose pair kernel declines (returns None): the ReLU's and
    the pool's own backward, with their results."""
    from xpnn import backend
    from xpnn.layers import pooling, relu_backward
    x = np.random.RandomState(5).randn(2, 3, 4, 4)
    p, cache = max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    out = np.maximum(p, 0.0)
    asked = []

    class Declines(type(backend.get("numpy").kernels)):
        def max_pool_relu_backward(self, *args):
            asked.append(args[0].dtype)
            return None
    monkeypatch.setattr(backend.get("numpy"), "kernels", Declines())
    dout = np.random.RandomState(6).randn(*p.shape).astype(np.float32)
    for a, b in ((dout, out), (out.astype(np.float32), dout.astype(np.float64))):
        np.testing.assert_array_equal(pooling._max_pool_relu_backward(a, b, cache),
                                      max_pool_backward_fast(relu_backward(a, b), cache))
    assert asked == [np.float32, np.float32]


@pytest.mark.parametrize("row", sorted(__import__("layer_cases").LAYERS))
def test_every_layer_class_through_the_cuda_kernels(cuda, row, monkeypatch):
    """Each row of the layer table, in a small network, with the CuPy
    backend's Kernels (host builds) in place of NumPy's: the loss, every
    gradient and the scores of NumPy's own path."""
    from xpnn import backend
    from test_layer_table import _inputs, _loss, _net
    import copy
    dt = cuda.dt
    model = _net(row, dtype=dt)
    twin = copy.deepcopy(model)       # the same running statistics to start from
    r = np.random.RandomState(7)
    X, y = _inputs(row, model, r, 5), r.randint(3, size=5)
    X = X.astype(dt) if X.dtype.kind == "f" else X
    with backend.use_backend("numpy"):
        ref_loss, ref_grads = _loss(model, X, y)
        ref_scores = _loss(model, X)
        monkeypatch.setattr(backend.get("numpy"), "kernels", cuda)
        loss, grads = _loss(twin, X, y)
        scores = _loss(twin, X)
    tol = 1e-10 if dt == np.float64 else 2e-4
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    np.testing.assert_allclose(scores, ref_scores, rtol=tol, atol=tol)
    for k in ref_grads:
        assert grads[k].dtype == dt, k
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_a_recurrent_step_is_one_kernel_each_way(cuda, cell, monkeypatch):
    """Through the CuPy backend's kernels (compiled for the host), every RNN
    or LSTM step runs its gates as one kernel forward and one backward (the
    products h @ Wh and da @ Wh.T besides), with the scores, loss and every
    gradient of NumPy's path; a CaptioningRNN too."""
    from xpnn import backend
    from xpnn.layers import recurrent as R
    from xpnn.models import CaptioningRNN
    dt = cuda.dt
    r = np.random.RandomState(3)
    N, T, D, H = 3, 4, 5, 6
    k = 4 if cell == "lstm" else 1
    args = [r.randn(N, T, D), r.randn(N, H), r.randn(D, k * H), r.randn(H, k * H),
            r.randn(k * H)]
    args = [a.astype(dt) for a in args]
    fwd, bwd = (R.lstm_forward, R.lstm_backward) if cell == "lstm" else \
        (R.rnn_forward, R.rnn_backward)
    dout = r.randn(N, T, H).astype(dt)
    np.random.seed(0)
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "a": 2, "b": 3}, input_dim=5,
                          wordvec_dim=4, hidden_dim=6, cell_type=cell, dtype=dt)
    feats, caps = r.randn(3, 5).astype(dt), r.randint(4, size=(3, 6))
    with backend.use_backend("numpy"):
        ref_out, cache = fwd(*args)
        ref = bwd(dout, cache)
        ref_loss, ref_grads = model.loss(feats, caps)
        calls = []
        for name in (f"{cell}_step_forward", f"{cell}_step_backward"):
            real = getattr(_cuda, name)

            def recorded(*a, _real=real, _name=name, **kw):
                calls.append(_name)
                return _real(*a, **kw)
            monkeypatch.setattr(_cuda, name, recorded)
        monkeypatch.setattr(backend.get("numpy"), "kernels", cuda)
        out, cache = fwd(*args)
        got = bwd(dout, cache)
        loss, grads = model.loss(feats, caps)
    assert calls.count(f"{cell}_step_forward") == T + 5       # 4 steps, then the model's 5
    assert calls.count(f"{cell}_step_backward") == T + 5
    tol = 1e-10 if dt == np.float64 else 2e-4
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for g, w in zip(got, ref):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    for name in ref_grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=tol, atol=tol,
                                   err_msg=name)


def test_an_lstm_whose_first_step_falls_back_still_matches(cuda, monkeypatch):
    """A Fortran-ordered h0 sends the first step down the portable path (its
    gates are then strided), the others through the kernels: the backward
    mixes both ways (a kernel's cell gradient is (N, 4H) wide) and gives
    NumPy's numbers."""
    from xpnn import backend
    from xpnn.layers import recurrent as R
    dt = cuda.dt
    r = np.random.RandomState(4)
    N, T, D, H = 3, 4, 5, 6
    x, h0 = r.randn(N, T, D).astype(dt), np.asfortranarray(r.randn(N, H).astype(dt))
    Wx, Wh, b = (r.randn(D, 4 * H).astype(dt), r.randn(H, 4 * H).astype(dt),
                 r.randn(4 * H).astype(dt))
    dout = r.randn(N, T, H).astype(dt)
    with backend.use_backend("numpy"):
        ref_out, cache = R.lstm_forward(x, h0, Wx, Wh, b)
        ref = R.lstm_backward(dout, cache)
        monkeypatch.setattr(backend.get("numpy"), "kernels", cuda)
        out, cache = R.lstm_forward(x, h0, Wx, Wh, b)
        got = R.lstm_backward(dout, cache)
    tol = 1e-10 if dt == np.float64 else 2e-4
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for g, w in zip(got, ref):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
