"""Ratios that machine load cannot fake: xpnn's step time divided by a
peer's, both measured in the same benchmark run, each library in its own
fresh process, alternating xpnn / peer, median of the pairwise ratios.

On a shared machine an absolute timing moves with whatever else runs (one
commit once showed a 33x "regression" from CPU contention); a ratio of two
runs made back to back moves far less, so the dashboard's trend line for a
``track_*`` benchmark is a change in xpnn, not in the machine.

Peers: PyTorch CPU (float32 ThreeLayerConvNet train step, 2 threads each)
and the course's reference "fast" algorithm (float64, the same step;
benchmarks/course_reference.py). A peer that is not installed in the
benchmark environment skips its benchmark with the reason.
"""
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# one library's ThreeLayerConvNet step (batch 50), timed after warm-up; prints
# the median step time in seconds as JSON
_WORKER = r"""
import json, os, sys, time, statistics
lib, steps = sys.argv[1], int(sys.argv[2])
import numpy as np
r = np.random.RandomState(0)
if lib == "torch":
    import torch
    torch.set_num_threads(2)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 7, padding=3), torch.nn.ReLU(),
                            torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                            torch.nn.Linear(32 * 16 * 16, 100), torch.nn.ReLU(),
                            torch.nn.Linear(100, 10))
    X = torch.tensor(r.randn(50, 3, 32, 32).astype(np.float32))
    y = torch.tensor(r.randint(10, size=50))
    def step():
        m.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(X), y).backward()
else:
    from xpnn import backend
    backend.set_backend("numpy")
    from xpnn.models import ThreeLayerConvNet
    dtype = np.float64 if lib in ("xpnn64", "course") else np.float32
    model = ThreeLayerConvNet(dtype=dtype, weight_scale=1e-2)
    X = r.randn(50, 3, 32, 32).astype(dtype)
    y = r.randint(10, size=50)
    if lib == "course":
        sys.path.insert(0, os.path.join(sys.argv[3], "benchmarks"))
        import course_reference as ref
        params = {k: np.asarray(v) for k, v in model.params.items()}
        step = lambda: ref.three_layer_step(params, X, y, 7)
    else:
        step = lambda: model.loss(X, y)
for _ in range(3):
    step()
times = []
for _ in range(steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
print(json.dumps(statistics.median(times)))
"""


def _step_time(lib, steps=10):
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               MKL_NUM_THREADS="2", XPNN_BACKEND="numpy")
    res = subprocess.run([sys.executable, "-c", _WORKER, lib, str(steps), REPO],
                         capture_output=True, text=True, env=env, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"{lib} worker failed: {res.stderr[-1500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _ratio(mine, peer, pairs=3):
    ratios = []
    for _ in range(pairs):  # alternating, so slow phases of the machine hit both
        ratios.append(_step_time(mine) / _step_time(peer))
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
        _require("torch", "add it with the asv.conf.json matrix, see the README")
        return _ratio("xpnn32", "torch")

    track_three_layer_step_vs_torch_cpu.unit = "xpnn time / PyTorch time"

    def track_three_layer_float64_vs_course_reference(self):
        if not os.path.isfile(os.path.join(REPO, "benchmarks", "course_reference.py")):
            raise NotImplementedError("benchmarks/course_reference.py is not in this checkout")
        return _ratio("xpnn64", "course")

    track_three_layer_float64_vs_course_reference.unit = "xpnn time / course reference time"
