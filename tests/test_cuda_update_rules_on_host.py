"""The update rules' CUDA kernels (each rule's own body, run by the CuPy
backend's Kernels), compiled for the host and run over NumPy arrays, must
give the very numbers of the array-API path: bit for bit, in float64 and
float32, over several steps, one parameter at a time and all at once."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from xpnn import backend, optim
from xpnn.backend.cupy import CupyKernels, _update

import cuda_host

pytestmark = pytest.mark.skipif(cuda_host.CXX is None,
                                reason="no C++ compiler to build the host harness")

#: every registered rule that has a kernel body
FUSED = sorted(name for name, rule in optim.UPDATE_RULES.items() if rule.kernel is not None)


@pytest.fixture(scope="module", params=["double", "float"])
def cuda(request, tmp_path_factory):
    return cuda_host.HostCudaKernels(request.param, tmp_path_factory.mktemp(request.param))


@contextlib.contextmanager
def _on_cuda(kernels, log):
    """NumPy arrays take the CUDA kernels (host builds) inside this block;
    ``log`` records the rule of each launch, per parameter ("update") or
    for all ("update_all")."""
    real_one, real_all = kernels.update, kernels.update_all

    def update(rule, *args):
        out = real_one(rule, *args)
        if out is not None:
            log.append(("update", rule.name))
        return out

    def update_all(rule, *args):
        log.append(("update_all", rule.name))
        return real_all(rule, *args)
    host = backend.get("numpy")
    kernels.update, kernels.update_all, host.kernels = update, update_all, kernels
    try:
        yield
    finally:
        del kernels.update, kernels.update_all, host.kernels   # back to the classes' own


def test_every_built_in_rule_has_a_kernel():
    assert FUSED == sorted(optim.UPDATE_RULES)


@pytest.mark.parametrize("name", FUSED)
def test_fused_rule_equals_the_array_path(cuda, name):
    dt = cuda.dt
    r = np.random.RandomState(0)
    w = r.randn(37).astype(dt)
    rule = optim.UPDATE_RULES[name]
    ref_w, ref_cfg = w.copy(), {"learning_rate": 3e-2}
    got_w, got_cfg = w.copy(), {"learning_rate": 3e-2}
    for step in range(4):
        dw = r.randn(37).astype(dt)
        ref_w, ref_cfg = rule(ref_w, dw, ref_cfg)
        log = []
        with _on_cuda(cuda, log):
            got_w, got_cfg = rule(got_w, dw, got_cfg)
        assert log == [("update", name)], "the rule did not run its kernel"
        assert got_w.dtype == ref_w.dtype
        np.testing.assert_array_equal(got_w, ref_w, err_msg=f"step {step}")
        assert sorted(got_cfg) == sorted(ref_cfg)
        for k, v in ref_cfg.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(got_cfg[k], v, err_msg=f"{k} at step {step}")
            else:
                assert got_cfg[k] == v, k


class _NoKernel(optim.UpdateRule):
    """A user's rule without a kernel body (sign SGD)."""
    name = "sign_sgd"
    defaults = dict(learning_rate=0.1)

    def step(self, xp, w, dw, c):
        return (w - c["learning_rate"] * xp.sign(dw),)


def test_a_rule_without_a_kernel_runs_its_array_step_where_kernels_serve(cuda):
    """On a GPU a rule with no kernel body takes its array path, alone and
    in update_all (once a KeyError on the first GPU step)."""
    log = []
    rule = _NoKernel()
    w = np.array([1.0, -2.0, 0.5], dtype=cuda.dt)
    dw = np.array([3.0, -1.0, 0.0], dtype=cuda.dt)
    params = {"a": w.copy(), "b": w.copy()}
    configs = {"a": {}, "b": {}}
    with _on_cuda(cuda, log):
        new, cfg = rule(w, dw)
        optim.update_all(rule, params, {"a": dw, "b": dw}, configs)
    np.testing.assert_array_equal(new, np.array([0.9, -1.9, 0.5], dtype=cuda.dt))
    assert cfg == {"learning_rate": 0.1} and new.dtype == cuda.dt
    for k in params:
        np.testing.assert_array_equal(params[k], new)
    assert log == []


# ---------------------------------------------------------------- every parameter in one launch
_SHAPES = {"W1": (5, 7), "b1": (7,), "gamma": (1,), "W2": (7, 3), "b2": (3,)}


def _steps(rule, dt, configs, update, cuda, log, steps=4):
    """``steps`` updates of the same parameters and gradients by the rule on
    every parameter alone (NumPy's own path) and by ``update`` with the CUDA
    kernels; returns both runs."""
    r = np.random.RandomState(1)
    ref_p = {k: r.randn(*s).astype(dt) for k, s in _SHAPES.items()}
    got_p = {k: v.copy() for k, v in ref_p.items()}
    ref_c = {k: dict(c) for k, c in configs.items()}
    got_c = {k: dict(c) for k, c in configs.items()}
    for _ in range(steps):
        grads = {k: r.randn(*s).astype(dt) for k, s in _SHAPES.items()}
        for k in _SHAPES:
            ref_p[k], ref_c[k] = rule(ref_p[k], grads[k], ref_c[k])
        with _on_cuda(cuda, log):
            update(rule, got_p, grads, got_c)
    return ref_p, ref_c, got_p, got_c


def _assert_same(ref_p, ref_c, got_p, got_c):
    for k in _SHAPES:
        assert got_p[k].shape == ref_p[k].shape and got_p[k].dtype == ref_p[k].dtype
        np.testing.assert_array_equal(got_p[k], ref_p[k], err_msg=k)
        assert sorted(got_c[k]) == sorted(ref_c[k])
        for key, v in ref_c[k].items():
            if isinstance(v, np.ndarray):
                assert got_c[k][key].shape == v.shape
                np.testing.assert_array_equal(got_c[k][key], v, err_msg=f"{k} {key}")
            else:
                assert got_c[k][key] == v, (k, key)


@pytest.mark.parametrize("name", FUSED)
def test_one_launch_for_every_parameter_gives_each_its_own_numbers(cuda, name):
    """update_all with a rule that has a kernel: one launch per step for all
    five parameters (shapes of 35, 7, 1, 21 and 3 elements), bit for bit
    what the rule's array step gives each parameter alone, state included,
    from the first step (no state yet) on."""
    log = []
    configs = {k: {"learning_rate": 3e-2} for k in _SHAPES}
    _assert_same(*_steps(optim.UPDATE_RULES[name], cuda.dt, configs, optim.update_all, cuda, log))
    assert log == [("update_all", name)] * 4


def test_update_all_runs_each_rule_alone_where_one_launch_does_not_apply(cuda, monkeypatch):
    """Configs that differ (a rate per parameter), a rule of the user's, a
    single parameter, or arrays the one launch does not take: the rule runs
    on each parameter, as the course's Solver loop does."""
    log = []
    for odd in range(len(_SHAPES)):       # one config differs: the first, second, ... last
        differ = {k: {"learning_rate": 3e-2 * (2 if i == odd else 1)}
                  for i, k in enumerate(_SHAPES)}
        _assert_same(*_steps(optim.adam, cuda.dt, differ, optim.update_all, cuda, log))
    assert ("update_all", "adam") not in log and ("update", "adam") in log

    def mine(w, dw, config=None):
        return optim.sgd(w, dw, config)
    log.clear()
    same = {k: {"learning_rate": 3e-2} for k in _SHAPES}
    _assert_same(*_steps(mine, cuda.dt, same, optim.update_all, cuda, log))
    assert set(log) == {("update", "sgd")}   # each parameter alone, by its own kernel
    log.clear()
    w, dw = np.ones(3, cuda.dt), np.ones(3, cuda.dt)
    params, cfgs = {"w": w}, {"w": {"learning_rate": 0.5}}
    with _on_cuda(cuda, log):
        optim.update_all(optim.sgd, params, {"w": dw}, cfgs)
    np.testing.assert_array_equal(params["w"], [0.5, 0.5, 0.5])
    assert log == [("update", "sgd")]
    log.clear()
    params = {"w": w, "v": w.copy()}                    # two are enough for one launch
    cfgs = {k: {"learning_rate": 0.5} for k in params}
    with _on_cuda(cuda, log):
        optim.update_all(optim.sgd, params, {"w": dw, "v": dw}, cfgs)
    assert log == [("update_all", "sgd")] and params["v"].tolist() == [0.5, 0.5, 0.5]
    log.clear()
    monkeypatch.setattr(cuda, "update_all_applies", lambda *arrays: False)
    _assert_same(*_steps(optim.adam, cuda.dt, same, optim.update_all, cuda, log))
    assert ("update_all", "adam") not in log


def test_one_launch_needs_contiguous_arrays_of_one_kind(monkeypatch):
    """The kernel reads each array through its address: a strided view
    cannot go; nor can anything the fused kernels refuse."""
    a, b = np.ones((4, 3)), np.ones((3, 4))
    k = CupyKernels()
    assert not k.update_all_applies(a, b)          # NumPy arrays: not CuPy's
    monkeypatch.setattr(k, "_owns", lambda x: isinstance(x, np.ndarray))
    assert k.update_all_applies(a, b)
    assert not k.update_all_applies(a, b.T)
    assert not k.update_all_applies(a[:, ::2], b)
    assert not k.update_all_applies(a, b.astype(np.float32))
    monkeypatch.setenv("XPNN_NO_FUSED_KERNELS", "1")
    assert not k.update_all_applies(a, b)


def test_one_launch_over_empty_parameters(cuda):
    """A parameter with no elements among others, and all of them empty."""
    dt = cuda.dt
    kernel = cuda._multi_kernel(optim.sgd)
    ws = [np.ones(0, dt), np.full((2, 2), 2.0, dt), np.ones((0, 3), dt)]
    dws = [np.ones_like(w) for w in ws]
    (new,) = _update.fused_all(kernel, np, ws, dws, [], (0.5,))
    assert [n.shape for n in new] == [(0,), (2, 2), (0, 3)]
    np.testing.assert_array_equal(new[1], np.full((2, 2), 1.5))
    (new,) = _update.fused_all(kernel, np, ws[::2], dws[::2], [], (0.5,))
    assert [n.shape for n in new] == [(0,), (0, 3)]


def test_update_all_checks_every_array_it_would_read(cuda, monkeypatch):
    """The one launch reads weights, gradients and state through their
    addresses: a strided view or another dtype among ANY of them sends
    every parameter through the rule alone."""
    log = []
    r = np.random.RandomState(4)
    dt, other = cuda.dt, (np.float32 if cuda.dt == np.float64 else np.float64)

    def case(spoil):
        params = {k: r.randn(4, 3).astype(dt) for k in ("a", "b", "c")}
        grads = {k: r.randn(4, 3).astype(dt) for k in params}
        cfgs = {k: {"learning_rate": 0.1, "velocity": r.randn(4, 3).astype(dt)} for k in params}
        spoil(params, grads, cfgs)
        ref_p = {k: v.copy() for k, v in params.items()}
        ref_c = {k: dict(c) for k, c in cfgs.items()}
        for k in params:
            ref_p[k], ref_c[k] = optim.sgd_momentum(ref_p[k], grads[k], ref_c[k])
        with _on_cuda(cuda, log):
            optim.update_all(optim.sgd_momentum, params, grads, cfgs)
        for k in params:
            np.testing.assert_array_equal(params[k], ref_p[k])
            np.testing.assert_array_equal(cfgs[k]["velocity"], ref_c[k]["velocity"])

    case(lambda p, g, c: None)
    assert log == [("update_all", "sgd_momentum")]
    log.clear()
    spoilers = [lambda p, g, c: p.update(b=np.asfortranarray(p["b"])),
                lambda p, g, c: g.update(c=np.asfortranarray(g["c"])),
                lambda p, g, c: c["a"].update(velocity=np.asfortranarray(c["a"]["velocity"])),
                lambda p, g, c: c["c"].update(velocity=c["c"]["velocity"].astype(other))]
    for spoil in spoilers:
        case(spoil)
    assert ("update_all", "sgd_momentum") not in log
