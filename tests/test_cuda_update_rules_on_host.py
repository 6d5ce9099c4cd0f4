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


def _fused_step(lib, T, name, w, dw, cfg):
    """What each rule's fused branch passes to its kernel."""
    lr = float(cfg["learning_rate"])
    run = lambda *a: cuda_host.call(lib, _cuda.SPECS, name, T, *a)  # noqa: E731
    if name == "sgd":
        return run(w, dw, lr)[0], {}
    if name in ("sgd_momentum", "sgd_nesterov_momentum"):
        mu = float(cfg["momentum"])
        extra = (1.0 + mu,) if name == "sgd_nesterov_momentum" else ()
        w, v = run(w, dw, cfg["velocity"], lr, mu, *extra)
        return w, {"velocity": v}
    if name == "rmsprop":
        d = float(cfg["decay_rate"])
        w, c = run(w, dw, cfg["cache"], lr, d, 1.0 - d, float(cfg["epsilon"]))
        return w, {"cache": c}
    if name == "adagrad":
        w, c = run(w, dw, cfg["cache"], lr, float(cfg["epsilon"]))
        return w, {"cache": c}
    t = cfg["t"] + 1
    b1, b2 = float(cfg["beta1"]), float(cfg["beta2"])
    w, m, v = run(w, dw, cfg["m"], cfg["v"], lr, b1, 1.0 - b1, b2, 1.0 - b2, 1.0 - b1 ** t,
                  1.0 - b2 ** t, float(cfg["epsilon"]))
    return w, {"m": m, "v": v, "t": t}


@pytest.mark.parametrize("name", sorted(_cuda.SPECS))
def test_fused_rule_equals_the_array_path(lib, name):
    T, so = lib
    dt = np.float64 if T == "double" else np.float32
    r = np.random.RandomState(0)
    w = r.randn(37).astype(dt)
    rule = optim.UPDATE_RULES[name]
    ref_w, ref_cfg = w.copy(), {"learning_rate": 3e-2}
    got_w, got_cfg = w.copy(), None
    for step in range(4):
        dw = r.randn(37).astype(dt)
        ref_w, ref_cfg = rule(ref_w, dw, ref_cfg)
        if got_cfg is None:  # the defaults and zero state the rule itself made
            got_cfg = {k: (np.zeros_like(w) if isinstance(v, np.ndarray) else v)
                       for k, v in ref_cfg.items()}
            got_cfg["t"] = 0 if "t" in got_cfg else None
        got_w, state = _fused_step(so, T, name, got_w, dw, got_cfg)
        got_cfg.update(state)
        np.testing.assert_array_equal(got_w, ref_w, err_msg=f"step {step}")
        for k, v in ref_cfg.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(got_cfg[k], v, err_msg=f"{k} at step {step}")
