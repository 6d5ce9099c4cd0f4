"""``XPNN_BACKEND=cupy python -m pytest`` must be a working mode: every test
that does not choose its backend runs on the default one, so it must read
results back through ``backend.to_numpy``, never ``np.asarray``. Here the
same run is made on array-api-strict's simulated device, which refuses
implicit host conversion as CuPy does, so a test that would break on a GPU
breaks on every machine; and once more on torch's CPU device (PyTorch's
tensors, torch's kernels), as a Mac or a machine with PyTorch runs it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.whole_suite
@pytest.mark.parametrize("name", [
    "array_api_strict",
    pytest.param("torch", marks=pytest.mark.skipif(
        not _has_torch(), reason="PyTorch is not installed (xpnn's [test] extra brings it)"))])
def test_suite_passes_with_the_default_backend_on_a_device(name):
    env = dict(os.environ, XPNN_BACKEND=name, XPNN_TEST_UNPARAMETRIZED_ONLY="1")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", HERE],
        cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(res.stdout.splitlines()[-25:])
    assert res.returncode == 0, tail
    assert " passed" in tail and "deselected" in tail, tail
