"""The comparison scripts run (timings are not checked: speed lives in the
benchmarks, and these machines are noisy)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="PyTorch (benchmark peer) is not installed")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_compare_torch_runs():
    out = _run("benchmarks/compare_torch.py", "--pairs", "1", "--steps", "2", "--only",
               "maxpool_2x2_100x3x32x32,batchnorm_256x512,three_layer_f64_vs_course_ref,"
               "three_layer_convnet_step,three_layer_convnet_step_busy_core")
    assert out.returncode in (0, 1), out.stderr  # 1 = a target missed on a noisy run
    for row in ("maxpool_2x2_100x3x32x32", "batchnorm_256x512", "three_layer_f64_vs_course_ref",
                "three_layer_convnet_step_busy_core"):
        assert row in out.stdout
    assert "one busy core slows xpnn" in out.stdout  # the contention comparison is made


def test_compare_torch_cuda_cpu_check_runs():
    out = _run("benchmarks/compare_torch_cuda.py", "--cpu-check")
    assert out.returncode == 0, out.stderr
    assert "three_layer" in out.stdout and "challenge" in out.stdout, out.stdout


def test_course_reference_peer_computes_what_xpnn_computes():
    """The float64 peer must be the same computation, or its ratio means
    nothing: same loss and gradients as xpnn's ThreeLayerConvNet."""
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import course_reference as ref

    from xpnn import backend
    from xpnn.models import ThreeLayerConvNet
    with backend.use_backend("numpy"):
        r = np.random.RandomState(0)
        X, y = r.randn(6, 3, 32, 32), r.randint(10, size=6)
        model = ThreeLayerConvNet(dtype=np.float64, weight_scale=1e-2)
        params = {k: np.asarray(v) for k, v in model.params.items()}
        loss_ref, g_ref = ref.three_layer_step(params, X, y, 7)
        loss, g = model.loss(X, y)
    assert abs(float(loss) - loss_ref) < 1e-10 * abs(loss_ref)
    for k in g_ref:
        np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-8, atol=1e-12, err_msg=k)
