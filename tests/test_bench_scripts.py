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
    out = _run("benchmarks/compare_torch.py", "--repeat", "1", "--only",
               "maxpool_2x2_100x3x32x32,batchnorm_256x512,three_layer_f64_vs_course_ref")
    assert out.returncode in (0, 1), out.stderr  # 1 = a target missed on a noisy run
    for row in ("maxpool_2x2_100x3x32x32", "batchnorm_256x512", "three_layer_f64_vs_course_ref"):
        assert row in out.stdout


def test_compare_torch_cuda_cpu_check_runs():
    out = _run("benchmarks/compare_torch_cuda.py", "--cpu-check")
    assert out.returncode == 0, out.stderr
    assert "three_layer" in out.stdout and "challenge" in out.stdout, out.stdout
