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
    with pytest.raises(ValueError, match="valid names are numpy, cupy, array_api_strict, torch"):
        backend.set_backend("jax")


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


def _openblas_takes_a_pool():
    """Whether NumPy's OpenBLAS accepts a thread pool (0.3.27+), asked in a
    fresh process that imports NumPy alone."""
    code = ("import numpy, ctypes\n"
            "from xpnn.backend.numpy import _host\n"
            "libs = [ctypes.CDLL(p) for p in _host._loaded_openblas()]\n"
            "print(any(hasattr(l, n) for l in libs for n in _host._CALLBACK_SETTERS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "XPNN_NO_BLAS_TUNING": "1"})
    return out.stdout.split()[-1] == "True"


@pytest.mark.parametrize("first, preset, opt_out, want, tuned, pooled", [
    ("xpnn", None, False, "15", True, False),     # xpnn first: set before OpenBLAS loads
    ("xpnn", "20", False, "20", False, False),    # the user's own value wins
    ("numpy", None, False, None, False, True),    # NumPy first: too late; xpnn's pool instead
    ("numpy", "20", False, "20", False, False),   # the user chose how OpenBLAS waits
    ("numpy", None, True, None, False, False)])   # XPNN_NO_BLAS_TUNING=1: left alone
def test_openblas_threads_never_spin_through_a_step(first, preset, opt_out, want, tuned,
                                                    pooled):
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, when NumPy loads it: xpnn
    sets it before its own NumPy import; when NumPy came first, OpenBLAS's
    parallel work runs on xpnn's pool instead, whose threads sleep ~10 µs
    after their work (a notebook imports NumPy first: the three-layer step
    took 13.4 ms instead of 9.3 before the pool)."""
    if pooled and not _openblas_takes_a_pool():
        pytest.skip("NumPy's BLAS is not an OpenBLAS that takes a thread pool (0.3.27+)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "XPNN_NO_BLAS_TUNING")}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    if opt_out:
        env["XPNN_NO_BLAS_TUNING"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "2"   # a parallel product even on a one-core runner
    code = (f"import {first}, os, xpnn, json\n"
            "import numpy as np\n"
            "from xpnn.backend.numpy import _host, _blaspool\n"
            "a = np.random.RandomState(0).rand(600, 700)\n"
            "before = _blaspool.stats()['calls']\n"
            "ok = bool(abs(a @ a.T - np.einsum('ij,kj->ik', a, a)).max() < 1e-9)\n"
            "print(json.dumps([os.environ.get('OPENBLAS_THREAD_TIMEOUT'), _host.blas_wait_tuned,"
            " bool(_host.blas_pool_libraries), _blaspool.stats()['calls'] > before, ok]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == [want, tuned, pooled, pooled, True]


def test_the_blas_pool_serves_threads_forks_and_any_thread_count():
    """With NumPy imported first, every parallel product runs on xpnn's pool:
    products from four Python threads at once (one call holds the pool, the
    others wait), in a forked child (which has none of the parent's
    threads and starts its own), and with more BLAS threads than the pool
    had, all equal to a product computed without BLAS. A pool that ran a
    call's jobs one after another would hang here (OpenBLAS's jobs wait on
    each other); one that gave a job the wrong slice would be caught by the
    comparison."""
    if not _openblas_takes_a_pool():
        pytest.skip("NumPy's BLAS is not an OpenBLAS that takes a thread pool (0.3.27+)")
    code = """
import numpy as np
import json, multiprocessing, os, sys
from concurrent.futures import ThreadPoolExecutor
import xpnn
from xpnn.backend.numpy import _host, _blaspool
from threadpoolctl import threadpool_limits
assert _host.blas_pool_libraries, "no pool"
r = np.random.RandomState(1)
mats = [r.rand(300 + 40 * i, 500) for i in range(8)]
want = [np.einsum("ij,kj->ik", m, m) for m in mats]

def check(i):
    return all(abs(mats[i] @ mats[i].T - want[i]).max() < 1e-9 for _ in range(5))

with ThreadPoolExecutor(4) as ex:
    threads_ok = all(ex.map(check, range(8)))

def child(q):
    q.put(check(3) and check(5))

ctx = multiprocessing.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
fork_ok = q.get(timeout=60)
p.join(60)
with threadpool_limits(4, user_api="blas"):
    wide_ok = check(6)
print(json.dumps([threads_ok, fork_ok, p.exitcode, wide_ok, _blaspool.stats()["workers"]]))
"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "XPNN_NO_BLAS_TUNING")}
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    threads_ok, fork_ok, exitcode, wide_ok, workers = json.loads(out.stdout.splitlines()[-1])
    assert threads_ok and fork_ok and exitcode == 0 and wide_ok
    assert workers == 3   # grown from one to three for the four-thread product


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
