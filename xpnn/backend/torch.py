"""The PyTorch backend: arrays are torch tensors on one device (CUDA, then
Apple's MPS, then the CPU: the best one present, or the one named by
``XPNN_TORCH_DEVICE`` or ``set_backend("torch", device=...)``), the
portable array-API code through array-api-compat's torch namespace, and
torch's own convolution, pooling and batch norm as this backend's kernels.

PyTorch is imported only when this backend is chosen, and it stays an
optional dependency: xpnn imports and trains without it. Tensors here never
carry autograd history: xpnn's layers compute their own gradients.

MPS has no float64: a float64 array refused there says what to do (train in
float32; run gradient checks on the CPU). On CUDA, float32 convolutions run
in float32 (torch's default is TF32, which ``XPNN_TORCH_TF32=1`` keeps).
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from ._base import Backend, Kernels, KernelState, transfers

__all__ = ["TorchBackend", "TorchKernels", "BACKEND", "torch_module", "DEVICES"]

#: the device kinds a user may name, best first (the order a choice is made in)
DEVICES = ("cuda", "mps", "cpu")

_loaded: dict = {}


def torch_module():
    """The torch module; RuntimeError saying how to install it when it is
    missing."""
    if "torch" not in _loaded:
        try:
            _loaded["torch"] = importlib.import_module("torch")
        except ImportError as exc:
            raise RuntimeError(
                f"the 'torch' backend needs PyTorch, which is not installed ({exc}); install "
                "it with: pip install torch (see pytorch.org for a CUDA build), or from "
                "xpnn's own folder: pip install -e '.[torch]'") from None
    return _loaded["torch"]


def _device_available(torch, kind: str) -> bool:
    if kind == "cuda":
        return bool(torch.cuda.is_available())
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    return kind == "cpu"


def choose_device(torch, name=None):
    """The torch device to use: ``name`` (or XPNN_TORCH_DEVICE) when given
    and present, else the best present of CUDA, MPS and the CPU."""
    name = name if name is not None else (os.environ.get("XPNN_TORCH_DEVICE") or None)
    if name is None:
        for kind in DEVICES:
            if _device_available(torch, kind):
                return torch.device(kind)
    if not isinstance(name, str) or name.split(":", 1)[0].strip().lower() not in DEVICES:
        raise ValueError(
            f"unknown torch device {name!r}; expected one of {', '.join(DEVICES)} (or "
            "cuda:N), given by XPNN_TORCH_DEVICE or set_backend('torch', device=...)")
    name = name.strip().lower()
    kind = name.split(":", 1)[0]
    if not _device_available(torch, kind):
        present = [k for k in DEVICES if _device_available(torch, k)]
        raise RuntimeError(
            f"the 'torch' backend was asked for device {name!r}, which this PyTorch "
            f"({torch.__version__}) cannot use here; present: {', '.join(present)}. Name "
            "one of those, or none (XPNN_TORCH_DEVICE unset, no device=) for the best one "
            "present")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"torch device {name!r}: {exc}") from None


class TorchConv(KernelState):
    """What the forward keeps for torch's convolution backward: nothing
    beyond the layer's own inputs."""
    __slots__ = ()


_TORCH_CONV = TorchConv()


class TorchKernels(Kernels):
    """torch's own convolution, max pooling and training-mode batch norm,
    for tensors of one floating dtype; everything else runs the portable
    array-API code on tensors."""

    def _serves(self, *arrays) -> bool:
        if not all(type(a).__module__.split(".", 1)[0] == "torch" for a in arrays):
            return False
        dt = {a.dtype for a in arrays}
        return len(dt) == 1 and arrays[0].is_floating_point()

    # ---------------------------------------------------- convolution
    def conv_forward(self, x, w, b, stride, pad, Ho, Wo):
        # torch refuses a convolution with no filters or channels
        if not self._serves(x, w, b) or 0 in w.shape:
            return None
        F = torch_module().nn.functional
        return F.conv2d(x, w, b, stride=stride, padding=pad), _TORCH_CONV

    def conv_backward(self, dout, x, w, saved, stride, pad, Ho, Wo, need_dx):
        if not isinstance(saved, TorchConv) or not self._serves(dout, x, w):
            return None
        torch = torch_module()
        dx, dw, db = torch.ops.aten.convolution_backward(
            dout, x, w, [w.shape[0]], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1,
            [bool(need_dx), True, True])
        return (dx if need_dx else None), dw, db

    # ---------------------------------------------------- pooling
    def max_pool_forward(self, x, ph, pw, stride, Ho, Wo):
        if not self._serves(x) or x.ndim != 4:
            return None
        F = torch_module().nn.functional
        # flat in-plane indices of each window's first maximum
        return F.max_pool2d(x, (ph, pw), stride=stride, return_indices=True)

    def max_pool_backward(self, dout, idx, H, W, ph, pw, stride):
        if not self._serves(dout):
            return None
        N, C = dout.shape[0], dout.shape[1]
        torch = torch_module()
        dx = torch.zeros((N, C, H * W), dtype=dout.dtype, device=dout.device)
        # overlapping windows that share a maximum add their gradients
        dx.scatter_add_(2, idx.reshape(N, C, -1), dout.reshape(N, C, -1))
        return dx.reshape(N, C, H, W)

    # ---------------------------------------------------- batch norm
    def bn_train_forward(self, x, gamma, beta, running_mean, running_var, eps, momentum):
        if not self._serves(x, gamma, beta, running_mean, running_var) or x.ndim < 2:
            return None
        torch = torch_module()
        out, mean, inv_std = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0,
                                                     eps)
        dims = [0] + list(range(2, x.ndim))
        var = torch.var(x, dim=dims, correction=0)
        return (out, mean, var, inv_std, momentum * running_mean + (1.0 - momentum) * mean,
                momentum * running_var + (1.0 - momentum) * var)

    def bn_train_backward(self, dout, x, mean, gamma, inv_std):
        if not self._serves(dout, x, mean, gamma, inv_std):
            return None
        torch = torch_module()
        dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
            dout, x, gamma, None, None, mean, inv_std, True, 0.0, [True, True, True])
        return dx, dgamma, dbeta


class TorchBackend(Backend):
    """Tensors on one torch device. Work on a GPU is queued, as on CuPy:
    the Solver reads losses back in batches and checks labels once."""

    name = "torch"
    array_module = "torch"
    kernels = TorchKernels()

    def __init__(self):  # pragma: no mutate block (runs at import)
        self._device = None

    def load(self, device=None) -> None:
        """Import torch and choose the device: ``device`` when given, else
        the one chosen before, else XPNN_TORCH_DEVICE or the best present."""
        torch = torch_module()
        if device is not None or self._device is None:
            self._device = choose_device(torch, device)
            if self._device.type == "cuda" and os.environ.get("XPNN_TORCH_TF32") != "1":
                # float32 convolutions in float32, as on every other backend
                # (torch's default rounds their inputs to TF32's 10 bits)
                torch.backends.cudnn.allow_tf32 = False

    @property
    def device(self):
        """The torch device arrays are put on (chosen at first use)."""
        if self._device is None:
            self.load()
        return self._device

    @property
    def readback_is_free(self):  # type: ignore[override]
        return self.device.type == "cpu"

    def namespace(self):
        torch_module()
        import array_api_compat.torch as xp
        return xp

    def resident(self, x):
        return x.device == self.device

    def to_host(self, x):
        transfers["to_host"] += 1
        x = x.detach()
        if x.device.type == "cpu":
            return x.numpy().copy()   # .numpy() shares the tensor's memory
        return x.cpu().numpy()

    def from_host(self, a):
        torch = torch_module()
        a = np.asarray(a)
        dev = self.device
        if dev.type == "mps" and a.dtype == np.float64:
            raise TypeError(
                "the torch backend's MPS device (an Apple GPU) has no float64; train in "
                "float32 (dtype=np.float32, or xpnn train --dtype float32) and run gradient "
                "checks in float64 on the CPU (XPNN_TORCH_DEVICE=cpu or XPNN_BACKEND=numpy)")
        if a.dtype.kind not in "biuf" or a.dtype in (np.uint16, np.uint32, np.uint64):
            raise TypeError(f"the torch backend cannot hold arrays of dtype {a.dtype}; "
                            "expected a bool, integer or floating array")
        # a private C-ordered copy in native byte order, which the tensor
        # then shares on the CPU (one copy) or is copied from to the device
        own = np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True)
        return torch.from_numpy(own).to(dev)

    def random_uniform(self, shape, seed=None):
        """NumPy's draws (so seeded runs repeat NumPy's exactly), moved to
        the device; float32 on MPS, which has no float64."""
        if seed is not None:
            np.random.seed(seed)
        u = np.asarray(np.random.rand(*shape))
        return self.from_host(u.astype(np.float32) if self.device.type == "mps" else u)

    def synchronize(self):
        torch = torch_module()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def free_memory(self):
        if self.device.type != "cuda":
            return None
        free, _total = torch_module().cuda.mem_get_info(self.device)
        return free


BACKEND = TorchBackend()
