"""float32 in, float32 out, for every layer; and float32 results agree with
float64 ones to float32 precision (normwise)."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.layers import softmax_loss, svm_loss

from layer_cases import CASES


def _normwise(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_stays_float32_and_matches_float64(xb, name):
    c = CASES[name]
    raw = c["make"](np.random.RandomState(5))
    results = {}
    for dtype in (np.float64, np.float32):
        a = xb.put({k: v.astype(dtype) for k, v in raw.items()})
        out, cache = c["fwd"](a)
        dout = xb.asarray(np.random.RandomState(1).randn(*out.shape).astype(dtype))
        grads = c["bwd"](dout, cache)
        for arr in (out, *grads):
            assert xb.host(arr).dtype == dtype, f"{name}: got {arr.dtype} for {dtype.__name__}"
        results[dtype] = [xb.host(v).astype(np.float64) for v in (out, *grads)]
    for r32, r64 in zip(results[np.float32], results[np.float64]):
        assert _normwise(r32, r64) < 1e-5


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss])
def test_loss_float32(xb, loss_fn):
    r = np.random.RandomState(0)
    x, y = r.randn(30, 5), r.randint(5, size=30)
    l64, d64 = loss_fn(xb.asarray(x), xb.asarray(y))
    l32, d32 = loss_fn(xb.asarray(x.astype(np.float32)), xb.asarray(y))
    assert xb.host(d32).dtype == np.float32 and xb.host(l32).dtype == np.float32
    assert abs(float(xb.host(l32)) - float(xb.host(l64))) < 1e-5 * abs(float(xb.host(l64)))
    assert _normwise(xb.host(d32).astype(np.float64), xb.host(d64)) < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_running_statistics_keep_the_dtype(xb, dtype):
    """The running mean and variance a train-mode call creates have x's
    dtype, so a float32 net's test-mode output stays float32."""
    from xpnn.layers import batchnorm_forward, spatial_batchnorm_forward
    r = np.random.RandomState(2)
    for fwd, shape in ((batchnorm_forward, (6, 3)), (spatial_batchnorm_forward, (2, 3, 4, 4))):
        x = xb.asarray(r.randn(*shape).astype(dtype))
        g, b = xb.asarray(np.ones(3, dtype)), xb.asarray(np.zeros(3, dtype))
        bn_param = {"mode": "train"}
        fwd(x, g, b, bn_param)
        assert xb.host(bn_param["running_mean"]).dtype == dtype
        assert xb.host(bn_param["running_var"]).dtype == dtype
        bn_param["mode"] = "test"
        assert xb.host(fwd(x, g, b, bn_param)[0]).dtype == dtype


def _mixed_call(c, raw, put):
    """A case's forward and backward with its first input in float32 and the
    others in float64: (outputs as float64 NumPy, their dtype names), or the
    exception's type."""
    from conftest import host
    first = next(iter(raw))
    a = put({k: v.astype(np.float32 if k == first else np.float64) for k, v in raw.items()})
    try:
        out, cache = c["fwd"](a)
        dout = put({"d": np.random.RandomState(1).randn(*out.shape)})["d"]
        arrays = (out, *c["bwd"](dout, cache))
    except (TypeError, ValueError) as exc:
        return type(exc)
    return [host(v) for v in arrays if v is not None]


@pytest.mark.parametrize("name", sorted(CASES))
def test_mixed_float32_and_float64_promote_alike_on_every_backend(xb, name):
    """float32 against float64 promotes as NumPy promotes, on every backend
    (torch's ``@`` alone does not promote: the layers call xp.matmul, which
    does), with NumPy's values; where NumPy's layer refuses the mix, so does
    the backend's."""
    c = CASES[name]
    raw = c["make"](np.random.RandomState(5))
    want = _mixed_call(c, raw, lambda d: d)
    got = _mixed_call(c, raw, xb.put)
    if isinstance(want, type):
        assert got is want, f"{name}: NumPy raises {want.__name__}, {xb.name} gave {got!r}"
        return
    assert not isinstance(got, type), f"{name}: {xb.name} raised {got.__name__}"
    assert [g.dtype for g in got] == [w.dtype for w in want], name
    for g, w in zip(got, want):   # float32 parts round alike, not bit for bit
        assert _normwise(g.astype(np.float64), w.astype(np.float64)) < 1e-6, name
