"""CuPy-only checks: parity with NumPy, no hidden host round-trips, seeded
training that agrees across backends, checkpoints across backends.
Skipped with the reason when no GPU is usable."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn import backend
from xpnn.data import get_digits_data
from xpnn.models import ConvNet
from xpnn.solver import Solver

from conftest import _CUPY_REASON, _CUPY_SHORT
from layer_cases import CASES

pytestmark = pytest.mark.skipif(_CUPY_REASON is not None,
                                reason=_CUPY_SHORT or "")


def _run_case(name, seed, dtype):
    c = CASES[name]
    raw = {k: v.astype(dtype) for k, v in c["make"](np.random.RandomState(seed)).items()}
    a = backend.to_device(raw)
    out, cache = c["fwd"](a)
    dout = backend.to_device(np.random.RandomState(seed + 1).randn(*out.shape).astype(dtype))
    return [np.asarray(backend.to_numpy(v)) for v in (out, *c["bwd"](dout, cache))]


@pytest.mark.parametrize("name", sorted(n for n in CASES if n != "dropout"))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_layer_matches_numpy(name, dtype):
    _compare(name, dtype)


_CONV_CASES = sorted(n for n in CASES if n.startswith("conv") and n != "conv_naive")


@pytest.mark.parametrize("path", ["cudnn", "im2col"])
@pytest.mark.parametrize("name", _CONV_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_convolution_paths_match_numpy(name, dtype, path, monkeypatch):
    """cuDNN (XPNN_CUDNN=1, where nvidia-cudnn-frontend is installed) and
    xpnn's im2col + cuBLAS kernels, each against NumPy; the cuDNN case
    proves it ran."""
    from xpnn.backend.cupy import _cudnn
    from xpnn.layers import conv_forward_fast
    if path == "im2col":
        monkeypatch.delenv("XPNN_CUDNN", raising=False)
    else:
        monkeypatch.setenv("XPNN_CUDNN", "1")
        ok, why = _cudnn.status()
        if not ok:
            pytest.skip(f"cuDNN path not in use: {why}")
        with backend.use_backend("cupy"):
            x = backend.to_device(np.random.RandomState(0).randn(2, 3, 6, 6).astype(dtype))
            w = backend.to_device(np.random.RandomState(1).randn(4, 3, 3, 3).astype(dtype))
            b = backend.to_device(np.zeros(4, dtype=dtype))
            cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[1]
        assert isinstance(cache[4], _cudnn.CudnnConv)
    _compare(name, dtype)


def _compare(name, dtype):
    for seed in (0, 1, 2):
        with backend.use_backend("numpy"):
            ref = _run_case(name, seed, dtype)
        with backend.use_backend("cupy"):
            got = _run_case(name, seed, dtype)
        tol = 1e-10 if dtype == np.float64 else 1e-4
        for g, r in zip(got, ref):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, r, rtol=tol, atol=tol)


def _train(name, dtype, steps=50):
    np.random.seed(0)
    data = get_digits_data()
    model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((8,), (16,)), hidden_dims=(32,),
                    dtype=dtype)
    with backend.use_backend(name):
        model.to_device(name)
        solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                        batch_size=50, num_epochs=2, verbose=False, num_train_samples=100)
        solver.train()
    return np.array(solver.loss_history[:steps], dtype=np.float64)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_seeded_training_agrees_across_backends(dtype, tol):
    ref, got = _train("numpy", dtype), _train("cupy", dtype)
    assert len(ref) == 50
    np.testing.assert_allclose(got, ref, rtol=tol)


def test_checkpoint_from_gpu_loads_on_numpy(tmp_path):
    data = get_digits_data()
    with backend.use_backend("cupy"):
        np.random.seed(0)
        model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((4,),), hidden_dims=(8,))
        s = Solver(model, data, num_epochs=1, batch_size=100, verbose=False,
                   checkpoint_name=str(tmp_path / "g"))
        s.train()
    with backend.use_backend("numpy"):
        m2 = ConvNet(input_dim=(1, 8, 8), conv_blocks=((4,),), hidden_dims=(8,))
        s2 = Solver(m2, data, verbose=False).load_checkpoint(str(tmp_path / "g_epoch_1.npz"))
        assert all(type(v) is np.ndarray for v in m2.params.values())
        assert s2.epoch == 1
