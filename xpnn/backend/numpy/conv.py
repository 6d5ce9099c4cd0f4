"""The NumPy backend's convolution: the column matrix built a few samples at
a time (never the whole batch's), and for stride-1 layers with few input
channels a compiled direct convolution that builds no columns at all, its
samples spread over the host's threads.

Both keep the padded input (in a :class:`HostColumns`) instead of the
columns; the backward pass rebuilds each chunk's columns from it.
"""
from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._base import KernelState
from ._host import host_threads


def _pad(x, pad):
    """x (N, C, H, W) zero-padded by ``pad`` on each side of H and W."""
    if pad == 0:
        return x
    N, C, H, W = x.shape
    out = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    out[:, :, pad:pad + H, pad:pad + W] = x
    return out


# The column matrix of a whole batch is large (30 MB for the course's
# ThreeLayerConvNet at batch 50): written to memory by im2col and read back
# by the matmul, twice per step. The host path builds the columns of a few
# samples at a time into one buffer that stays in cache, multiplies, and
# moves on; the backward pass rebuilds each chunk from the padded input
# instead of keeping the columns.
CHUNK_BYTES = 4 << 20
#: planes of at least this many outputs get one product per sample (as in the
#: portable path, xpnn.layers.conv)
_PER_SAMPLE_MIN_P = 256


class HostColumns(KernelState):
    """What a host convolution keeps for its backward: the padded input its
    columns are rebuilt from (the columns themselves are not kept)."""
    __slots__ = ("xpad",)

    def __init__(self, xpad):
        self.xpad = xpad


def _chunk(N, K, P, itemsize):
    """Samples per chunk: columns of about CHUNK_BYTES, at least one sample."""
    return max(1, min(N, CHUNK_BYTES // max(1, K * P * itemsize)))


def _column_chunks(cy, xpad, B, kh, kw, s, Ho, Wo):
    """(first sample, samples, their (K, samples*P) columns) for each chunk
    of ``B`` samples of the padded input, all built in one reused buffer."""
    N, C = xpad.shape[:2]
    K, P = C * kh * kw, Ho * Wo
    buf = np.empty(K * B * P, dtype=xpad.dtype)
    for n0 in range(0, N, B):
        nb = min(B, N - n0)
        yield n0, nb, cy.im2col(xpad[n0:n0 + nb], kh, kw, s, Ho, Wo,
                                out=buf[:K * nb * P].reshape(K, nb * P))


def _host_forward(cy, x, w, b, s, pad, Ho, Wo):
    N = x.shape[0]
    F, C, HH, WW = w.shape
    K, P = C * HH * WW, Ho * Wo
    dt = np.result_type(x, w)
    xpad = np.ascontiguousarray(_pad(x, pad), dtype=dt)
    w2 = np.ascontiguousarray(w, dtype=dt).reshape(F, K)
    bias = np.asarray(b, dtype=dt).reshape(F, 1)
    B = _chunk(N, K, P, dt.itemsize)
    out = np.empty((N, F, P), dtype=dt)
    res = None if P >= _PER_SAMPLE_MIN_P else np.empty(F * B * P, dtype=dt)
    for n0, nb, cols in _column_chunks(cy, xpad, B, HH, WW, s, Ho, Wo):
        o = out[n0:n0 + nb]
        if res is None:
            # large planes: one product per sample, written in N, F, P order
            np.matmul(w2, cols.reshape(K, nb, P).transpose(1, 0, 2), out=o)
            o += bias
        else:
            # small planes: one product for the chunk, moved to N, F, P
            # order while it is still in cache, with the bias
            r = np.matmul(w2, cols, out=res[:F * nb * P].reshape(F, nb * P))
            np.add(r.reshape(F, nb, P).transpose(1, 0, 2), bias, out=o)
    return out.reshape(N, F, Ho, Wo), xpad


def _host_backward(cy, dout, x, w, xpad, s, pad, Ho, Wo, need_dx):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    K, P = C * HH * WW, Ho * Wo
    dt = xpad.dtype
    dout3 = np.ascontiguousarray(dout).reshape(N, F, P)   # the layer's dtype (see the caller)
    w2 = np.ascontiguousarray(w).reshape(F, K)
    db = dout3.sum(axis=(0, 2))
    B = _chunk(N, K, P, dt.itemsize)
    if _direct(cy, x.shape, w.shape, s) and xpad.flags.c_contiguous:
        # the weight gradient straight from the padded input, whether or not
        # dx is wanted (so dw is the same either way); dx needs no columns
        dw = _direct_weight_grad(cy, dout3.reshape(N, F, Ho, Wo), xpad, w)
        if not need_dx:
            return None, dw, db
        chunks = ((n0, min(B, N - n0), None) for n0 in range(0, N, B))
    else:
        # the weight gradient as columns @ dout2.T, (K, F), then transposed:
        # the shape OpenBLAS runs fastest (2 threads, 32 filters of 3x7x7 on
        # 8192 pixels: 116 GFLOP/s against 73 for dout2 @ columns.T)
        dw = None
        dwT = np.zeros((K, F), dtype=dt)  # zeros: an empty batch has no chunk to fill it
        part = np.empty((K, F), dtype=dt)
        chunks = _column_chunks(cy, xpad, B, HH, WW, s, Ho, Wo)
    d2buf = np.empty(F * B * P, dtype=dt)
    dcbuf = np.empty(K * B * P, dtype=dt) if need_dx else None
    Hp, Wp = xpad.shape[2], xpad.shape[3]
    dxpad = np.empty((N, C, Hp, Wp), dtype=dt) if need_dx else None
    for n0, nb, cols in chunks:
        d2 = d2buf[:F * nb * P].reshape(F, nb * P)
        d2.reshape(F, nb, P)[...] = dout3[n0:n0 + nb].transpose(1, 0, 2)
        if cols is not None:
            if n0 == 0:
                np.matmul(cols, d2.T, out=dwT)
            else:
                dwT += np.matmul(cols, d2.T, out=part)
        if need_dx:
            dcols = np.matmul(w2.T, d2, out=dcbuf[:K * nb * P].reshape(K, nb * P))
            cy.col2im(dcols, nb, C, Hp, Wp, HH, WW, s, Ho, Wo, out=dxpad[n0:n0 + nb])
    dx = dxpad[:, :, pad:pad + H, pad:pad + W] if need_dx else None
    if dw is None:
        dw = np.ascontiguousarray(dwT.T).reshape(w.shape)
    return dx, dw, db


# ------------------------------------------- direct convolution on the host
# A layer with few input channels (a network's first: 3 channels) has a
# shallow column matrix (K = 147 rows for 7x7 filters) whose GEMM runs far
# below peak, after im2col has copied the input 49 times. The compiled
# direct kernels (_cython/direct_conv.h) read the padded input in place:
# ThreeLayerConvNet's 3 -> 32 7x7 layer at batch 50, float32, 2 threads,
# forward 7.4 -> 2.5 ms and backward without dx 6.8 -> 2.6 ms.
#: the direct kernels serve stride-1 layers of at most this many taps per filter
DIRECT_MAX_K = 160


def _direct(cy, x_shape, w_shape, s):
    """Whether the direct kernels serve this layer (empty batches, filters
    or channels keep the columns route, which handles them)."""
    N, F, (_, C, kh, kw) = x_shape[0], w_shape[0], w_shape
    return cy is not None and s == 1 and C * kh * kw <= DIRECT_MAX_K \
        and kw <= cy.DIRECT_MAX_KW and min(N, F, C) > 0


_pool = None          # (executor, its worker count), made on first use
_pool_lock = threading.Lock()


def _forget_pool():
    """A forked child has none of the parent's threads: it makes its own."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _each_sample(fn, N):
    """fn(n, n + 1) for every sample, on the host's threads (fn releases the
    GIL): each thread claims the next sample, so a thread slowed by a busy
    core simply does fewer. Results do not depend on which thread ran what."""
    global _pool
    T = min(host_threads(), N)
    if T <= 1:
        fn(0, N)
        return
    with _pool_lock:
        if _pool is None or _pool[1] < T - 1:
            _pool = (ThreadPoolExecutor(max_workers=T - 1, thread_name_prefix="xpnn-conv"),
                     T - 1)
        pool = _pool[0]
    claim = itertools.count()    # next() on it is atomic under the GIL

    def work():
        for n in claim:
            if n >= N:
                return
            fn(n, n + 1)

    helpers = [pool.submit(work) for _ in range(T - 1)]
    try:
        work()
    finally:
        for h in helpers:
            h.result()


def _direct_forward(cy, x, w, b, pad):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    dt = np.result_type(x, w)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    # the padded input in a buffer the kernel may read DIRECT_SLACK past
    flat = np.zeros(N * C * Hp * Wp + cy.DIRECT_SLACK, dtype=dt)
    xpad = flat[:N * C * Hp * Wp].reshape(N, C, Hp, Wp)
    xpad[:, :, pad:pad + H, pad:pad + W] = x
    Fp = -(-F // cy.DIRECT_FB) * cy.DIRECT_FB
    w2 = np.zeros((Fp, C * HH * WW), dtype=dt)
    w2[:F] = w.reshape(F, -1)
    bias = np.ascontiguousarray(b, dtype=dt)
    out = np.empty((N, F, Hp - HH + 1, Wp - WW + 1), dtype=dt)
    _each_sample(lambda n0, n1: cy.conv_direct_forward(flat, N, C, Hp, Wp, w2, bias, out,
                                                       HH, WW, n0, n1), N)
    return out, xpad


def _direct_weight_grad(cy, dout, xpad, w):
    N, C, Hp, Wp = xpad.shape
    F, _, HH, WW = w.shape
    d = np.ascontiguousarray(dout)
    flat = xpad.reshape(-1)
    part = np.empty((N, w.size), dtype=xpad.dtype)  # each sample's own gradient
    _each_sample(lambda n0, n1: cy.conv_direct_weight_grad(flat, N, C, Hp, Wp, d, part,
                                                           HH, WW, n0, n1), N)
    return part.sum(axis=0).reshape(w.shape)  # summed in sample order, whoever ran what
