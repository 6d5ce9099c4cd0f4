"""Compile CuPy ElementwiseKernel specs for the host, to check their bodies
without a GPU.

An ElementwiseKernel runs its body once per index ``i``: a non-raw array
input ``T x`` is bound to ``x[i]``, an output ``T y`` to a reference to
``y[i]``, a scalar (``float64 s``) is passed by value and ``raw`` arrays are
indexed directly. :func:`build` writes exactly that loop in C++ for every
spec (with ``T`` a chosen type and no fused multiply-add contraction, as
xpnn compiles them for the GPU) and :func:`call` runs one on NumPy arrays.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np

CXX = shutil.which("g++") or shutil.which("c++")
_CTYPES = {"float64": ("double", ctypes.c_double), "float32": ("float", ctypes.c_float),
           "int32": ("int", ctypes.c_int32), "int64": ("long long", ctypes.c_longlong)}


def _params(text):
    out = []
    for item in text.split(","):
        words = item.split()
        raw = words[0] == "raw"
        typ, name = words[-2], words[-1]
        out.append((raw, typ, name))
    return out


def build(specs: dict, T: str, folder) -> ctypes.CDLL:
    """A shared library with one ``extern "C"`` function per spec, named
    like the spec, T = 'double' or 'float'."""
    src = ["#include <cmath>", "#include <algorithm>", "using std::sqrt; using std::min;",
           f"typedef {T} T;"]
    for name, (ins, outs, body) in specs.items():
        args, binds = [], []
        for raw, typ, nm in _params(ins):
            ctype = "T" if typ == "T" else _CTYPES[typ][0]
            if raw or typ == "T":
                args.append(f"const {ctype}* {nm}" + ("" if raw else "_p"))
                if not raw:
                    binds.append(f"const {ctype} {nm} = {nm}_p[i];")
            else:
                args.append(f"{ctype} {nm}")
        for _, typ, nm in _params(outs):
            ctype = "T" if typ == "T" else _CTYPES[typ][0]
            args.append(f"{ctype}* {nm}_p")
            binds.append(f"{ctype}& {nm} = {nm}_p[i];")
        src.append(f'extern "C" void {name}({", ".join(args)}, long long n) {{\n'
                   f"  for (long long i = 0; i < n; i++) {{ {' '.join(binds)}\n{body}\n  }}\n}}")
    (folder / "k.cpp").write_text("\n".join(src) + "\n")
    res = subprocess.run([CXX, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o",
                          str(folder / "k.so"), str(folder / "k.cpp")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return ctypes.CDLL(str(folder / "k.so"))


def call(lib, specs, name, T, *args):
    """Run kernel ``name`` elementwise over NumPy arrays: ``args`` are the
    inputs in the spec's order; returns the outputs as new arrays."""
    ins, outs, _ = specs[name]
    dt = np.float64 if T == "double" else np.float32
    cargs, n = [], None
    for (raw, typ, _nm), a in zip(_params(ins), args):
        if raw or typ == "T":
            a = np.ascontiguousarray(a, dtype=dt if typ == "T" else typ)
            n = a.size if n is None and not raw else n
            cargs.append(a.ctypes.data_as(ctypes.c_void_p))
        else:
            cargs.append(_CTYPES[typ][1](a))
    results = []
    for _, typ, _nm in _params(outs):
        o = np.empty(n, dtype=dt if typ == "T" else typ)
        results.append(o)
        cargs.append(o.ctypes.data_as(ctypes.c_void_p))
    fn = getattr(lib, name)
    fn(*cargs, ctypes.c_longlong(n))
    return results
