"""Convolutions through cuDNN on the CuPy backend, on request
(``XPNN_CUDNN=1``), when NVIDIA's ``nvidia-cudnn-frontend`` package (cuDNN's
graph API for Python) imports and passes a check against xpnn's own
im2col + cuBLAS path; that path otherwise.

Off by default because it measured slower: on an H100 (cuDNN 9.19, CuPy 14,
2026-11-22) the challenge net's step at batch 256 ran at 0.53x PyTorch's
speed through cuDNN against 0.66x through im2col + cuBLAS in FP32 (0.51x and
0.52x in TF32); the heuristics' deterministic plans for these small 3x3
layers include FFT and filter-flipping kernels that cost more than the
column matrix does.

Each convolution geometry gets three small graphs (forward, data gradient,
weight gradient), built once and executed on CuPy's current stream with raw
device pointers. Precision follows CuPy's: plain FP32 unless ``CUPY_TF32=1``
(engines that use tensor cores on float32 data are deselected otherwise),
and engines marked non-deterministic are never used, so a run repeats
exactly. A graph cuDNN cannot build for some geometry is remembered and that
pass uses the im2col path.

By default each graph runs the plan cuDNN's heuristics rank first, the same
in every process. ``XPNN_CUDNN_BENCHMARK=1`` instead times every plan once
per geometry and keeps the fastest (as ``torch.backends.cudnn.benchmark``
does): faster where the heuristics choose badly, but which plan wins can
differ between processes, and plans round differently, so a resumed run is
no longer bit-for-bit the uninterrupted one.
"""
from __future__ import annotations

import os

import numpy as np

from .._base import KernelState
from ._load import cupy_module

_state: dict = {"ok": None, "why": "not checked yet", "handle": None, "cudnn": None}
_graphs: dict = {}


class CudnnConv(KernelState):
    """What a convolution keeps for its backward when cuDNN ran its forward
    (nothing: the backward reads x and w from the layer's cache)."""
    __slots__ = ()


def status() -> tuple[bool, str]:
    """(in use, why not / which version): checks on first call."""
    if not available() and os.environ.get("XPNN_CUDNN") != "1":
        return False, "off (XPNN_CUDNN=1 turns it on where nvidia-cudnn-frontend is installed)"
    return bool(_state["ok"]), _state["why"]


def available() -> bool:
    """Whether convolutions of CuPy arrays go through cuDNN."""
    if os.environ.get("XPNN_CUDNN") != "1":
        return False
    if _state["ok"] is None:
        try:
            _preload_library()
            import cudnn
            _state["cudnn"] = cudnn
            _state["handle"] = cudnn.create_handle()
            _state["ok"] = True  # for the check's own calls
            _self_check()
            _state["why"] = f"cuDNN {cudnn.backend_version()} through nvidia-cudnn-frontend"
        except Exception as exc:  # not installed, no library, or a wrong result
            _state["ok"], _state["why"] = False, f"{type(exc).__name__}: {exc}"
            _graphs.clear()
    return bool(_state["ok"])


def _preload_library():
    """Load cuDNN from a pip package (nvidia-cudnn-cu12/cu13, as PyTorch
    installs it) where the dynamic loader would not look, so the frontend's
    own lookup of libcudnn.so.9 finds it already loaded."""
    import ctypes
    import glob
    import sys
    for root in sys.path:
        for path in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libcudnn.so.9"))):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return
            except OSError:
                continue


def _strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def _tf32() -> bool:
    return os.environ.get("CUPY_TF32", "0") not in ("", "0")


def _graph(kind, xs, ws, ys, s, pad, dtype):
    """The built graph of one pass (kind 'fprop', 'dgrad' or 'wgrad') and its
    tensors, or None where cuDNN has no engine for it."""
    key = (kind, xs, ws, s, pad, np.dtype(dtype).char, _tf32())
    if key in _graphs:
        return _graphs[key]
    cudnn = _state["cudnn"]
    dt = cudnn.data_type.DOUBLE if np.dtype(dtype) == np.float64 else cudnn.data_type.FLOAT
    try:
        g = cudnn.pygraph(handle=_state["handle"], io_data_type=dt, intermediate_data_type=dt,
                          compute_data_type=dt)
        conv = {"padding": [pad, pad], "stride": [s, s], "dilation": [1, 1]}
        X = g.tensor(name="X", dim=list(xs), stride=_strides(xs), data_type=dt)
        W = g.tensor(name="W", dim=list(ws), stride=_strides(ws), data_type=dt)
        Y = g.tensor(name="DY", dim=list(ys), stride=_strides(ys), data_type=dt)
        if kind == "fprop":
            out = g.conv_fprop(image=X, weight=W, compute_data_type=dt, name="fprop", **conv)
            out.set_output(True).set_dim(list(ys)).set_stride(_strides(ys)).set_data_type(dt)
            names = {"x": X, "w": W, "out": out}
        elif kind == "dgrad":
            out = g.conv_dgrad(loss=Y, filter=W, compute_data_type=dt, name="dgrad", **conv)
            out.set_output(True).set_dim(list(xs)).set_stride(_strides(xs)).set_data_type(dt)
            names = {"dy": Y, "w": W, "out": out}
        else:
            out = g.conv_wgrad(image=X, loss=Y, compute_data_type=dt, name="wgrad", **conv)
            out.set_output(True).set_dim(list(ws)).set_stride(_strides(ws)).set_data_type(dt)
            names = {"x": X, "dy": Y, "out": out}
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        notes = [cudnn.numerical_note.NONDETERMINISTIC]
        if not _tf32():
            notes.append(cudnn.numerical_note.TENSOR_CORE)
        g.deselect_numeric_notes(notes)
        g.check_support()
        if os.environ.get("XPNN_CUDNN_BENCHMARK") == "1":
            entry = _fastest_plan(g, names, {"x": xs, "w": ws, "dy": ys}, dtype)
        else:
            g.build_plans()
            entry = (g, names, int(g.get_workspace_size()), None)
    except Exception:  # no engine for this geometry/precision: im2col serves it
        entry = None
    _graphs[key] = entry
    return entry


def _fastest_plan(g, names, shapes, dtype):
    """Build every plan of ``g``, time each on random data (median of 3
    after one warm-up) and return the entry of the fastest."""
    cp = cupy_module()
    out_shape = shapes["w"] if "x" in names and "dy" in names else \
        shapes["x"] if "dy" in names else shapes["dy"]
    data = {k: cp.asarray(np.random.RandomState(7).randn(*shapes[k]).astype(dtype))
            for k in names if k != "out"}
    data["out"] = cp.empty(out_shape, dtype=dtype)
    best = None
    for i in range(int(g.get_execution_plan_count())):
        try:
            g.build_plan_at_index(i)
            wsize = int(g.get_workspace_size_plan_at_index(i))
            times = []
            for rep in range(4):
                start, stop = cp.cuda.Event(), cp.cuda.Event()
                start.record()
                _run((g, names, wsize, i), data)
                stop.record()
                stop.synchronize()
                if rep:
                    times.append(cp.cuda.get_elapsed_time(start, stop))
        except Exception:  # a plan that does not build or run here
            continue
        t = sorted(times)[1]
        if best is None or t < best[0]:
            best = (t, (g, names, wsize, i))
    if best is None:
        raise RuntimeError("no cuDNN plan builds")
    return best[1]


def _run(entry, buffers):
    cp = cupy_module()
    cudnn = _state["cudnn"]
    g, names, wsize, index = entry
    work = cp.empty((max(wsize, 1),), dtype=cp.uint8)
    cudnn.set_stream(handle=_state["handle"], stream=cp.cuda.get_current_stream().ptr)
    pack = {names[k]: v.data.ptr for k, v in buffers.items()}
    if index is None:
        g.execute(pack, work.data.ptr, handle=_state["handle"])
    else:
        g.execute_plan_at_index(pack, work.data.ptr, index, handle=_state["handle"])


def _pass(kind, xs, ws, ys, s, pad, inputs, out_shape):
    """Run one pass's graph on ``inputs`` into a new array, or None where
    cuDNN has no engine for it."""
    cp = cupy_module()
    inputs = {k: cp.ascontiguousarray(v) for k, v in inputs.items()}
    dtype = next(iter(inputs.values())).dtype
    entry = _graph(kind, tuple(xs), tuple(ws), tuple(ys), s, pad, dtype)
    if entry is None:
        return None
    out = cp.empty(tuple(out_shape), dtype=dtype)
    _run(entry, {**inputs, "out": out})
    return out


def forward(x, w, s, pad, Ho, Wo):
    """conv(x, w) without bias, (N, F, Ho, Wo), or None."""
    ys = (x.shape[0], w.shape[0], Ho, Wo)
    return _pass("fprop", x.shape, w.shape, ys, s, pad, {"x": x, "w": w}, ys)


def input_grad(dout, w, xs, s, pad):
    """dx of shape ``xs``, or None."""
    return _pass("dgrad", xs, w.shape, dout.shape, s, pad, {"dy": dout, "w": w}, xs)


def weight_grad(dout, x, ws, s, pad):
    """dw of shape ``ws``, or None."""
    return _pass("wgrad", x.shape, ws, dout.shape, s, pad, {"x": x, "dy": dout}, ws)


def _self_check():
    """One small convolution each way against the im2col path, float64 and
    float32 (raises if cuDNN's results differ)."""
    from . import _cuda
    cp = cupy_module()
    r = np.random.RandomState(0)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-3 if _tf32() else 1e-4)):
        x = cp.asarray(r.randn(2, 3, 7, 6).astype(dtype))
        w = cp.asarray(r.randn(4, 3, 3, 3).astype(dtype))
        b = cp.zeros(4, dtype=dtype)
        s, pad, Ho, Wo = 2, 1, 4, 3
        ref, cols = _cuda.conv_forward(x, w, b, s, pad, Ho, Wo)
        dout = cp.asarray(r.randn(*ref.shape).astype(dtype))
        ref_dx, ref_dw = _cuda.im2col_backward(dout, x, w, cols, s, pad, Ho, Wo)
        got = (forward(x, w, s, pad, Ho, Wo), input_grad(dout, w, x.shape, s, pad),
               weight_grad(dout, x, w.shape, s, pad))
        for name, g, want in zip(("forward", "data gradient", "weight gradient"), got,
                                 (ref, ref_dx, ref_dw)):
            if g is None:
                continue  # no engine: that pass keeps the im2col path
            err = float(cp.abs(g - want).max() / (cp.abs(want).max() + 1e-30))
            if not err <= tol:
                raise RuntimeError(f"cuDNN's {np.dtype(dtype).name} {name} differs from "
                                   f"the im2col path by {err:.2e} (relative)")
