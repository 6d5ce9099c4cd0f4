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


# ---------------------------------------------------------------- every parameter in one launch
_SHAPES = {"W1": (5, 7), "b1": (7,), "gamma": (1,), "W2": (7, 3), "b2": (3,)}


@pytest.fixture(scope="module", params=["double", "float"])
def multi(request, tmp_path_factory):
    T = request.param
    return T, cuda_host.HostKernels(_cuda.MULTI_SPECS, T, tmp_path_factory.mktemp("multi" + T))


def _host_fused_all(kernels, launches):
    """``xpnn.optim.fused_all`` with the host build of the one kernel; the
    real function builds the pointer and offset tables and the views."""
    def fused_all(name, ws, dws, states, scalars):
        launches.append(name)
        return _cuda.fused_all(name, ws, dws, states, scalars,
                               kernel=kernels(f"multi_{name}"), xp=np)
    return fused_all


def _steps(rule, dt, configs, update, steps=4):
    """``steps`` updates of the same parameters and gradients by each rule
    on every parameter alone and by ``update``; returns both runs."""
    r = np.random.RandomState(1)
    ref_p = {k: r.randn(*s).astype(dt) for k, s in _SHAPES.items()}
    got_p = {k: v.copy() for k, v in ref_p.items()}
    ref_c = {k: dict(c) for k, c in configs.items()}
    got_c = {k: dict(c) for k, c in configs.items()}
    for _ in range(steps):
        grads = {k: r.randn(*s).astype(dt) for k, s in _SHAPES.items()}
        for k in _SHAPES:
            ref_p[k], ref_c[k] = rule(ref_p[k], grads[k], ref_c[k])
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


@pytest.mark.parametrize("name", sorted(_cuda.SPECS))
def test_one_launch_for_every_parameter_gives_each_its_own_numbers(multi, name, monkeypatch):
    """update_all with a built-in rule: one kernel per step for all five
    parameters (shapes of 35, 7, 1, 21 and 3 elements), bit for bit what
    the rule gives each parameter alone, state included, from the first
    step (no state yet) on."""
    T, kernels = multi
    dt = np.float64 if T == "double" else np.float32
    launches = []
    monkeypatch.setattr(optim, "fused_all", _host_fused_all(kernels, launches))
    monkeypatch.setattr(optim, "fused_all_enabled", lambda *arrays: True)
    configs = {k: {"learning_rate": 3e-2} for k in _SHAPES}
    _assert_same(*_steps(optim.UPDATE_RULES[name], dt, configs, optim.update_all))
    assert launches == [name] * 4


def test_update_all_runs_each_rule_alone_where_one_launch_does_not_apply(multi, monkeypatch):
    """Configs that differ (a rate per parameter), a rule of the user's, a
    single parameter, or arrays the fused kernels do not take: the rule runs
    on each parameter, as the course's Solver loop does."""
    T, kernels = multi
    launches = []
    monkeypatch.setattr(optim, "fused_all", _host_fused_all(kernels, launches))
    monkeypatch.setattr(optim, "fused_all_enabled", lambda *arrays: True)
    for odd in range(len(_SHAPES)):       # one config differs: the first, second, ... last
        differ = {k: {"learning_rate": 3e-2 * (2 if i == odd else 1)}
                  for i, k in enumerate(_SHAPES)}
        _assert_same(*_steps(optim.adam, np.float64, differ, optim.update_all))

    def mine(w, dw, config=None):
        return optim.sgd(w, dw, config)
    same = {k: {"learning_rate": 3e-2} for k in _SHAPES}
    _assert_same(*_steps(mine, np.float64, same, optim.update_all))
    assert launches == []
    w, dw = np.ones(3, kernels.dt), np.ones(3, kernels.dt)
    params, cfgs = {"w": w}, {"w": {"learning_rate": 0.5}}
    optim.update_all(optim.sgd, params, {"w": dw}, cfgs)
    np.testing.assert_array_equal(params["w"], [0.5, 0.5, 0.5])
    assert launches == []
    params = {"w": w, "v": w.copy()}                    # two are enough for one launch
    cfgs = {k: {"learning_rate": 0.5} for k in params}
    optim.update_all(optim.sgd, params, {"w": dw, "v": dw}, cfgs)
    assert launches == ["sgd"] and params["v"].tolist() == [0.5, 0.5, 0.5]
    launches.clear()
    monkeypatch.setattr(optim, "fused_all_enabled", lambda *arrays: False)
    _assert_same(*_steps(optim.adam, np.float64, same, optim.update_all))
    assert launches == []


def test_one_launch_needs_contiguous_arrays_of_one_kind(monkeypatch):
    """The kernel reads each array through its address: a strided view
    cannot go; nor can anything the fused kernels refuse."""
    a, b = np.ones((4, 3)), np.ones((3, 4))
    assert not _cuda.fused_all_enabled(a, b)          # NumPy arrays: no fused kernels
    monkeypatch.setattr(_cuda, "fused_enabled", lambda *arrays: True)
    assert _cuda.fused_all_enabled(a, b)
    assert not _cuda.fused_all_enabled(a, b.T)
    assert not _cuda.fused_all_enabled(a[:, ::2], b)


def test_one_launch_over_empty_parameters(multi):
    """A parameter with no elements among others, and all of them empty."""
    T, kernels = multi
    dt = np.float64 if T == "double" else np.float32
    ws = [np.ones(0, dt), np.full((2, 2), 2.0, dt), np.ones((0, 3), dt)]
    dws = [np.ones_like(w) for w in ws]
    (new,) = _cuda.fused_all("sgd", ws, dws, [], (0.5,), kernel=kernels("multi_sgd"), xp=np)
    assert [n.shape for n in new] == [(0,), (2, 2), (0, 3)]
    np.testing.assert_array_equal(new[1], np.full((2, 2), 1.5))
    (new,) = _cuda.fused_all("sgd", ws[::2], dws[::2], [], (0.5,),
                             kernel=kernels("multi_sgd"), xp=np)
    assert [n.shape for n in new] == [(0,), (0, 3)]


def test_update_all_checks_every_array_it_would_read(multi, monkeypatch):
    """The one launch reads weights, gradients and state through their
    addresses: a strided view or another dtype among ANY of them (here
    with the fused kernels taking NumPy arrays) sends every parameter
    through the rule alone."""
    T, kernels = multi
    launches = []
    monkeypatch.setattr(optim, "fused_all", _host_fused_all(kernels, launches))
    monkeypatch.setattr(_cuda, "fused_enabled", lambda *arrays: len({a.dtype for a in arrays}) == 1)
    monkeypatch.setattr(optim, "fused", lambda name, *arrays: None)   # each rule alone: NumPy's
    r = np.random.RandomState(4)
    dt, other = kernels.dt, (np.float32 if kernels.dt == np.float64 else np.float64)

    def case(spoil):
        params = {k: r.randn(4, 3).astype(dt) for k in ("a", "b", "c")}
        grads = {k: r.randn(4, 3).astype(dt) for k in params}
        cfgs = {k: {"learning_rate": 0.1, "velocity": r.randn(4, 3).astype(dt)} for k in params}
        spoil(params, grads, cfgs)
        ref_p = {k: v.copy() for k, v in params.items()}
        ref_c = {k: dict(c) for k, c in cfgs.items()}
        for k in params:
            ref_p[k], ref_c[k] = optim.sgd_momentum(ref_p[k], grads[k], ref_c[k])
        optim.update_all(optim.sgd_momentum, params, grads, cfgs)
        for k in params:
            np.testing.assert_array_equal(params[k], ref_p[k])
            np.testing.assert_array_equal(cfgs[k]["velocity"], ref_c[k]["velocity"])

    case(lambda p, g, c: None)
    assert launches == ["sgd_momentum"]
    spoilers = [lambda p, g, c: p.update(b=np.asfortranarray(p["b"])),
                lambda p, g, c: g.update(c=np.asfortranarray(g["c"])),
                lambda p, g, c: c["a"].update(velocity=np.asfortranarray(c["a"]["velocity"])),
                lambda p, g, c: c["c"].update(velocity=c["c"]["velocity"].astype(other))]
    for spoil in spoilers:
        case(spoil)
    assert launches == ["sgd_momentum"]
