"""The backend switch: names, errors, context manager, device moves."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from xpnn import backend
from xpnn.backend.cupy import device_seed

from conftest import host


def test_default_and_set_backend():
    with backend.use_backend("numpy"):
        assert backend.get_backend() == "numpy"
        with backend.use_backend("array_api_strict") as name:
            assert name == "array_api_strict" == backend.get_backend()
            import array_api_strict
            assert backend.namespace() is array_api_strict
        assert backend.get_backend() == "numpy"


def test_use_backend_restores_after_error():
    with backend.use_backend("numpy"):
        with pytest.raises(KeyError):
            with backend.use_backend("array_api_strict"):
                raise KeyError("boom")
        assert backend.get_backend() == "numpy"


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="valid names are numpy, cupy, array_api_strict"):
        backend.set_backend("torch")


def test_env_variable_selects_backend():
    code = "from xpnn import get_backend; print(get_backend())"
    env = dict(os.environ, XPNN_BACKEND="array_api_strict")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "array_api_strict", out.stderr
    env["XPNN_BACKEND"] = "tensorflow"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "valid names are" in out.stderr


def test_cupy_without_gpu_says_why():
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except ImportError:
        has_cupy = False
    if has_cupy:
        pytest.skip("CuPy is installed here; the no-GPU message is checked where it is not")
    with pytest.raises(RuntimeError,
                       match=r"needs CuPy, which is not installed.*pip install "
                             r"'cupy-cuda13x\[ctk\]>=14'.*pip install 'cupy-cuda12x>=13'"):
        backend.set_backend("cupy")
    assert backend.get_backend() in backend.VALID_BACKENDS


def test_to_device_and_back_walks_containers(xb):
    state = {"params": {"W1": np.ones((2, 3)), "b1": np.zeros(3)},
             "configs": [{"learning_rate": 1e-3, "m": np.full(3, 2.0), "t": 5}],
             "bn": ({"mode": "train", "running_mean": np.arange(3.0)},),
             "name": "net"}
    moved = backend.to_device(state, xb.name)
    assert backend.backend_of(moved["params"]["W1"]) == xb.name
    assert backend.backend_of(moved["configs"][0]["m"]) == xb.name
    assert backend.backend_of(moved["bn"][0]["running_mean"]) == xb.name
    assert moved["configs"][0]["learning_rate"] == 1e-3 and moved["name"] == "net"
    assert isinstance(moved["bn"], tuple)
    back = backend.to_numpy(moved)
    assert type(back["params"]["W1"]) is np.ndarray
    np.testing.assert_array_equal(back["bn"][0]["running_mean"], np.arange(3.0))
    np.testing.assert_array_equal(back["configs"][0]["m"], np.full(3, 2.0))


def test_to_device_is_noop_when_already_there(xb):
    a = xb.asarray(np.ones(3))
    assert backend.to_device(a, xb.name) is a


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_random_draws_follow_numpy_global_state(name):
    """On the host backends draws are NumPy's global stream, in the course's
    order (a GPU draws on the device: see the tests below)."""
    with backend.use_backend(name):
        np.random.seed(3)
        expected = np.random.rand(4)
        np.random.seed(3)
        np.testing.assert_array_equal(host(backend.random_uniform((4,))), expected)
        np.testing.assert_array_equal(host(backend.random_uniform((4,), seed=3)), expected)


def test_numpy_seed_repeats_device_draws_in_one_process():
    """A GPU's draws are seeded from NumPy's global state: np.random.seed
    twice in one process (a notebook re-run) gives the same draws again, with
    or without host draws between them."""
    runs = []
    for _ in range(2):
        np.random.seed(3)
        first = [device_seed() for _ in range(3)]
        between = int(np.random.randint(2 ** 30))  # the Solver's minibatch draw
        runs.append(first + [between, device_seed(), device_seed()])
    assert runs[0] == runs[1]
    assert len(set(runs[0][:3] + runs[0][4:])) == 5  # no two draws share a seed


def test_explicit_seed_gives_the_same_device_draw():
    """The course's dropout_param['seed']: the same seed, the same mask,
    also twice in a row; the next unseeded draw differs; and, as on the host,
    the seed is NumPy's global seed."""
    a = device_seed(seed=7)
    assert device_seed(seed=7) == a
    assert device_seed() != a
    np.random.seed(7)
    assert device_seed() == a


def test_rng_state_holds_the_device_draws_and_restores_them():
    """rng_state and set_rng_state (what checkpoints use on every backend)
    must carry the device draws' position, or a resumed GPU run draws other
    dropout masks than the uninterrupted one."""
    np.random.seed(5)
    device_seed()
    saved = backend.rng_state()
    ahead = [device_seed() for _ in range(3)] + [float(np.random.rand())]
    device_seed(seed=99)                 # a later reseed is undone too
    backend.set_rng_state(saved)
    assert [device_seed() for _ in range(3)] + [float(np.random.rand())] == ahead
    # a checkpoint written with the earlier device part beside NumPy's state still loads
    backend.set_rng_state({**saved, "device": {"keys": [1, 2], "pos": 0}})
    assert [device_seed() for _ in range(3)] + [float(np.random.rand())] == ahead


def test_rng_state_survives_a_checkpoint_round_trip(tmp_path):
    from xpnn.checkpoint import flatten_state, load_npz, save_npz_atomic, unflatten_state
    device_seed(seed=11)
    arrays: dict = {}
    meta = flatten_state({"rng": backend.rng_state()}, "", arrays)
    save_npz_atomic(str(tmp_path / "r.npz"), meta, arrays)
    expect = [device_seed(), float(np.random.rand())]
    m, a = load_npz(str(tmp_path / "r.npz"))
    backend.set_rng_state(unflatten_state(m, a)["rng"])
    assert [device_seed(), float(np.random.rand())] == expect


class _FakeCupy:
    """Stand-in for a CuPy whose CUDA libraries are partly missing: each
    operation raises the loader error the real one gives."""
    __version__ = "14.0.0"
    float32 = "float32"

    def __init__(self, broken):
        self.broken = broken
        test = self

        class _Arr:
            def __matmul__(self, other):
                test._fail("cublas", "libcublasLt.so.13: cannot open shared object file")
                return self

            def get(self):
                return np.zeros(2)

        class _Random:
            @staticmethod
            def RandomState(seed):
                test._fail("curand", "libcurand.so.10: cannot open shared object file")
                return type("R", (), {"random_sample": lambda self, n: _Arr()})()

        self._Arr, self.random = _Arr, _Random

    def _fail(self, lib, msg):
        if self.broken == lib:
            raise ImportError(msg)

    def ones(self, shape, dtype=None):
        return self._Arr()

    zeros = ones

    def ElementwiseKernel(self, *args):
        self._fail("nvrtc", "libnvrtc.so.13: cannot open shared object file")
        return lambda x: self._Arr()


@pytest.mark.parametrize("lib, label", [("cublas", "cuBLAS"), ("nvrtc", "NVRTC"),
                                        ("curand", "cuRAND")])
def test_cuda_library_probe_names_what_is_missing(lib, label):
    with pytest.raises(RuntimeError, match=rf"found a GPU but {label} does not work .*"
                                           rf"{lib}.*pip install 'cupy-cuda13x\[ctk\]>=14'"):
        backend.probe_cuda_libraries(_FakeCupy(lib))
    backend.probe_cuda_libraries(_FakeCupy(None))  # all present: no error


@pytest.mark.parametrize("first, preset, want, tuned", [
    ("xpnn", None, "15", True),          # xpnn first: set before OpenBLAS loads
    ("xpnn", "20", "20", False),         # the user's own value wins
    ("numpy", None, None, False)])       # NumPy first: too late, left alone
def test_openblas_thread_wait_is_set_before_numpy_loads(first, preset, want, tuned):
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, when NumPy loads it: xpnn
    must set it before its own NumPy import, and say whether it took."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = (f"import {first}, os, xpnn, json; print(json.dumps([os.environ.get("
            f"'OPENBLAS_THREAD_TIMEOUT'), xpnn.backend.numpy._host.blas_wait_tuned]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == [want, tuned]


def test_a_missing_array_api_strict_is_one_clear_error(monkeypatch):
    """`xpnn train --backend array_api_strict` after a plain install was a
    15-line traceback (the package comes with [test] only); now one line
    says what the backend is and how to install it."""
    import importlib
    from xpnn.cli import main
    real = importlib.import_module

    def without_strict(name, *args):
        if name.startswith("array_api_strict"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)
    monkeypatch.setattr(importlib, "import_module", without_strict)
    with pytest.raises(RuntimeError, match=r"'array_api_strict' backend .* needs "
                                           r"array-api-strict, which is not installed .*pip "
                                           r"install 'array-api-strict>=2.2'"):
        backend.get("array_api_strict").load()
    with backend.use_backend("numpy"):
        assert main(["train", "--backend", "array_api_strict", "--epochs", "1",
                     "--plot", "none"]) == 1
