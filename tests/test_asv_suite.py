"""The asv suite runs once in quick mode against the installed package, so
the benchmarks cannot rot. Nothing is timed here: asv only has to finish
every benchmark without an error (GPU ones are skipped without a GPU)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "asv_benchmarks")


@pytest.mark.skipif(shutil.which("asv") is None and
                    not os.path.exists(os.path.join(os.path.dirname(sys.executable), "asv")),
                    reason="asv is not installed (pip install -e '.[test]')")
@pytest.mark.whole_suite
def test_asv_suite_runs_in_quick_mode(tmp_path):
    asv = shutil.which("asv") or os.path.join(os.path.dirname(sys.executable), "asv")
    env = dict(os.environ, HOME=str(tmp_path))  # asv keeps its machine file in HOME
    subprocess.run([asv, "machine", "--yes"], cwd=SUITE, env=env, check=True,
                   capture_output=True)
    out = subprocess.run([asv, "run", "--python=same", "--quick", "--dry-run", "--show-stderr"],
                         cwd=SUITE, env=env, capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "failed" not in log and "Traceback" not in log, log[-4000:]
    for bench in ("Conv.time_forward_backward", "MaxPool.time_forward_backward",
                  "BatchNorm.time_forward_backward", "TrainStep.time_three_layer_convnet_step",
                  "TrainStep.peakmem_three_layer_convnet_step",
                  "SolverEpoch.time_digits_convnet_epoch",
                  "ShrinkInference.time_inference_batch256"):
        assert bench in log, f"{bench} did not run"
