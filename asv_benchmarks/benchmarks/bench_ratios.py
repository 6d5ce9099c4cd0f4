"""Ratios that machine load cannot fake: xpnn's step time divided by a
peer's, both measured in the same benchmark run, each library in its own
fresh process, alternating xpnn / peer, median of the pairwise ratios.

On a shared machine an absolute timing moves with whatever else runs (one
commit once showed a 33x "regression" from CPU contention); a ratio of two
runs made back to back moves far less, so the dashboard's trend line for a
``track_*`` benchmark is a change in xpnn, not in the machine.

Peers: PyTorch CPU (float32 ThreeLayerConvNet and CINIC challenge-net train
steps, 2 threads each)
and the course's reference "fast" algorithm (float64, the same step;
benchmarks/course_reference.py). The steps are those of
benchmarks/compare_torch.py, whose worker runs each measurement. A peer that
is not installed in the benchmark environment skips its benchmark with the
reason.
"""
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COMPARE = os.path.join(REPO, "benchmarks", "compare_torch.py")


def _step_time(case, lib, steps=10):
    """Median step time (s) of ``lib`` on ``case`` in a fresh process: the
    worker of benchmarks/compare_torch.py, which builds only that library."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               MKL_NUM_THREADS="2", XPNN_BACKEND="numpy")
    res = subprocess.run([sys.executable, COMPARE, "--worker", case, lib, str(steps), "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"{lib} worker failed: {res.stderr[-1500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["ms"] / 1e3


def _ratio(case, peer, pairs=3):
    ratios = []
    for _ in range(pairs):  # alternating, so slow phases of the machine hit both
        ratios.append(_step_time(case, "xpnn") / _step_time(case, peer))
    return statistics.median(ratios)


def _require(module, why):
    try:
        __import__(module)
    except ImportError:
        raise NotImplementedError(f"{module} is not installed in this environment ({why})")


class Ratios:
    timeout = 600
    unit = "xpnn time / peer time"

    def track_three_layer_step_vs_torch_cpu(self):
        _require("torch", "add it with the asv.conf.json matrix, see CONTRIBUTING.md")
        return _ratio("three_layer_convnet_step", "torch")

    track_three_layer_step_vs_torch_cpu.unit = "xpnn time / PyTorch time"

    def track_challenge_net_step_vs_torch_cpu(self):
        _require("torch", "add it with the asv.conf.json matrix, see CONTRIBUTING.md")
        return _ratio("challenge_net_step", "torch")

    track_challenge_net_step_vs_torch_cpu.unit = "xpnn time / PyTorch time"

    def track_three_layer_float64_vs_course_reference(self):
        if not os.path.isfile(os.path.join(REPO, "benchmarks", "course_reference.py")):
            raise NotImplementedError("benchmarks/course_reference.py is not in this checkout")
        return _ratio("three_layer_f64_vs_course_ref", "course")

    track_three_layer_float64_vs_course_reference.unit = "xpnn time / course reference time"
