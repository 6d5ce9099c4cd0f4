"""The README's commands, pasted in order into a fresh folder, as a new user
runs them: each that a CPU without the downloaded data sets can run must
succeed (and the files the next one reads must be there); one that needs
CIFAR-10 or CINIC-10 must say where to get it; the GPU's need a GPU; the
torch one trains on the best device present."""
from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title):
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _commands(title):
    """The xpnn commands of a section's bash blocks, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", _section(title), re.S):
        for line in block.strip().splitlines():
            for part in " ".join(shlex.split(line, comments=True)).split(" && "):
                words = shlex.split(part)
                if "xpnn" in words[:2]:
                    out.append(words)
    return out


def _run(words, cwd):
    env = dict(os.environ, XPNN_BACKEND="numpy")
    env.pop("XPNN_DATA", None)
    while "=" in words[0]:               # VAR=value xpnn ...
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words[0] == "xpnn", words
    return subprocess.run([sys.executable, "-m", "xpnn.cli", *words[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def test_the_readme_commands_run_in_order_as_pasted(tmp_path):
    (tmp_path / "net.json").write_text(re.findall(r"```json\n(.*?)```",
                                                  _section("Composing networks"), re.S)[0])
    json.loads((tmp_path / "net.json").read_text())     # the README's architecture file
    ran, said = [], {}
    for title in ("Quick start", "`xpnn train`", "Pruning"):
        for words in _commands(title):
            if words[:2] != ["xpnn", "train"] and words[:2] != ["xpnn", "prune"]:
                continue   # `pip install` lines: the install is this environment
            out = _run(list(words), tmp_path)
            line = " ".join(words)
            if "cifar10" in words or "cinic10" in words:   # no download here
                assert out.returncode == 1 and "curl -L" in out.stderr, (line, out.stderr)
                continue
            assert out.returncode == 0, (line, out.stderr[-2000:])
            assert "Traceback" not in out.stderr, line
            ran.append(line)
            said[line] = out.stdout
    assert "xpnn train" in ran and any("--resume" in c for c in ran)
    assert sum(c.startswith("xpnn prune") for c in ran) == 2
    assert (tmp_path / "xpnn_train.png").is_file() and list(tmp_path.glob("pruned_*.npz"))
    # pruning starts from the model the resumed run reported at its end (the
    # best epoch's params with that epoch's batch-norm statistics)
    (resumed,) = [c for c in ran if "--resume" in c]
    reported = re.search(r"val accuracy: ([\d.]+)", said[resumed]).group(1)
    first_prune = [c for c in ran if c.startswith("xpnn prune")][0]
    assert f"val accuracy {reported}," in said[first_prune], said[first_prune]


_BACKENDS = "GPUs, Macs and Windows: the backends"


def test_the_torch_command_trains_on_the_best_device_present(tmp_path):
    from conftest import _TORCH_REASON
    if _TORCH_REASON is not None:
        pytest.skip(_TORCH_REASON)
    (cmd,) = [c for c in _commands(_BACKENDS) if "torch" in " ".join(c)]
    out = _run(list(cmd), tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "val accuracy: 0.9" in out.stdout, out.stdout[-500:]


def test_the_gpu_command_needs_a_gpu(tmp_path):
    from conftest import _CUPY_REASON
    (cmd,) = [c for c in _commands(_BACKENDS) if "cupy" in " ".join(c)]
    if _CUPY_REASON is not None:
        out = _run(list(cmd), tmp_path)
        assert out.returncode == 1 and "cupy" in out.stderr.lower()
        pytest.skip(f"no usable GPU to train on: {_CUPY_REASON.split(';')[0]}")
    assert _run(list(cmd), tmp_path).returncode == 0
