"""``XPNN_BACKEND=cupy python -m pytest`` must be a working mode: every test
that does not choose its backend runs on the default one, so it must read
results back through ``backend.to_numpy``, never ``np.asarray``. Here the
same run is made on array-api-strict's simulated device, which refuses
implicit host conversion as CuPy does, so a test that would break on a GPU
breaks on every machine."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.whole_suite
def test_suite_passes_with_the_default_backend_on_a_device():
    env = dict(os.environ, XPNN_BACKEND="array_api_strict", XPNN_TEST_UNPARAMETRIZED_ONLY="1")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", HERE],
        cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(res.stdout.splitlines()[-25:])
    assert res.returncode == 0, tail
    assert " passed" in tail and "deselected" in tail, tail
