"""The two documents keep to their readers: README.md is a student's, short
and in the order a student needs it; CONTRIBUTING.md holds how xpnn is
developed, tested and measured; their links resolve."""
from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def _headings(text):
    return [h for h in re.findall(r"^## (.+)$", text, re.M)]


def test_the_readme_is_short_and_in_a_students_order():
    assert len(README.splitlines()) <= 320   # a few minutes to read
    order = ["Quick start", "Running a course notebook", "A gradient check", "`xpnn train`",
             "GPUs, Macs and Windows: the backends", "Composing networks: `xpnn.nn`", "Pruning",
             "`xpnn tune`: coarse-to-fine search", "Layers", "Speed, and developing xpnn"]
    assert _headings(README) == order
    # the table of contents lists every section, in order, and nothing else
    toc = re.findall(r"^- \[(.+?)\]\(#[^)]+\)$", README, re.M)
    assert toc == order


def test_the_first_two_commands_install_and_run_then_test():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert blocks[0].strip() == "pip install -e . && xpnn train"
    assert blocks[1].strip() == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci


def test_development_matters_live_in_contributing():
    for word in ("mutmut", "OPENBLAS_THREAD_TIMEOUT", "asv run", "gpu_check.sh",
                 "XPNN_NO_MALLOC_TUNING", "HostCudaKernels"):
        assert word not in README, word
        assert word in CONTRIBUTING, word


def test_local_links_resolve():
    for name, text in (("README.md", README), ("CONTRIBUTING.md", CONTRIBUTING)):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (ROOT / target).exists(), (name, target)
        anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                   for h in _headings(text)}
        for anchor in re.findall(r"\]\(#([^)]+)\)", text):
            assert anchor in anchors, (name, anchor)


def test_the_colab_cell_works_as_pasted(tmp_path):
    """The Colab cell once failed as written (`git clone <this repository>
    xpnn` is a shell redirection, and a clone named `xpnn` beside the
    notebook shadows the package). Its commands run here in a fresh folder,
    the address typed at its prompt being this checkout. Without a GPU two
    things differ, each said: the install skips CuPy (`[gpu-cuda12]` and the
    dependencies this environment already has), and the check and the
    training use the NumPy backend."""
    import os
    import shlex
    import subprocess
    import sys

    import pytest
    if os.environ.get("XPNN_TEST_UNPARAMETRIZED_ONLY") == "1":
        pytest.skip("installing from a clone does not depend on the default backend: it is "
                    "checked once, in the main run")
    body = README.split("## GPUs, Macs and Windows: the backends", 1)[1].split("\n## ", 1)[0]
    (cell,) = re.findall(r"```python\n(.*?)```", body, re.S)
    lines = cell.strip().splitlines()
    assert lines[0] == 'XPNN_GIT = input("xpnn\'s git address: ")'
    shell = [ln[1:] for ln in lines[1:]]
    assert all(ln.startswith("!") for ln in lines[1:]) and "<" not in cell
    clone, install = shell[0].split(" && ")
    assert clone == "git clone -q {XPNN_GIT} xpnn-src"
    assert install == 'pip install -q "./xpnn-src[gpu-cuda12]"'
    work, site = tmp_path / "colab", tmp_path / "site"
    work.mkdir()
    run = dict(cwd=work, capture_output=True, text=True, timeout=900)
    out = subprocess.run(shlex.split(clone.replace("{XPNN_GIT}", str(ROOT))), **run)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(site), "./xpnn-src"], **run)
    assert out.returncode == 0, out.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "PATH": f"{site / 'bin'}:{os.environ['PATH']}"}
    check = shlex.split(shell[1].replace("'cupy'", "'numpy'"))
    out = subprocess.run(check, env=env, **run)
    assert out.returncode == 0 and out.stdout.strip() == "xpnn on numpy", out.stderr
    where = subprocess.run(["python", "-c", "import xpnn; print(xpnn.__file__)"], env=env, **run)
    assert where.stdout.startswith(str(site)), where.stdout    # not the clone beside it
    train = shlex.split(shell[2].replace("XPNN_BACKEND=cupy ", "") + " --plot none --quiet")
    out = subprocess.run(train, env={**env, "XPNN_BACKEND": "numpy"}, **run)
    assert out.returncode == 0 and "val accuracy:" in out.stdout, out.stderr


def test_the_benchmark_config_names_no_address_that_does_not_exist():
    """asv.conf.json once pointed project_url at a package-index page for
    xpnn, which does not exist; the dashboard needs none."""
    import json
    conf = json.loads((ROOT / "asv_benchmarks" / "asv.conf.json").read_text())
    assert "project_url" not in conf and conf["repo"] == ".."
