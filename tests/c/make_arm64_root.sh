#!/usr/bin/env bash
# An aarch64 Python 3.11 and NumPy in a folder of their own, for running the
# aarch64 build of xpnn's extension under qemu-user (tests/test_portability.py):
#
#   bash tests/c/make_arm64_root.sh [DIR]      # default: /opt/xpnn-arm64-root
#
# Debian's arm64 packages are downloaded and unpacked into DIR, never
# installed: an arm64 python3.11 cannot be installed beside the machine's own
# (apt would replace the system's python3.11 with it). Needs root (it adds
# the arm64 architecture to apt's package lists) and a Debian 12 machine.
set -euo pipefail
DIR="${1:-/opt/xpnn-arm64-root}"
if [ -x "$DIR/usr/bin/python3.11" ]; then
    echo "$DIR is there already"; exit 0
fi
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -qq
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# python3.11 and what it loads; NumPy and its BLAS; the C++ and Fortran runtimes
apt-get download -qq python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
    libpython3.11-stdlib:arm64 libpython3.11-dev:arm64 libpython3.11:arm64 \
    python3-numpy:arm64 libblas3:arm64 liblapack3:arm64 libgfortran5:arm64 libc6:arm64 \
    libgcc-s1:arm64 libstdc++6:arm64 zlib1g:arm64 libexpat1:arm64 libffi8:arm64 \
    libbz2-1.0:arm64 liblzma5:arm64 libuuid1:arm64 libssl3:arm64 libcrypt1:arm64 \
    2>&1 | grep -v "unsandboxed" || true
mkdir -p "$DIR.partial"
for deb in ./*.deb; do dpkg-deb -x "$deb" "$DIR.partial"; done
# the BLAS and LAPACK that Debian's alternatives would link
ln -sf blas/libblas.so.3 "$DIR.partial/usr/lib/aarch64-linux-gnu/libblas.so.3"
ln -sf lapack/liblapack.so.3 "$DIR.partial/usr/lib/aarch64-linux-gnu/liblapack.so.3"
rm -rf "$DIR" && mv "$DIR.partial" "$DIR"
echo "aarch64 Python and NumPy in $DIR"
