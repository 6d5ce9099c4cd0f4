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

from xpnn.backend.cupy import CupyKernels, _cuda, _update

CXX = shutil.which("g++") or shutil.which("c++")
_CTYPES = {"float64": ("double", ctypes.c_double), "float32": ("float", ctypes.c_float),
           "int32": ("int", ctypes.c_int32), "int64": ("long long", ctypes.c_longlong)}


def _ctype(typ):
    """C type of a CuPy parameter type: a named one, or a placeholder
    letter other than T, which xpnn uses for integer labels (int64)."""
    return "long long" if len(typ) == 1 else _CTYPES[typ][0]


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
    src = ["#include <cmath>", "#include <algorithm>",
           "using std::sqrt; using std::min; using std::exp; using std::log; using std::tanh;",
           f"typedef {T} T;"]
    for name, (ins, outs, body) in specs.items():
        args, binds = [], []
        for raw, typ, nm in _params(ins):
            ctype = "T" if typ == "T" else _ctype(typ)
            if raw or typ == "T" or len(typ) == 1:
                args.append(f"const {ctype}* {nm}" + ("" if raw else "_p"))
                if not raw:
                    binds.append(f"const {ctype} {nm} = {nm}_p[i];")
            else:
                args.append(f"{ctype} {nm}")
        for _, typ, nm in _params(outs):
            ctype = "T" if typ == "T" else _ctype(typ)
            args.append(f"{ctype}* {nm}_p")
            binds.append(f"{ctype}& {nm} = {nm}_p[i];")
        src.append(f'extern "C" void {name}({", ".join(args)}, long long n) {{\n'
                   f"  for (long long i = 0; i < n; i++) {{ {' '.join(binds)}\n{body}\n  }}\n}}")
    return _compile(src, folder, "k")


def _compile(src, folder, stem):
    """Build the C++ lines ``src`` into a shared library (no fused
    multiply-add, as the GPU kernels are compiled) and load it."""
    (folder / f"{stem}.cpp").write_text("\n".join(src) + "\n")
    res = subprocess.run([CXX, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o",
                          str(folder / f"{stem}.so"), str(folder / f"{stem}.cpp")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return ctypes.CDLL(str(folder / f"{stem}.so"))


def call(lib, specs, name, T, *args, size=None):
    """Run kernel ``name`` elementwise over NumPy arrays: ``args`` are the
    inputs in the spec's order; returns the outputs as new arrays, of
    ``size`` elements (default: that of the first non-raw array input)."""
    ins, outs, _ = specs[name]
    assert len(args) == len(_params(ins)), \
        f"{name} takes {len(_params(ins))} inputs ({ins}), got {len(args)}"
    dt = np.float64 if T == "double" else np.float32
    cargs, n = [], size
    for (raw, typ, _nm), a in zip(_params(ins), args):
        if raw or typ == "T" or len(typ) == 1:
            a = np.ascontiguousarray(a, dtype=dt if typ == "T" else
                                     np.int64 if len(typ) == 1 else typ)
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


class HostKernels:
    """Callables with CuPy's calling conventions over the host builds:
    ``kernels(name)(*args)`` runs an elementwise kernel (array arguments
    broadcast together, one array or a tuple back)."""

    def __init__(self, elementwise_specs, T, folder):
        self.T, self.ew = T, elementwise_specs
        self.dt = np.float64 if T == "double" else np.float32
        self.ew_lib = build(elementwise_specs, T, folder)

    def __call__(self, name):
        return lambda *args: self._elementwise(name, args)

    def _elementwise(self, name, args):
        """CuPy's rules: non-raw array inputs broadcast together, raw ones
        are passed whole; output arrays given after the inputs are filled
        (their size sets the index range), else new ones are returned."""
        ins, outs, _ = self.ew[name]
        params = _params(ins)
        given_out = list(args[len(params):])
        args = list(args[:len(params)])
        # CuPy refuses a T array of another dtype (and a raw one would be
        # read as T's bytes): so does the host build
        for (_, typ, nm), a in list(zip(params, args)) + list(zip(_params(outs), given_out)):
            if typ == "T" and isinstance(a, np.ndarray) and a.dtype != self.dt:
                raise TypeError(f"{name}: {nm} is {a.dtype}, the kernel runs in {self.dt}")
        bcast = [i for i, (raw, typ, _) in enumerate(params)
                 if not raw and isinstance(args[i], np.ndarray)]
        for i in bcast:  # labels (a placeholder type other than T) keep their int type
            if len(params[i][1]) == 1 and params[i][1] != "T":
                args[i] = args[i].astype(np.int64)
        shape = np.broadcast_shapes(*[args[i].shape for i in bcast]) if bcast else None
        if given_out:
            shape = given_out[0].shape
        for i in bcast:
            args[i] = np.ascontiguousarray(np.broadcast_to(args[i], shape)).ravel()
        results = call(self.ew_lib, self.ew, name, self.T, *args, size=int(np.prod(shape)))
        results = [r.reshape(shape) for r in results]
        for o, r in zip(given_out, results):
            o[...] = r
        if given_out:
            return given_out[0] if len(given_out) == 1 else tuple(given_out)
        return results[0] if len(results) == 1 else tuple(results)



class HostCudaKernels(CupyKernels):
    """The CuPy backend's Kernels (their very methods) over NumPy arrays of
    one dtype, every CUDA body compiled for the host: the layer kernels from
    their tables, an update rule's from its own class. Installed as the
    NumPy backend's kernels (``monkeypatch.setattr(backend.get("numpy"),
    "kernels", ...)``), it runs models, layers and update rules through the
    GPU's code on any machine."""

    def __init__(self, T, folder):
        self.T, self.folder, self.rules = T, folder, {}
        self.dt = np.float64 if T == "double" else np.float32
        self.kernel = HostKernels({**_cuda.POOL_SPECS, **_cuda.CONV_ELEMENTWISE,
                                   **_cuda.BN_ELEMENTWISE, **_cuda.RNN_ELEMENTWISE}, T, folder)
        self.xp = np

    def _owns(self, a):
        return isinstance(a, np.ndarray) and a.dtype == self.dt

    def _rule_kernel(self, rule):
        spec = rule.kernel_spec()
        return None if spec is None else self._built(rule.name, spec)

    def _multi_kernel(self, rule):
        return self._built(f"multi_{rule.name}", _update.multi_spec(rule.kernel_spec()))

    def _built(self, name, spec):
        if (name, spec) not in self.rules:
            sub = self.folder / f"{name}{len(self.rules)}"
            sub.mkdir()
            self.rules[(name, spec)] = HostKernels({name: spec}, self.T, sub)(name)
        return self.rules[(name, spec)]
