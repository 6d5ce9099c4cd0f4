"""Fused CUDA update rules: one kernel launch per parameter per step, or
one for every parameter (``fused_all``, the Solver's update).

Written as array expressions, Adam is about 14 elementwise operations per
parameter (each a kernel launch on CuPy); here every rule is one
ElementwiseKernel that reads w, dw and the state once and writes the new
w and state. The expressions follow the NumPy path operation by operation,
with the Python-side scalars cast to the array's type first (as NumPy does
with a Python float) and no fused multiply-add contraction, so the GPU
computes the same numbers the host does.

``XPNN_NO_FUSED_KERNELS=1`` turns them off (the array-API path runs), to
count launches with and without them or to rule them out when debugging.

Each body is plain C; ``tests/test_cuda_update_rules_on_host.py`` compiles
the same strings (and the all-parameter forms around them) for the host and
compares them with the NumPy path.
"""
from __future__ import annotations

from .. import backend
from ..layers._cuda import fused_enabled

def _adam_spec(decoupled):
    """Adam, or AdamW (the weights shrink by ``decay`` = 1 - lr * weight_decay
    first), as one kernel."""
    return ("T w, T dw, T m, T v, float64 lr, " + ("float64 decay, " if decoupled else "") +
            "float64 b1, float64 one_minus_b1, float64 b2, float64 one_minus_b2, "
            "float64 bc1, float64 bc2, float64 eps",
            "T w_out, T m_out, T v_out",
            "T mn = (T)b1 * m + (T)one_minus_b1 * dw;\n"
            "T vn = (T)b2 * v + (T)one_minus_b2 * (dw * dw);\n"
            "m_out = mn;\n"
            "v_out = vn;\n"
            "T mhat = mn / (T)bc1;\n"
            "T vhat = vn / (T)bc2;\n"
            "w_out = " + ("w * (T)decay" if decoupled else "w") +
            " - (T)lr * mhat / (sqrt(vhat) + (T)eps);")


# name: (inputs, outputs, body); scalars arrive as float64
SPECS = {
    "sgd": ("T w, T dw, float64 lr", "T w_out",
            "w_out = w - (T)lr * dw;"),
    "sgd_momentum": ("T w, T dw, T v, float64 lr, float64 mu", "T w_out, T v_out",
                     "T vn = (T)mu * v - (T)lr * dw;\n"
                     "v_out = vn;\n"
                     "w_out = w + vn;"),
    "sgd_nesterov_momentum": ("T w, T dw, T v, float64 lr, float64 mu, float64 one_plus_mu",
                              "T w_out, T v_out",
                              "T vn = (T)mu * v - (T)lr * dw;\n"
                              "v_out = vn;\n"
                              "w_out = w - (T)mu * v + (T)one_plus_mu * vn;"),
    "rmsprop": ("T w, T dw, T cache, float64 lr, float64 decay, float64 one_minus_decay, "
                "float64 eps", "T w_out, T cache_out",
                "T c = (T)decay * cache + (T)one_minus_decay * (dw * dw);\n"
                "cache_out = c;\n"
                "w_out = w - (T)lr * dw / (sqrt(c) + (T)eps);"),
    "adagrad": ("T w, T dw, T cache, float64 lr, float64 eps", "T w_out, T cache_out",
                "T c = cache + dw * dw;\n"
                "cache_out = c;\n"
                "w_out = w - (T)lr * dw / (sqrt(c) + (T)eps);"),
    "adam": _adam_spec(decoupled=False),
    "adamw": _adam_spec(decoupled=True),
}

_kernels: dict = {}


def fused(name, *arrays):
    """The fused kernel for rule ``name`` when every array is a CuPy array
    of one floating dtype, else None (the array-API path is used)."""
    if not fused_enabled(*arrays):
        return None
    if name not in _kernels:
        cp = backend.cupy_module()
        ins, outs, body = SPECS[name]
        _kernels[name] = cp.ElementwiseKernel(ins, outs, body, f"xpnn_{name}",
                                              options=("--fmad=false",))
    return _kernels[name]


def _multi_spec(name):
    """Rule ``name`` over many tensors in one launch: element ``i`` of the
    concatenated index range belongs to tensor ``lo`` (offs holds each
    tensor's first index, then the total), whose arrays are read through a
    table of device pointers (``ptrs``: the arrays' addresses, one row of
    ``nt`` per array argument); the outputs are flat. The rule's own body
    does the arithmetic, so each tensor gets the numbers it gets alone."""
    ins, outs, body = SPECS[name]
    params = [item.split() for item in ins.split(",")]
    arrays = [nm for typ, nm in params if typ == "T"]
    scalars = ", ".join(f"{typ} {nm}" for typ, nm in params if typ != "T")
    find = ("long long lo = 0, hi = nt;\n"
            "while (hi - lo > 1) {\n"
            "  long long mid = (lo + hi) / 2;\n"
            "  if ((long long)i < offs[mid]) hi = mid; else lo = mid;\n"
            "}\n"
            "const long long j = (long long)i - offs[lo];\n")
    reads = "".join(f"const T {nm} = reinterpret_cast<const T*>(ptrs[{a} * nt + lo])[j];\n"
                    for a, nm in enumerate(arrays))
    return "raw int64 ptrs, raw int64 offs, int64 nt, " + scalars, outs, find + reads + body


#: multi_<rule>: the rule over every parameter at once
MULTI_SPECS = {f"multi_{name}": _multi_spec(name) for name in SPECS}


def fused_all_enabled(*arrays) -> bool:
    """Whether :func:`fused_all` applies: the fused kernels do, and every
    array is C-contiguous (read through its address)."""
    return fused_enabled(*arrays) and all(a.flags.c_contiguous for a in arrays)


def _address(a):
    return a.data.ptr if backend.backend_of(a) == "cupy" else a.ctypes.data


def fused_all(name, ws, dws, states, scalars, kernel=None, xp=None):
    """Rule ``name`` on every tensor with one launch: ``ws``, ``dws`` and
    each list in ``states`` (one per state array, in the kernel's order)
    hold one array per tensor; returns the new weights and the new states,
    each a list of views of one flat buffer. ``kernel`` and ``xp`` stand in
    for the CuPy kernel and module (the host tests)."""
    import numpy as np
    if kernel is None:
        cp = backend.cupy_module()
        key = f"multi_{name}"
        if key not in _kernels:
            ins, outs, body = MULTI_SPECS[key]
            _kernels[key] = cp.ElementwiseKernel(ins, outs, body, f"xpnn_{key}",
                                                 options=("--fmad=false",))
        kernel, xp = _kernels[key], cp
    nt = len(ws)
    offs = np.zeros(nt + 1, dtype=np.int64)
    np.cumsum([int(w.size) for w in ws], out=offs[1:])
    groups = [ws, dws, *states]
    ptrs = np.array([_address(a) for g in groups for a in g], dtype=np.int64)
    flat = [xp.empty(int(offs[-1]), dtype=ws[0].dtype) for _ in range(1 + len(states))]
    if offs[-1]:
        # the tables go with the launch; the arrays they point to are alive
        # in ``groups`` until it is queued, and freed memory is reused only
        # in stream order after it
        kernel(xp.asarray(ptrs), xp.asarray(offs), nt, *scalars, *flat)
    return [[f[offs[t]:offs[t + 1]].reshape(ws[t].shape) for t in range(nt)] for f in flat]
