"""The NumPy backend: arrays in host memory, the compiled (Cython) kernels
of ``_cython/im2col.pyx`` where they apply, the host convolution of
:mod:`.conv`, and the host tuning of :mod:`._host`.

The compiled kernels serve NumPy arrays of float32 or float64; anything
else (integer images, mixed dtypes, a build without the extension) runs the
portable array-API path. A missing extension is said once, as a warning.
"""
from . import _host

# before this module's NumPy import loads OpenBLAS, which reads its thread
# settings once (see _host); then the allocator
_host.tune_blas_wait()
_host.tune_malloc()

import os  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from .._base import Backend, Kernels, transfers  # noqa: E402,F401
from . import conv as _conv  # noqa: E402
from . import steps as _steps  # noqa: E402

try:
    from ._cython import im2col as _cy
except ImportError as _exc:  # pragma: no cover - exercised when not built
    _cy = None
    _IMPORT_ERROR = _exc
else:
    _IMPORT_ERROR = None

try:
    from ._cython import blaspool as _blaspool
except ImportError:  # pragma: no cover - exercised when not built
    _blaspool = None
# NumPy imported first: OpenBLAS's threads spin; its parallel work goes to
# xpnn's pool instead (see _host.pool_blas_threads)
_host.pool_blas_threads(*((_blaspool.address, _blaspool.start) if _blaspool is not None
                          else (None, None)))

_warned = False

__all__ = ["NumpyBackend", "NumpyKernels", "BACKEND", "has_compiled"]


def _why_not_built():
    """Why the extension is missing: the reason the install left (setup.py's
    BUILD_FAILED.txt: the compiler's error) or the import error."""
    note = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cython",
                        "BUILD_FAILED.txt")
    try:
        with open(note, encoding="utf-8") as fh:
            return f"the install could not build it: {fh.read().strip()[:300]}"
    except OSError:
        return str(_IMPORT_ERROR)


def has_compiled() -> bool:
    """True when the Cython extension was built and imported."""
    return _cy is not None


def _use_compiled(x) -> bool:
    """Whether the compiled kernels take ``x``: a float32/float64 NumPy
    array, the extension built (its absence is warned about once)."""
    global _warned
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        return False
    if _cy is None:
        if not _warned:
            _warned = True
            warnings.warn(
                f"xpnn's compiled im2col extension is missing ({_why_not_built()}); "
                "using the slower portable path. Build it with: pip install -e . "
                "(needs a C compiler, Cython and NumPy)", RuntimeWarning, stacklevel=4)
        return False
    return True


def compiled_kernels(*arrays):
    """The compiled extension when it serves all of ``arrays`` (NumPy arrays
    of one floating dtype, the extension built), else None."""
    if not all(_use_compiled(a) for a in arrays) or len({a.dtype for a in arrays}) != 1:
        return None
    return _cy


class NumpyKernels(Kernels):
    """The compiled host kernels; see the module docstring."""

    def im2col(self, xpad, kh, kw, stride, Ho, Wo):
        if not _use_compiled(xpad):
            return None
        return _cy.im2col(np.ascontiguousarray(xpad), kh, kw, stride, Ho, Wo)

    def col2im(self, dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo):
        if not _use_compiled(dcols):
            return None
        return _cy.col2im(np.ascontiguousarray(dcols), N, C, Hp, Wp, kh, kw, stride, Ho, Wo)

    def conv_forward(self, x, w, b, stride, pad, Ho, Wo):
        cy = compiled_kernels(x, w, b)
        if cy is None:
            return None
        if _conv._direct(cy, x.shape, w.shape, stride):  # few input channels: no columns
            out, xpad = _conv._direct_forward(cy, x, w, b, pad)
        else:  # columns a few samples at a time, never all at once
            out, xpad = _conv._host_forward(cy, x, w, b, stride, pad, Ho, Wo)
        return out, _conv.HostColumns(xpad)

    def conv_backward(self, dout, x, w, saved, stride, pad, Ho, Wo, need_dx):
        cy = compiled_kernels(x, w)
        if cy is None or not isinstance(saved, _conv.HostColumns):
            return None
        return _conv._host_backward(cy, dout, x, w, saved.xpad, stride, pad, Ho, Wo, need_dx)

    def rnn_step_forward(self, xa, t, hw):
        return _steps.rnn_step_forward(_cy, xa, t, hw)

    def rnn_step_backward(self, dh, t, dnext, out):
        return _steps.rnn_step_backward(_cy, dh, t, dnext, out)

    def lstm_step_forward(self, xa, t, hw, c_prev):
        return _steps.lstm_step_forward(_cy, xa, t, hw, c_prev)

    def lstm_step_backward(self, dh, t, dh_next, dc_next, c_prev, gates):
        return _steps.lstm_step_backward(_cy, dh, t, dh_next, dc_next, c_prev, gates)

    def step_product(self, w, transpose=False):
        return _steps.step_product(_cy, w, transpose,
                                   _blaspool.address() if _blaspool is not None else 0)

    def scatter_add_rows(self, idx, values, rows):
        if not isinstance(values, np.ndarray) or not isinstance(idx, np.ndarray):
            return None
        out = np.zeros((rows, values.shape[-1]), dtype=values.dtype)
        np.add.at(out, idx.reshape(-1), values.reshape(-1, values.shape[-1]))
        return out

    def max_pool_forward(self, x, ph, pw, stride, Ho, Wo):
        if not _use_compiled(x):
            return None
        return _cy.max_pool_forward(np.ascontiguousarray(x), ph, pw, stride, Ho, Wo)

    def max_pool_backward(self, dout, idx, H, W, ph, pw, stride):
        if not _use_compiled(dout):
            return None
        return _cy.max_pool_backward(np.ascontiguousarray(dout), idx, H, W)

    def channel_affine(self, u, a, b, v=None, k=None):
        # also None when the dtypes differ, so that the result's dtype follows
        # the usual promotion (float32 data, float64 gamma: float64) on every path
        given = [t for t in (u, a, b, v, k) if t is not None]
        if not _use_compiled(u) or not all(isinstance(t, np.ndarray) and t.dtype == u.dtype
                                           for t in given):
            return None
        N, C = u.shape[0], u.shape[1]
        c = np.ascontiguousarray
        u3 = c(u).reshape(N, C, -1)
        v3 = None if v is None else c(v).reshape(N, C, -1)
        kk = None if k is None else c(k)
        return _cy.channel_affine(u3, c(a), c(b), v3, kk).reshape(u.shape)

    def channel_dot(self, a, b):
        # one pass and no (N, C, L) temporary
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return None
        return np.einsum("nc,nc->c" if a.ndim == 2 else "ncl,ncl->c", a, b)


class NumpyBackend(Backend):
    """Arrays in host memory: moving them is free, and so is reading a
    value back (losses are checked before each update)."""

    name = "numpy"
    array_module = "numpy"
    readback_is_free = True
    kernels = NumpyKernels()

    def namespace(self):
        import array_api_compat.numpy as xp
        return xp

    def owns(self, x):
        return isinstance(x, (np.ndarray, np.generic))

    def resident(self, x):
        return isinstance(x, np.ndarray)   # a NumPy scalar becomes a 0-d array

    def to_host(self, x):
        return np.asarray(x) if isinstance(x, np.generic) else x

    def from_host(self, a):
        return a

    def take_rows(self, X, idx):
        return X[idx]

    def read_floats(self, values):
        return [float(v) for v in values]

    def label_range(self, y):
        return int(y.min()), int(y.max())


BACKEND = NumpyBackend()
