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
    assert len(README.splitlines()) <= 300
    order = ["Quick start", "Running a course notebook", "A gradient check", "`xpnn train`",
             "On a GPU and on Colab", "Composing networks: `xpnn.nn`", "Pruning",
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
