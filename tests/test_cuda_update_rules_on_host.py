"""The fused CUDA update rules (xpnn.optim._cuda), their bodies compiled for
the host and run over NumPy arrays, must give the very numbers of the
array-API path: bit for bit, in float64 and float32, over several steps."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn import optim
from xpnn.optim import _cuda

import cuda_host

pytestmark = pytest.mark.skipif(cuda_host.CXX is None,
                                reason="no C++ compiler to build the host harness")


@pytest.fixture(scope="module", params=["double", "float"])
def lib(request, tmp_path_factory):
    return request.param, cuda_host.build(_cuda.SPECS, request.param,
                                          tmp_path_factory.mktemp(request.param))


def _host_fused(so, T, calls):
    """A stand-in for ``xpnn.optim._cuda.fused`` that hands each rule the
    host build of its kernel (checking it is called with the very arrays it
    was chosen for), called as CuPy calls an ElementwiseKernel
    (one output: the array; several: a tuple), so the rule's own fused
    branch runs here."""
    def fused(name, *arrays):
        assert arrays and all(isinstance(a, np.ndarray) for a in arrays), arrays

        def kernel(*args):  # the arrays it was chosen for, then the scalars
            calls.append(name)
            assert all(a is b for a, b in zip(args, arrays)) and not any(
                isinstance(a, np.ndarray) for a in args[len(arrays):]), name
            outs = [o.reshape(args[0].shape)
                    for o in cuda_host.call(so, _cuda.SPECS, name, T, *args)]
            return outs[0] if len(outs) == 1 else tuple(outs)
        return kernel
    return fused


@pytest.mark.parametrize("name", sorted(_cuda.SPECS))
def test_fused_rule_equals_the_array_path(lib, name, monkeypatch):
    T, so = lib
    dt = np.float64 if T == "double" else np.float32
    r = np.random.RandomState(0)
    w = r.randn(37).astype(dt)
    rule = optim.UPDATE_RULES[name]
    ref_w, ref_cfg = w.copy(), {"learning_rate": 3e-2}
    got_w, got_cfg = w.copy(), {"learning_rate": 3e-2}
    for step in range(4):
        dw = r.randn(37).astype(dt)
        ref_w, ref_cfg = rule(ref_w, dw, ref_cfg)
        calls = []
        with monkeypatch.context() as m:
            m.setattr(optim, "fused", _host_fused(so, T, calls))
            got_w, got_cfg = rule(got_w, dw, got_cfg)
        assert calls == [name], "the rule did not run the fused kernel it was given"
        assert got_w.dtype == ref_w.dtype
        np.testing.assert_array_equal(got_w, ref_w, err_msg=f"step {step}")
        assert sorted(got_cfg) == sorted(ref_cfg)
        for k, v in ref_cfg.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(got_cfg[k], v, err_msg=f"{k} at step {step}")
            else:
                assert got_cfg[k] == v, k
