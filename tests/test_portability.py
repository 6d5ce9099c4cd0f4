"""The C kernels of the extension on other machines: the direct
convolution (direct_conv.h), the recurrent step's product (step_gemm.h)
and gates (step_gates.h), built by GCC, by clang and for aarch64 (an
M-series Mac's or a Raspberry Pi's instruction set: Debian's cross
compiler, run under qemu-user), each against plain loops on odd sizes in
float32 and float64 (tests/c/direct_conv_check.c, tests/c/step_check.c)."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HARNESSES = ROOT / "tests" / "c"
HEADERS = ROOT / "xpnn" / "backend" / "numpy" / "_cython"
FLAGS = ["-O3", "-Wall", "-Wno-psabi", "-fno-trapping-math", f"-I{HEADERS}"]


_MACHINES = [
    ("gcc", None, []),
    ("clang", None, []),
    ("aarch64-linux-gnu-gcc", "qemu-aarch64", ["-static"]),
]


def _build_and_run(tmp_path, harness, compiler, runner, extra):
    missing = [t for t in (compiler, runner) if t and shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (.ci/run installs Debian's "
                    f"gcc-aarch64-linux-gnu, qemu-user and clang)")
    exe = tmp_path / "check"
    built = subprocess.run([compiler, *FLAGS, *extra, str(HARNESSES / harness), "-o", str(exe),
                            "-lm"], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([*([runner] if runner else []), str(exe)], capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines and all(ln.startswith("ok ") for ln in lines), ran.stdout
    return lines


@pytest.mark.parametrize("compiler, runner, extra", _MACHINES)
def test_the_direct_convolution_kernels_agree_with_a_plain_loop(tmp_path, compiler, runner,
                                                                extra):
    lines = _build_and_run(tmp_path, "direct_conv_check.c", compiler, runner, extra)
    assert len(lines) == 14
    assert {ln.split()[1] for ln in lines} == {"float", "double"}


@pytest.mark.parametrize("compiler, runner, extra", _MACHINES)
def test_the_recurrent_step_kernels_agree_with_plain_loops(tmp_path, compiler, runner, extra):
    """Every version the machine runs (the baseline; AVX2 and AVX-512 where
    GCC builds them for x86 and the CPU has them; elsewhere the generic
    vector build of each), both packings, float32 and float64; the gates
    in float32 with a NaN kept."""
    lines = _build_and_run(tmp_path, "step_check.c", compiler, runner, extra)
    gemm = [ln for ln in lines if ln.split()[1] == "gemm"]
    levels = {ln.split()[3] for ln in gemm}
    assert "baseline" in levels and len(gemm) == 24 * len(levels)
    assert {ln.split()[2] for ln in gemm} == {"float", "double"}
    assert len([ln for ln in lines if ln.split()[1] == "gates"]) == 4
    if compiler != "gcc":      # no per-CPU versions: each generic build is checked
        assert levels == {"baseline", "v3", "v4"}
