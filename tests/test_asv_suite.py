"""The asv suite runs once in quick mode against the installed package, so
the benchmarks cannot rot. Nothing is timed here: asv only has to finish
every benchmark without an error (GPU ones are skipped without a GPU)."""
from __future__ import annotations

import os
import re
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
    # the backend parameter's torch rows ran (with PyTorch installed), beside numpy's
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    assert re.search(r"^\s+torch\s+[\d.]+(±[\d.]+)?[mu]?s\b", log, re.M), log[-4000:]


def _asv(asv, args, cwd, env, timeout=1200):
    res = subprocess.run([asv, *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


@pytest.mark.skipif(shutil.which("asv") is None and
                    not os.path.exists(os.path.join(os.path.dirname(sys.executable), "asv")),
                    reason="asv is not installed (pip install -e '.[test]')")
@pytest.mark.skipif(shutil.which("git") is None or shutil.which("npm") is None,
                    reason="git and npm are needed for an asv history and an offline page")
@pytest.mark.whole_suite
def test_asv_history_publishes_an_offline_dashboard(tmp_path):
    """CONTRIBUTING.md's asv workflow, on a clone with a two-commit
    history: asv builds each commit in its own virtualenv, benchmarks it
    (quick mode), publishes, and the page needs no network."""
    import json
    asv = shutil.which("asv") or os.path.join(os.path.dirname(sys.executable), "asv")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    # the working tree as it is (uncommitted work too), as the newest commit
    subprocess.run(["git", "-C", ROOT, "diff", "HEAD", "--binary", "--output",
                    str(tmp_path / "wt.diff")], check=True)
    if (tmp_path / "wt.diff").stat().st_size:
        subprocess.run(["git", "-C", str(clone), "apply", str(tmp_path / "wt.diff")],
                       check=True)
    untracked = subprocess.run(["git", "-C", ROOT, "ls-files", "--others", "--exclude-standard"],
                               capture_output=True, text=True, check=True).stdout.split()
    for rel in untracked:
        os.makedirs(os.path.dirname(clone / rel), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), clone / rel)
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True)
    env = dict(os.environ, HOME=str(tmp_path / "home"), GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "-C", str(clone), "commit", "-q", "-a", "--allow-empty", "-m",
                    "second"], check=True, env=env)
    suite = clone / "asv_benchmarks"
    _asv(asv, ["machine", "--yes"], suite, env)
    _asv(asv, ["run", "--quick", "HEAD~2..HEAD"], suite, env)
    res = subprocess.run([sys.executable, "publish_offline.py"], cwd=suite, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    html = suite / ".asv" / "html"
    index = json.loads((html / "index.json").read_text())
    hashes = [subprocess.run(["git", "-C", str(clone), "rev-parse", f"HEAD~{i}"],
                             capture_output=True, text=True).stdout.strip() for i in (0, 1)]
    revisions = index["revision_to_hash"].values()
    assert all(h in revisions for h in hashes), (hashes, index["revision_to_hash"])
    for bench in ("bench_layers.Conv.time_forward_backward",
                  "bench_training.TrainStep.time_three_layer_convnet_step",
                  "bench_prune.ShrinkInference.time_inference_batch256",
                  "bench_ratios.Ratios.track_three_layer_step_vs_torch_cpu",
                  "bench_ratios.Ratios.track_challenge_net_step_vs_torch_cpu",
                  "bench_ratios.Ratios.track_three_layer_float64_vs_course_reference"):
        assert bench in index["benchmarks"], sorted(index["benchmarks"])
        assert list(html.glob(f"graphs/**/{bench}.json")), bench
    ratio = list(html.glob("graphs/**/bench_ratios.Ratios.track_three_layer_float64_vs_"
                           "course_reference.json"))[0]
    points = [p[1] for p in json.loads(ratio.read_text()) if p[1] is not None]
    assert len(points) == 2 and all(0 < v < 10 for v in points), points  # a ratio, measured
    page = (html / "index.html").read_text()
    assert "https://" not in page.replace("https://github.com", "")
    for src in re.findall(r'(?:src|href)="(vendor/[^"]+)"', page):
        assert (html / src).is_file(), src
