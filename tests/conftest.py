"""Backend fixtures: the same test body runs on NumPy, array-api-strict and,
where a GPU is present, CuPy (skipped with the reason otherwise)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

if "mutmut" in sys.modules:
    # mutmut runs these tests in its mutants/ copy of the project: xpnn must
    # be imported from that copy, ahead of an editable install's finder
    # (which would bring the unmutated source). Tests that start a Python
    # subprocess get the installed xpnn, unmutated.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xpnn import backend  # noqa: E402

if "mutmut" in sys.modules:
    # mutmut runs each mutant's tests in a process forked from one that has
    # already run tests; PyTorch's OpenMP thread pool (the oracle tests)
    # does not survive a fork, so a child that convolves through PyTorch
    # waits forever and is stopped by the time limit, which mutmut counts
    # as a kill. With one OpenMP thread there is no pool to wait on.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _cupy_skip_reason():
    try:
        backend.set_backend("cupy")
    except RuntimeError as exc:
        return str(exc)
    except Exception as exc:
        # mutmut first imports this file with every mutated function raising,
        # to see the tests fail: that must fail the tests, not this import
        if "mutmut" not in sys.modules:
            raise
        return f"{type(exc).__name__}: {exc}"
    finally:
        backend._state["name"] = None
    return None


_CUPY_REASON = _cupy_skip_reason()
# each skipped test says why in a few words; how to install CuPy is said once,
# in the run's header
_CUPY_SHORT = None if _CUPY_REASON is None else \
    f"no usable GPU: {_CUPY_REASON.split(';')[0][:100]} (the header says more)"

def _torch_skip_reason():
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"PyTorch is not installed ({exc}); xpnn's [test] extra brings it"
    return None


_TORCH_REASON = _torch_skip_reason()
# the torch backend's tests run on its CPU device, whatever XPNN_TORCH_DEVICE
# says; XPNN_TEST_TORCH_DEVICE=cuda runs them on a GPU (benchmarks/gpu_check.sh)
os.environ["XPNN_TORCH_DEVICE"] = os.environ.get("XPNN_TEST_TORCH_DEVICE", "cpu")

BACKENDS = [
    "numpy",
    "array_api_strict",
    pytest.param("cupy", marks=pytest.mark.skipif(_CUPY_REASON is not None,
                                                  reason=_CUPY_SHORT or "")),
    pytest.param("torch", marks=pytest.mark.skipif(_TORCH_REASON is not None,
                                                   reason=_TORCH_REASON or "")),
]


def pytest_report_header(config):
    if _CUPY_REASON is not None:
        return f"cupy backend tests are skipped: {_CUPY_REASON}"
    return "cupy backend tests run on the GPU"


def host(a):
    """Any array (or a dict/list of them) as NumPy, through the backend's own
    device-to-host copy: what a test must use on params, grads and outputs,
    since CuPy (and the simulated device of array-api-strict) refuse
    ``np.asarray``."""
    return backend.to_numpy(a) if isinstance(a, (dict, list, tuple)) else \
        np.asarray(backend.to_numpy(a))


def record_calls(monkeypatch, owner, name, log):
    """Wrap ``owner.name`` (restored by ``monkeypatch``) so that each call
    appends ``name`` to ``log`` and then runs the real function: a test's
    proof that a route was taken."""
    real = getattr(owner, name)

    def recorded(*args, **kwargs):
        log.append(name)
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, recorded)


def _name(param):
    return param if isinstance(param, str) else param.values[0]


#: backends whose arrays live off the host, where reading a value back waits
#: for the device (array-api-strict's simulated device on every machine, CuPy
#: where a GPU is usable), as each backend says of itself; torch's CPU
#: device reads back for free, as NumPy does
def _off_host(param) -> bool:
    try:
        return not backend.get(_name(param)).readback_is_free
    except RuntimeError:   # not installed: its param is skipped, saying so
        return True


DEVICE_BACKENDS = [p for p in BACKENDS if _off_host(p)]


class Backend:
    """A backend under test: moves NumPy test data there and back."""

    def __init__(self, name):
        self.name = name
        self.xp = backend.namespace(name)

    def asarray(self, a):
        return backend.to_device(np.asarray(a), self.name)

    def put(self, d):
        return {k: (self.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    host = staticmethod(host)

    def __repr__(self):
        return self.name


@pytest.fixture(params=BACKENDS)
def xb(request):
    with backend.use_backend(request.param):
        yield Backend(request.param)


@pytest.fixture
def rng():
    return np.random.RandomState(0)


def pytest_collection_modifyitems(config, items):
    """With XPNN_TEST_UNPARAMETRIZED_ONLY=1, keep only the tests that run on
    the default backend (the one XPNN_BACKEND names): the backend-
    parametrized ones choose their backend themselves. That is the run
    tests/test_suite_on_device.py makes on the simulated device."""
    import os
    if os.environ.get("XPNN_TEST_UNPARAMETRIZED_ONLY") != "1":
        return
    keep, drop = [], []
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        skip = "xb" in fixtures or item.get_closest_marker("whole_suite") is not None
        (drop if skip else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
