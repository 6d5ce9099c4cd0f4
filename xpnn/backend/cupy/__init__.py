"""The CuPy backend: arrays on an NVIDIA GPU, xpnn's CUDA kernels
(:mod:`._cuda`: im2col/col2im, pooling, batch norm, softmax loss, ReLU),
convolutions through cuDNN on request (:mod:`._cudnn`) and the update rules
as one launch (:mod:`._update`).

CuPy is imported only when this backend is chosen (``set_backend('cupy')``
or ``XPNN_BACKEND=cupy``), and then proved to work (:mod:`._load`).

The *fused* kernels (everything but im2col/col2im and plain max pooling,
which always run as CUDA kernels here) serve CuPy arrays of one floating
dtype; ``XPNN_NO_FUSED_KERNELS=1`` turns them off, so that the portable
array-API path runs (to count launches with and without them, or to rule
them out when debugging).
"""
from __future__ import annotations

import os

import numpy as np

from .._base import Backend, Kernels, transfers
from . import _cuda, _cudnn, _update
from ._load import cupy_module, probe_cuda_libraries  # noqa: F401

__all__ = ["CupyBackend", "CupyKernels", "BACKEND", "cupy_module", "probe_cuda_libraries"]


class CupyKernels(Kernels):
    """The CUDA kernels. ``kernel`` and ``xp`` stand in for the compiled CUDA
    kernels and CuPy in the host tests (``tests/cuda_host.py``), which run
    these very methods over NumPy arrays with the kernel bodies compiled for
    the host; by default they are the real ones."""

    kernel = None   # name -> elementwise kernel (None: the CUDA build)
    xp = None       # the array module (None: CuPy)

    def _owns(self, a) -> bool:
        return type(a).__module__.split(".", 1)[0] == "cupy"

    def fuses(self, *arrays):
        if os.environ.get("XPNN_NO_FUSED_KERNELS") == "1":
            return False
        if not all(self._owns(a) for a in arrays):
            return False
        return len({a.dtype for a in arrays}) == 1 and arrays[0].dtype.kind == "f"

    def update_all_applies(self, *arrays):
        # the one launch reads every array through its address
        return self.fuses(*arrays) and all(a.flags.c_contiguous for a in arrays)

    def _float(self, *arrays):
        """The pooling kernels' types, on top of :meth:`fuses`."""
        return self.fuses(*arrays) and str(arrays[0].dtype) in ("float32", "float64")

    def _kw(self):
        return {"kernel": self.kernel, "xp": self.xp}

    # ---------------------------------------------------- convolution
    def im2col(self, xpad, kh, kw, stride, Ho, Wo):
        return _cuda.columns(xpad, kh, kw, stride, 0, Ho, Wo, **self._kw())

    def col2im(self, dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo):
        return _cuda.conv_input_grad(dcols, N, C, Hp, Wp, kh, kw, stride, 0, Ho, Wo,
                                     **self._kw())

    def conv_forward(self, x, w, b, stride, pad, Ho, Wo):
        if not self.fuses(x, w, b):
            return None
        if self.kernel is None and _cudnn.available():  # XPNN_CUDNN=1, installed, checked
            out = _cudnn.forward(x, w, stride, pad, Ho, Wo)
            if out is not None:  # else no engine for this shape
                out += b.reshape(1, -1, 1, 1)
                return out, _cudnn.CudnnConv()
        # 3 launches, no padded copy, N, C, H, W out; the columns are kept
        return _cuda.conv_forward(x, w, b, stride, pad, Ho, Wo, **self._kw())

    def conv_backward(self, dout, x, w, saved, stride, pad, Ho, Wo, need_dx):
        if not isinstance(saved, _cudnn.CudnnConv):
            return None  # the columns: the portable backward uses them
        dw = _cudnn.weight_grad(dout, x, w.shape, stride, pad)
        dx = _cudnn.input_grad(dout, w, x.shape, stride, pad) if need_dx else None
        if dw is None or (need_dx and dx is None):
            return None  # a pass cuDNN has no engine for: columns are rebuilt
        return dx, dw, _cuda.channel_sum(dout, **self._kw())

    def conv_input_grad(self, dcols, N, C, H, W, kh, kw, stride, pad, Ho, Wo):
        if not self.fuses(dcols):
            return None
        return _cuda.conv_input_grad(dcols, N, C, H, W, kh, kw, stride, pad, Ho, Wo,
                                     **self._kw())

    # ---------------------------------------------------- pooling
    def max_pool_forward(self, x, ph, pw, stride, Ho, Wo):
        return _cuda.max_pool_forward(x, ph, pw, stride, Ho, Wo, **self._kw())

    def max_pool_backward(self, dout, idx, H, W, ph, pw, stride):
        return _cuda.max_pool_backward(dout, idx, H, W, ph, pw, stride, **self._kw())

    def max_pool_relu_forward(self, x, ph, pw, stride, Ho, Wo):
        if not self._float(x):
            return None
        return _cuda.max_pool_forward(x, ph, pw, stride, Ho, Wo, relu=True, **self._kw())

    def max_pool_relu_backward(self, dout, idx, out, H, W, ph, pw, stride):
        if not self._float(dout, out):
            return None
        return _cuda.max_pool_backward(dout, idx, H, W, ph, pw, stride, relu_out=out,
                                       **self._kw())

    # ---------------------------------------------------- elementwise, norms, loss
    def relu_backward(self, dout, x):
        if not self.fuses(dout, x):
            return None
        return _cuda.relu_backward(dout, x, **self._kw())

    def bn_train_forward(self, x, gamma, beta, running_mean, running_var, eps, momentum):
        if not self.fuses(x, gamma, beta, running_mean, running_var):
            return None
        return _cuda.bn_train_forward(x, gamma, beta, running_mean, running_var, eps, momentum,
                                      **self._kw())

    def bn_train_backward(self, dout, x, mean, gamma, inv_std):
        if not self.fuses(dout, x, mean, gamma, inv_std):
            return None
        return _cuda.bn_train_backward(dout, x, mean, gamma, inv_std, **self._kw())

    def softmax_loss(self, x, y):
        if not self.fuses(x) or not x.shape[1]:  # 4 launches
            return None
        return _cuda.softmax_loss(x, y, **self._kw())

    def scatter_add_rows(self, idx, values, rows):
        # the embedding's weight gradient without a (rows, N*T) one-hot matrix
        if not self.fuses(values):
            return None
        xp = self.xp or _cuda.cupy_module()
        out = xp.zeros((rows, values.shape[-1]), dtype=values.dtype)
        flat_idx, flat_values = idx.reshape(-1), values.reshape(-1, values.shape[-1])
        if self.xp is None:
            import cupyx
            cupyx.scatter_add(out, flat_idx, flat_values)
        else:   # the host harness (tests/cuda_host.py): NumPy's own scatter-add
            xp.add.at(out, flat_idx, flat_values)
        return out

    # ---------------------------------------------------- recurrent steps
    def _steps(self, *arrays):
        return self._float(*arrays) and all(a.flags.c_contiguous for a in arrays)

    def rnn_step_forward(self, xa, t, hw):
        if not self._steps(xa, hw):
            return None
        return _cuda.rnn_step_forward(xa, t, hw, **self._kw())

    def rnn_step_backward(self, dh, t, dnext, out):
        if not self._steps(dh, dnext, out):
            return None
        return _cuda.rnn_step_backward(dh, t, dnext, out, **self._kw())

    def lstm_step_forward(self, xa, t, hw, c_prev):
        if not self._steps(xa, hw, c_prev):
            return None
        return _cuda.lstm_step_forward(xa, t, hw, c_prev, **self._kw())

    def lstm_step_backward(self, dh, t, dh_next, dc_next, c_prev, gates):
        if not self._steps(dh, dh_next, dc_next, c_prev, *gates):
            return None
        return _cuda.lstm_step_backward(dh, t, dh_next, dc_next, c_prev, gates, **self._kw())

    # ---------------------------------------------------- update rules
    def _rule_kernel(self, rule):
        """The rule's kernel for one parameter (None: it has no body)."""
        spec = rule.kernel_spec()
        return None if spec is None else _update.compiled(rule.name, spec)

    def _multi_kernel(self, rule):
        return _update.compiled(f"multi_{rule.name}", _update.multi_spec(rule.kernel_spec()))

    def update(self, rule, w, dw, state, config):
        if not self.fuses(w, dw, *state):
            return None
        k = self._rule_kernel(rule)
        if k is None:
            return None
        out = k(w, dw, *state, *rule.scalars(config).values())
        return out if isinstance(out, tuple) else (out,)

    def update_all(self, rule, ws, dws, states, config):
        new_ws, *new_states = _update.fused_all(
            self._multi_kernel(rule), self.xp or cupy_module(), ws, dws, states,
            tuple(rule.scalars(config).values()))
        return new_ws, new_states


class CupyBackend(Backend):
    """Arrays in GPU memory. Work is queued: reading a value back waits for
    it, so the Solver reads losses back in batches and checks labels once;
    the whole data set lives on the GPU when it takes at most half of the
    free memory."""

    name = "cupy"
    array_module = "cupy"
    kernels = CupyKernels()

    def __init__(self):  # pragma: no mutate block (runs at import)
        self._gen = None

    def load(self, device=None):
        super().load(device)
        cupy_module()

    def namespace(self):
        cupy_module()
        import array_api_compat.cupy as xp
        return xp

    def to_host(self, x):
        transfers["to_host"] += 1
        return x.get()

    def from_host(self, a):
        return cupy_module().asarray(a)

    def random_uniform(self, shape, seed=None):
        """Drawn on the GPU (masks never cross the bus) by a counter-based
        generator reseeded for every draw with a number drawn from NumPy's
        global state: a draw advances NumPy's stream as it does on the host
        (by one number instead of a mask's worth), so ``np.random.seed``
        repeats GPU runs too, and NumPy's state, which checkpoints keep, is
        all of xpnn's random state."""
        gen = self._generator()
        gen.seed(device_seed(seed))
        return gen.random_sample(shape)

    def _generator(self):
        if self._gen is None:
            cupy = cupy_module()
            try:  # Philox: reseeding is cheap (no per-thread state to initialise)
                from cupy.cuda import curand
                self._gen = cupy.random.RandomState(
                    0, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
            except (ImportError, AttributeError, TypeError):
                self._gen = cupy.random.RandomState(0)
        return self._gen

    def synchronize(self):
        cupy_module().cuda.get_current_stream().synchronize()

    def free_memory(self):
        free, _total = cupy_module().cuda.runtime.memGetInfo()
        return free


def device_seed(seed=None) -> int:
    """Seed for the next device draw, from NumPy's global state. ``seed``
    (the course's ``dropout_param['seed']``) reseeds that state first, as
    the host backends do, so the same seed gives the same draw."""
    if seed is not None:
        np.random.seed(seed)
    return int(np.random.randint(2 ** 62, dtype=np.int64))


BACKEND = CupyBackend()
