"""Fused CUDA update rules: one kernel launch per parameter per step.

Written as array expressions, Adam is about 14 elementwise operations per
parameter (each a kernel launch on CuPy); here every rule is one
ElementwiseKernel that reads w, dw and the state once and writes the new
w and state. The expressions follow the NumPy path operation by operation,
with the Python-side scalars cast to the array's type first (as NumPy does
with a Python float) and no fused multiply-add contraction, so the GPU
computes the same numbers the host does.

``XPNN_NO_FUSED_KERNELS=1`` turns them off (the array-API path runs), to
count launches with and without them or to rule them out when debugging.

Each body is plain C; ``tests/test_cuda_kernels_on_host.py`` compiles the
same strings for the host and compares them with the NumPy path.
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
