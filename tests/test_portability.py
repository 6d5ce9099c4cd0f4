"""The C kernels of the extension on other machines: the direct
convolution (direct_conv.h) built by GCC, by clang and for aarch64 (an
M-series Mac's or a Raspberry Pi's instruction set: Debian's cross
compiler, run under qemu-user), each against a plain loop on odd sizes in
float32 and float64 (tests/c/direct_conv_check.c)."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "c" / "direct_conv_check.c"
HEADERS = ROOT / "xpnn" / "backend" / "numpy" / "_cython"
FLAGS = ["-O3", "-Wall", "-Wno-psabi", "-fno-trapping-math", f"-I{HEADERS}"]


@pytest.mark.parametrize("compiler, runner, extra", [
    ("gcc", None, []),
    ("clang", None, []),
    ("aarch64-linux-gnu-gcc", "qemu-aarch64", ["-static"]),
])
def test_the_direct_convolution_kernels_agree_with_a_plain_loop(tmp_path, compiler, runner,
                                                                extra):
    missing = [t for t in (compiler, runner) if t and shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (.ci/run installs Debian's "
                    f"gcc-aarch64-linux-gnu, qemu-user and clang)")
    exe = tmp_path / "check"
    built = subprocess.run([compiler, *FLAGS, *extra, str(HARNESS), "-o", str(exe), "-lm"],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([*([runner] if runner else []), str(exe)], capture_output=True,
                         text=True, timeout=300)
    lines = ran.stdout.splitlines()
    assert ran.returncode == 0 and len(lines) == 14, ran.stdout + ran.stderr
    assert all(ln.startswith("ok ") for ln in lines), ran.stdout
    assert {ln.split()[1] for ln in lines} == {"float", "double"}
