"""Update rules as CUDA kernels: one launch per parameter per step, or one
for every parameter (the Solver's update).

Written as array expressions, Adam is about 14 elementwise operations per
parameter (each a kernel launch on CuPy); here a rule is one
ElementwiseKernel that reads w, dw and the state once and writes the new
w and state. Its body is the rule's own (``UpdateRule.kernel`` in
:mod:`xpnn.optim`), written to follow the array path operation by
operation, with the Python-side scalars cast to the array's type first (as
NumPy does with a Python float) and no fused multiply-add contraction, so
the GPU computes the same numbers the host does. A rule without a body
runs its array path.

``tests/test_cuda_update_rules_on_host.py`` compiles the same bodies (and
the all-parameter form around them) for the host and compares them with
the array path.
"""
from __future__ import annotations

import numpy as np

from ._load import cupy_module

_kernels: dict = {}


def multi_spec(spec):
    """A rule's kernel ``spec`` (inputs, outputs, body) over many tensors in
    one launch: element ``i`` of the concatenated index range belongs to
    tensor ``lo`` (offs holds each tensor's first index, then the total),
    whose arrays are read through a table of device pointers (``ptrs``: the
    arrays' addresses, one row of ``nt`` per array argument); the outputs
    are flat. The rule's own body does the arithmetic, so each tensor gets
    the numbers it gets alone."""
    ins, outs, body = spec
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


def compiled(name, spec):
    """The CUDA kernel of ``spec``, compiled once (no fused multiply-add)."""
    key = (name, spec)
    if key not in _kernels:
        ins, outs, body = spec
        _kernels[key] = cupy_module().ElementwiseKernel(ins, outs, body, f"xpnn_{name}",
                                                        options=("--fmad=false",))
    return _kernels[key]


def _address(a):
    """Where an array's first element is (CuPy's device pointer; a NumPy
    array's, for the host tests)."""
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


def fused_all(kernel, xp, ws, dws, states, scalars):
    """A multi-tensor kernel (:func:`multi_spec`) on every tensor with one
    launch: ``ws``, ``dws`` and each list in ``states`` (one per state
    array, in the kernel's order) hold one array per tensor; returns the
    new weights and the new states, each a list of views of one flat
    buffer."""
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
