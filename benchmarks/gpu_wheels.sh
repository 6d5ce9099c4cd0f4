#!/usr/bin/env bash
# Download, on a machine with a package registry, the wheels that a GPU
# machine without one lacks for benchmarks/gpu_check.sh, into .whl/ (ignored
# by git). The GPU machines here have Python 3.12, CuPy 14 (CUDA 13),
# PyTorch, Cython, pytest, hypothesis, matplotlib, scikit-learn and tqdm;
# they lack array-api-compat, array-api-strict and nvidia-cudnn-frontend
# (cuDNN's graph API, xpnn's `cudnn` extra; 1.14 is the last release without
# further dependencies; the cuDNN library itself comes with PyTorch there).
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${PYVER:-3.12}"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_27_x86_64 \
    -d .whl "array-api-compat>=1.9" "array-api-strict>=2.2" "nvidia-cudnn-frontend==1.14.0"
ls -l .whl
