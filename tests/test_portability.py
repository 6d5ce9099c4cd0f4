"""The C kernels of the extension on other machines: the direct
convolution (direct_conv.h), the recurrent step's product (step_gemm.h)
and gates (step_gates.h), built by GCC, by clang and for aarch64 (an
M-series Mac's or a Raspberry Pi's instruction set: Debian's cross
compiler, run under qemu-user), each against plain loops on odd sizes in
float32 and float64 (tests/c/direct_conv_check.c, tests/c/step_check.c);
and the whole extension (im2col.pyx, through Cython) built for aarch64 and
run by an aarch64 Python and NumPy under qemu-user
(tests/c/make_arm64_root.sh, tests/c/run_extension.py), against the same
kernels built for this machine."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

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


#: the aarch64 Python and NumPy, unpacked by tests/c/make_arm64_root.sh
ARM64_ROOT = pathlib.Path(os.environ.get("XPNN_ARM64_ROOT", "/opt/xpnn-arm64-root"))


def test_the_extension_built_for_aarch64_agrees_with_this_machines(tmp_path):
    """Every kernel of im2col.pyx (columns and their adjoint, max pooling
    with ties and a NaN, the channel affine, the direct convolution and its
    weight gradient, the step product, the gates), as Cython generates it,
    cross-compiled with setup.py's flags and run by Debian's aarch64 Python
    3.11 and NumPy under qemu-user: what only moves values is identical to
    this machine's build, float64 arithmetic within 1e-14, float32 within
    1e-6 (fused multiply-adds differ); and aarch64 chooses the baseline
    step product."""
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (.ci/run installs them)")
    python = ARM64_ROOT / "usr" / "bin" / "python3.11"
    if not python.is_file():
        pytest.skip(f"no aarch64 Python in {ARM64_ROOT}: bash tests/c/make_arm64_root.sh "
                    "makes one (.ci/run does)")
    pytest.importorskip("Cython", reason="Cython generates the extension's C ([test] brings it)")
    from xpnn.backend.numpy import _cython, has_compiled
    if not has_compiled():
        pytest.skip("this machine's build of the extension is missing: nothing to compare with")
    c_file = tmp_path / "im2col.c"
    gen = subprocess.run([sys.executable, "-m", "cython", "-3", str(HEADERS / "im2col.pyx"),
                          "-o", str(c_file)], capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    build = tmp_path / "aarch64"
    build.mkdir()
    so = build / "im2col.cpython-311-aarch64-linux-gnu.so"
    built = subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O3", "-fno-trapping-math", "-Wno-psabi", "-fPIC", "-shared",
         f"-I{ARM64_ROOT / 'usr' / 'include'}",
         f"-I{ARM64_ROOT / 'usr' / 'include' / 'python3.11'}",
         f"-I{HEADERS}", str(c_file), "-o", str(so)], capture_output=True, text=True,
        timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    runner = HARNESSES / "run_extension.py"
    there = subprocess.run(["qemu-aarch64", "-L", str(ARM64_ROOT), str(python), str(runner),
                            str(build), str(tmp_path / "aarch64.npz")], capture_output=True,
                           text=True, timeout=600)
    assert there.returncode == 0, there.stdout + there.stderr[-3000:]
    here = subprocess.run([sys.executable, str(runner), os.path.dirname(_cython.__file__),
                           str(tmp_path / "here.npz")], capture_output=True, text=True,
                          timeout=300)
    assert here.returncode == 0, here.stderr[-3000:]
    import numpy as np
    with np.load(tmp_path / "aarch64.npz") as a, np.load(tmp_path / "here.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) == 38
        # aarch64 runs the baseline step product (the x86 levels are guarded)
        assert int(a["step_level"]) == 0
        for k in set(a.files) - {"step_level"}:
            x, y = a[k], b[k]
            assert x.dtype == y.dtype and x.shape == y.shape, k
            moves = k.split("_")[0] in ("im2col", "col2im", "pool")
            if moves or x.dtype.kind == "i":
                np.testing.assert_array_equal(x, y, err_msg=k)
            else:
                tol = 1e-14 if x.dtype == np.float64 else 1e-6
                np.testing.assert_allclose(x, y, rtol=tol, atol=tol * np.abs(y).max(),
                                           err_msg=k)
