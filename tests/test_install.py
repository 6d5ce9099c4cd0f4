"""An install that cannot fail for want of a compiler: with the C compiler
made unavailable, the wheel still builds, says why in the file the run-time
warning quotes, and xpnn passes a quick part of the suite on its portable
path."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _source_copy(dest):
    """The project's source as a fresh clone has it (no builds, no venv)."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", ".venv", "build", "*.egg-info", ".git", ".asv", "mutants",
        "__pycache__", ".hypothesis", "BUILD_FAILED.txt", ".pytest_cache", "gpu_check_out"))


@pytest.mark.skipif(os.environ.get("XPNN_TEST_UNPARAMETRIZED_ONLY") == "1",
                    reason="the install does not depend on the default backend: checked once, "
                           "in the main run")
def test_an_install_without_a_compiler_runs_on_the_portable_path(tmp_path):
    src, wheels, site = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    _source_copy(src)
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false", PIP_NO_INPUT="1")
    env.pop("XPNN_REQUIRE_EXTENSION", None)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(wheels), str(src)], capture_output=True, text=True, env=env,
                           timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("xpnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".so", ".pyd"))], names
    note = "xpnn/backend/numpy/_cython/BUILD_FAILED.txt"
    assert note in names
    assert zipfile.ZipFile(wheel).read(note).decode().startswith(
        "CompileError: the compiler /bin/false returned non-zero exit status")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    run_env = dict(os.environ, PYTHONPATH=str(site), XPNN_ALLOW_PORTABLE="1",
                   XPNN_BACKEND="numpy")
    said = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         "import numpy as np, xpnn, xpnn.backend.numpy as k\n"
         "from xpnn.layers import conv_forward_fast\n"
         "print(xpnn.__file__, k.has_compiled())\n"
         "conv_forward_fast(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.zeros(1), "
         "{'stride': 1, 'pad': 1})\n"], cwd=tmp_path, capture_output=True, text=True,
        env=run_env, timeout=300)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(str(site)) and said.stdout.split()[-1] == "False"
    assert "compiled im2col extension is missing (the install could not build it: " \
           "CompileError: the compiler /bin/false" in said.stderr, said.stderr
    quick = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "-W", "ignore::RuntimeWarning",
         str(ROOT / "tests" / "test_extension.py"), str(ROOT / "tests" / "test_gradients.py"),
         str(ROOT / "tests" / "test_reference_values.py")],
        cwd=tmp_path, capture_output=True, text=True, env=run_env, timeout=900)
    assert quick.returncode == 0, quick.stdout[-3000:]
