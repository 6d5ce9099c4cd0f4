"""The torch backend as a user meets it: the device it chooses, what it
refuses and how it says so, torch's own kernels serving the layers, a
seeded run that follows NumPy's loss curve, checkpoints that move between
backends, the command line, and xpnn without PyTorch at all.

Its CPU device runs here; CUDA and MPS are the GPU check's
(benchmarks/gpu_check.sh runs the torch tests with XPNN_TEST_TORCH_DEVICE=cuda)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend's tests need PyTorch "
                                            "(xpnn's [test] extra brings it)")

from xpnn import backend  # noqa: E402
from xpnn.backend import torch as xtorch  # noqa: E402
from xpnn.data import get_digits_data  # noqa: E402
from xpnn.solver import Solver  # noqa: E402

from conftest import host  # noqa: E402

#: the device the torch tests run on (conftest: the CPU, or XPNN_TEST_TORCH_DEVICE)
DEVICE = os.environ["XPNN_TORCH_DEVICE"]


# ------------------------------------------------------------------ the device
@pytest.mark.parametrize("cuda, mps, want", [(True, True, "cuda"), (False, True, "mps"),
                                             (False, False, "cpu")])
def test_the_best_device_present_is_chosen(monkeypatch, cuda, mps, want):
    monkeypatch.delenv("XPNN_TORCH_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert xtorch.choose_device(torch).type == want
    # a device named by the user wins over the best one
    monkeypatch.setenv("XPNN_TORCH_DEVICE", "cpu")
    assert xtorch.choose_device(torch).type == "cpu"
    assert xtorch.choose_device(torch, "CPU").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_says_which_are_present():
    with pytest.raises(RuntimeError, match=r"asked for device 'cuda', which this PyTorch .* "
                                           r"cannot use here; present: .*cpu\. Name one of "
                                           r"those, or none .*no device=\)"):
        xtorch.choose_device(torch, "cuda")


@pytest.mark.parametrize("bad", ["tpu", "", 3])
def test_an_unknown_device_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"unknown torch device .*expected one of cuda, mps, "
                                         r"cpu .*XPNN_TORCH_DEVICE"):
        xtorch.choose_device(torch, bad)


def test_set_backend_takes_a_device_for_torch_only():
    with backend.use_backend("torch", device="cpu"):
        assert backend.current().device == torch.device("cpu")
    with _on("torch"):
        assert backend.current().device == torch.device(DEVICE)
        assert backend.backend_of(backend.to_device(np.ones(2))) == "torch"
    with pytest.raises(ValueError, match="the numpy backend has no choice of device"):
        backend.set_backend("numpy", device="cpu")


def test_mps_float64_is_refused_with_what_to_do():
    b = xtorch.TorchBackend()
    b._device = torch.device("mps")   # the refusal comes before any use of the device
    with pytest.raises(TypeError, match=r"MPS device \(an Apple GPU\) has no float64; train "
                                        r"in float32 .*gradient checks in float64 on the CPU"):
        b.from_host(np.zeros(3))


@pytest.mark.parametrize("a", [np.array(["a"]), np.zeros(2, np.uint32),
                               np.array([1 + 2j])])
def test_dtypes_torch_cannot_hold_are_refused(a):
    with pytest.raises(TypeError, match="the torch backend cannot hold arrays of dtype"):
        xtorch.TorchBackend().from_host(a)


def test_moves_copy_and_keep_shape_and_byte_order():
    with _on("torch"):
        a = np.arange(6.0).reshape(2, 3)
        t = backend.to_device(a)
        a[0, 0] = 99.0                      # the tensor does not share the caller's array
        assert float(t[0, 0]) == 0.0
        back = backend.to_numpy(t)
        back[1, 1] = -1.0                   # nor does the copy back share the tensor
        assert float(t[1, 1]) == 4.0
        assert tuple(backend.to_device(np.array(0.5)).shape) == ()   # 0-d stays 0-d
        big_endian = np.arange(3, dtype=">f8")[::-1]
        np.testing.assert_array_equal(host(backend.to_device(big_endian)), [2.0, 1.0, 0.0])


def _on(name):
    return backend.use_backend(name, **({"device": DEVICE} if name == "torch" else {}))


# ------------------------------------------------------------------ kernels
def test_torch_kernels_serve_the_layers(monkeypatch):
    """The convolution, max pooling and batch norm run through torch's own
    ops (not the portable code) and give NumPy's results."""
    calls = []

    def served(name, real):
        def op(*args, **kwargs):
            out = real(*args, **kwargs)
            if out is not None:        # None: it declined, the portable code ran
                calls.append(name)
            return out
        return op
    for name in ("conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward",
                 "bn_train_forward", "bn_train_backward"):
        monkeypatch.setattr(xtorch.TorchKernels, name,
                            served(name, getattr(xtorch.TorchKernels, name)))
    from xpnn.layers import conv_forward_fast, conv_backward_fast, spatial_batchnorm_forward, \
        spatial_batchnorm_backward, max_pool_forward_fast, max_pool_backward_fast
    r = np.random.RandomState(0)
    x, w, b = r.randn(2, 3, 7, 7), r.randn(4, 3, 3, 3), r.randn(4)
    dout = r.randn(2, 4, 4, 4)
    gamma, beta = r.rand(3) + 0.5, r.randn(3)
    results = {}
    for name in ("numpy", "torch"):
        with _on(name):
            d = backend.to_device
            out, cache = conv_forward_fast(d(x), d(w), d(b), {"stride": 2, "pad": 1})
            grads = conv_backward_fast(d(dout), cache)
            p, pc = max_pool_forward_fast(d(x), {"pool_height": 3, "pool_width": 3,
                                                 "stride": 2})
            dp = max_pool_backward_fast(d(np.ones(tuple(p.shape))), pc)
            bn_param = {"mode": "train"}
            n, nc = spatial_batchnorm_forward(d(x), d(gamma), d(beta), bn_param)
            dn = spatial_batchnorm_backward(d(x), nc)
            results[name] = [host(v) for v in (out, *grads, p, dp, n, *dn,
                                                  bn_param["running_mean"],
                                                  bn_param["running_var"])]
    assert sorted(set(calls)) == sorted({"conv_forward", "conv_backward", "max_pool_forward",
                                         "max_pool_backward", "bn_train_forward",
                                         "bn_train_backward"})
    for got, want in zip(results["torch"], results["numpy"]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ training
def _net(dtype):
    from xpnn.models import ConvNet
    return ConvNet(input_dim=(1, 8, 8), conv_blocks=((8,), (8,)), hidden_dims=(32,),
                   batchnorm=True, dropout_keep_ratio=0.9, dtype=dtype)


def _solver(model, epochs, **solver_args):
    # 1257 digits in batches of 25: 50 steps an epoch
    return Solver(model, get_digits_data(), num_epochs=epochs, batch_size=25,
                  update_rule="adam", optim_config={"learning_rate": 5e-3}, verbose=False,
                  num_train_samples=200, num_val_samples=200, **solver_args)




def _seeded_run(name, dtype, epochs=1, **solver_args):
    with _on(name):
        np.random.seed(3)
        solver = _solver(_net(dtype), epochs, **solver_args)
        solver.train()
    return solver


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_a_seeded_run_follows_numpys_loss_curve(dtype, tol):
    """50 steps of a conv/batch-norm/dropout net: torch's losses are
    NumPy's (the same draws, the same updates), to float64's or float32's
    precision."""
    on_numpy = _seeded_run("numpy", dtype)
    on_torch = _seeded_run("torch", dtype)
    assert len(on_numpy.loss_history) == len(on_torch.loss_history) == 50
    np.testing.assert_allclose(on_torch.loss_history, on_numpy.loss_history, rtol=tol)
    for k in on_numpy.model.params:
        assert backend.backend_of(on_torch.model.params[k]) == "torch"
        if dtype == np.float64:
            # (in float32 the conv biases ahead of batch norm, whose true
            # gradient is 0, follow Adam's steps on rounding noise)
            np.testing.assert_allclose(host(on_torch.model.params[k]),
                                       host(on_numpy.model.params[k]), rtol=1e-8,
                                       atol=1e-9, err_msg=k)


@pytest.mark.parametrize("first, then", [("torch", "numpy"), ("numpy", "torch")])
def test_a_checkpoint_written_on_one_backend_resumes_on_the_other(tmp_path, first, then):
    """Checkpoints are host data: a run killed after epoch 1 on one backend
    goes on on the other to the uninterrupted run's losses."""
    whole = _seeded_run("numpy", np.float64, epochs=2)
    _seeded_run(first, np.float64, epochs=1, checkpoint_name=str(tmp_path / "run"))
    with _on(then):
        np.random.seed(999)     # the checkpoint restores the draws
        s = _solver(_net(np.float64), 2)
        s.load_checkpoint(str(tmp_path / "run_epoch_1.npz"))
        assert backend.backend_of(s.model.params["W1"]) == then
        s.train()
    np.testing.assert_allclose(s.loss_history, whole.loss_history, rtol=1e-10)
    assert s.val_acc_history == pytest.approx(whole.val_acc_history, abs=1e-12)


def _xpnn(*args):
    return subprocess.run([sys.executable, "-m", "xpnn.cli", *args], capture_output=True,
                          text=True, timeout=600,
                          env=dict(os.environ, XPNN_BACKEND="numpy"))


def test_xpnn_train_on_torch_reaches_numpys_accuracy(tmp_path):
    common = ["train", "--model", "threelayer", "--epochs", "2", "--plot", "none",
              "--seed", "0", "--quiet"]
    res = {}
    for name in ("numpy", "torch"):
        run = _xpnn(*common, "--backend", name)
        assert run.returncode == 0, run.stderr
        res[name] = [float(v) for v in re.findall(r"(?:val|test) accuracy: ([0-9.]+)",
                                                  run.stdout)]
        assert len(res[name]) == 2, run.stdout
    assert res["torch"] == pytest.approx(res["numpy"], abs=0.01)


# ------------------------------------------------------------------ without PyTorch
def test_xpnn_imports_and_trains_without_pytorch():
    code = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):     # as if PyTorch were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'torch':
            raise ModuleNotFoundError("No module named 'torch'")
sys.meta_path.insert(0, NoTorch())
import numpy as np
import xpnn, xpnn.nn, xpnn.solver, xpnn.compat.cs231n_2019.layers
from xpnn import backend
from xpnn.models import FullyConnectedNet
from xpnn.data import get_digits_data
d = get_digits_data()
d = {k: (v.reshape(len(v), -1) if k.startswith('X') else v) for k, v in d.items()}
s = xpnn.solver.Solver(FullyConnectedNet([16], input_dim=64), d, num_epochs=2, verbose=False,
                       update_rule='adam', optim_config={'learning_rate': 1e-2})
s.train()
print('trained', s.best_val_acc > 0.5)
try:
    backend.set_backend('torch')
except RuntimeError as exc:
    print(exc)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, XPNN_BACKEND="numpy"))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "trained True"
    assert lines[1].startswith("the 'torch' backend needs PyTorch, which is not installed")
    assert "pip install torch" in lines[1]
