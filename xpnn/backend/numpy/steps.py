"""A recurrent step on the host: its product ``h @ W`` (forward) or
``da @ W.T`` (backward) for the few rows of every time step of a sequence,
and its elementwise part (the gates) in one compiled pass
(``_cython/step_gates.h``, float32).

NumPy's OpenBLAS runs these shapes (25 rows against a 512 x 2048 weight, as
in the captioning notebooks) far below its large-product speed: it packs W
again on every call and splits the few rows poorly over its threads
(float32, two cores: 0.31 ms forward, 0.45-0.51 ms backward, 100-170
GFLOP/s). Here W is packed once per sequence (``_cython/step_gemm.h``) and
each call runs the compiled kernel over the packed panels, split over the
host's threads on xpnn's C thread pool (``_cython/blas_pool.h``). Used on
CPUs with AVX2/FMA or AVX-512 (the baseline version is slower than OpenBLAS
and only serves tests).
"""
from __future__ import annotations

import numpy as np

from ._host import host_threads

#: below this many multiply-adds a product runs on one thread
_ONE_THREAD_MACS = 1 << 18


class StepProduct:
    """``h -> h @ w`` (``h @ w.T`` when ``transpose``) for every step of one
    sequence, w packed once. Arrays it does not serve (another dtype, not
    2-D, the wrong width) get NumPy's matmul, so the result is always the
    product (or NumPy's error)."""

    def __init__(self, cy, w, transpose: bool, level: int, pool: int):
        self.cy, self.level, self.transpose, self.pool = cy, level, bool(transpose), pool
        self.w = w = np.ascontiguousarray(w)
        self.dtype = w.dtype
        self.K, self.N = (w.shape[1], w.shape[0]) if transpose else w.shape
        nr = cy.step_panel_width(w.dtype == np.float64, level)
        self.bp = np.empty(-(-self.N // nr) * self.K * nr, dtype=w.dtype)
        self.threads = host_threads() if pool else 1
        cy.step_pack(w, self.transpose, self.bp, level, self._threads(self.K * self.N), pool)

    def _threads(self, macs):
        return 1 if macs < _ONE_THREAD_MACS else self.threads

    def __call__(self, h):
        if not isinstance(h, np.ndarray) or h.dtype != self.dtype or h.ndim != 2 \
                or h.shape[1] != self.K:
            return h @ (self.w.T if self.transpose else self.w)
        h = np.ascontiguousarray(h)
        c = np.empty((h.shape[0], self.N), dtype=self.dtype)
        self.cy.step_product(h, self.bp, c, self.level,
                             self._threads(h.shape[0] * self.K * self.N), self.pool)
        return c


def _f32_rows(*arrays) -> bool:
    """Float32 NumPy matrices whose rows have unit stride: what the compiled
    gate passes take."""
    return all(isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 2
               and (a.shape[1] <= 1 or a.strides[1] == 4) for a in arrays)


def lstm_step_forward(cy, xa, t, hw, c_prev):
    """(h, c_next, (i, f, o, g, tanh(c_next))) of an LSTM step in one
    compiled pass, or None (float32 only: float64 keeps NumPy's path)."""
    if cy is None or not isinstance(xa, np.ndarray) or xa.ndim != 3 \
            or not _f32_rows(xa[:, t, :], hw, c_prev):
        return None
    h, c, i, f, o, g, tc = cy.lstm_gates_forward(xa[:, t, :], hw, c_prev)
    return h, c, (i, f, o, g, tc)


def lstm_step_backward(cy, dh, t, dh_next, dc_next, c_prev, gates):
    """(da, dc_prev) of an LSTM step in one compiled pass, or None."""
    if cy is None or not isinstance(dh, np.ndarray) or dh.ndim != 3 \
            or not _f32_rows(dh[:, t, :], dh_next, dc_next, c_prev, *gates) \
            or len({a.strides[0] for a in gates}) != 1:
        return None
    return cy.lstm_gates_backward(dh[:, t, :], dh_next, dc_next, c_prev, *gates)


def rnn_step_forward(cy, xa, t, hw):
    """tanh(xa[:, t] + hw) in one compiled pass, or None."""
    if cy is None or not isinstance(xa, np.ndarray) or xa.ndim != 3 \
            or not _f32_rows(xa[:, t, :], hw):
        return None
    return cy.rnn_gates_forward(xa[:, t, :], hw)


def rnn_step_backward(cy, dh, t, dnext, out):
    """(dh[:, t] + dnext) * (1 - out[:, t]**2) in one compiled pass, or None."""
    if cy is None or not isinstance(dh, np.ndarray) or not isinstance(out, np.ndarray) \
            or dh.ndim != 3 or out.ndim != 3 \
            or not _f32_rows(dh[:, t, :], dnext, out[:, t, :]):
        return None
    return cy.rnn_gates_backward(dh[:, t, :], dnext, out[:, t, :])


def step_product(cy, w, transpose: bool = False, pool: int = 0):
    """A :class:`StepProduct` for ``w``, or None where the compiled kernel
    does not serve it (no extension, a CPU without AVX2/FMA, not a float32 or
    float64 NumPy matrix). ``pool``: the address of the C thread pool's run
    function (0: one thread)."""
    if cy is None or cy.STEP_LEVEL < 3 or not isinstance(w, np.ndarray) or w.ndim != 2 \
            or w.dtype not in (np.float32, np.float64):
        return None
    return StepProduct(cy, w, transpose, cy.STEP_LEVEL, pool)
