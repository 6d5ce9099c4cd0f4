"""Recurrent layers with the course's signatures (assignment 3): vanilla
RNN and LSTM steps and sequences, word embeddings, the temporal affine
layer and the masked temporal softmax loss.

Shapes: N sequences, T time steps, input size D, hidden size H, vocabulary
V. An RNN step is ``next_h = tanh(x @ Wx + prev_h @ Wh + b)``; an LSTM step
splits ``a = x @ Wx + prev_h @ Wh + b`` (N, 4H) into the input, forget and
output gates and the candidate, in that order (i, f, o, g):
``next_c = f * prev_c + i * g``, ``next_h = o * tanh(next_c)``. The
sequence versions start from h0 (and c = 0) and return every hidden state.
"""
from __future__ import annotations

from array_api_compat import device as _device

from .. import backend
from ._util import check_dout, check_ndim, check_real, is_number, shape_str, xp_of

__all__ = [
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "word_embedding_forward", "word_embedding_backward", "lstm_step_forward",
    "lstm_step_backward", "lstm_forward", "lstm_backward", "temporal_affine_forward",
    "temporal_affine_backward", "temporal_softmax_loss",
]


def _check_step(fn, xp, x, prev_h, Wx, Wh, b, gates):
    """The shapes and dtypes of one step's inputs; x may be (N, D) or (D,)
    (one input for every row, as a sampling loop's first word)."""
    check_real(fn, xp, x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    if x.ndim != 1:
        check_ndim(f"{fn}: x", x, 2, "(N, D) (or (D,), one input for every row)")
    check_ndim(f"{fn}: prev_h", prev_h, 2, "(N, H)")
    N, D = (prev_h.shape[0], x.shape[0]) if x.ndim == 1 else x.shape
    _check_weights(fn, x, prev_h, "prev_h", Wx, Wh, b, gates, D)
    if prev_h.shape[0] != N:
        raise ValueError(f"{fn}: prev_h {shape_str(prev_h)} must have x's {N} rows")


def _check_weights(fn, x, prev_h, h_name, Wx, Wh, b, gates, D):
    H = prev_h.shape[1]
    want = {"Wx": (D, gates * H), "Wh": (H, gates * H), "b": (gates * H,)}
    for name, arr in (("Wx", Wx), ("Wh", Wh), ("b", b)):
        if tuple(arr.shape) != want[name]:
            raise ValueError(f"{fn}: {name} must have shape {want[name]} for x {shape_str(x)} "
                             f"and {h_name} {shape_str(prev_h)}, got {shape_str(arr)}")


# ------------------------------------------------------------------ vanilla RNN
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One tanh RNN step. x (N, D) or (D,) (the same input for every row,
    as the course's formula broadcasts it), prev_h (N, H), Wx (D, H), Wh
    (H, H), b (H,). Returns next_h (N, H) and the cache for the backward
    (whose dx has x's shape)."""
    xp = xp_of(x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    _check_step("rnn_step_forward", xp, x, prev_h, Wx, Wh, b, 1)
    next_h = xp.tanh(xp.matmul(x, Wx) + xp.matmul(prev_h, Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Backward of one RNN step: dx, dprev_h, dWx, dWh, db."""
    x, prev_h, Wx, Wh, next_h = cache
    xp = xp_of(dnext_h=dnext_h, x=x)
    check_dout("rnn_step_backward", xp, dnext_h, next_h.shape)
    da = dnext_h * (1 - next_h * next_h)
    t = xp.matrix_transpose
    dx, dWx = _input_grads(xp, x, da, Wx)
    return dx, xp.matmul(da, t(Wh)), dWx, xp.matmul(t(prev_h), da), xp.sum(da, axis=0)


def _input_grads(xp, x, da, Wx):
    """(dx, dWx) of a step's x @ Wx; a 1-D x, used by every row, gets the
    sum of the rows' gradients."""
    if x.ndim == 1:
        da_sum = xp.sum(da, axis=0)
        return xp.matmul(da_sum, xp.matrix_transpose(Wx)), x[:, None] * da_sum[None, :]
    return xp.matmul(da, xp.matrix_transpose(Wx)), xp.matmul(xp.matrix_transpose(x), da)


def _check_sequence(fn, xp, x, h0, Wx, Wh, b, gates):
    """The shapes and dtypes of a sequence's inputs (also when T is 0)."""
    check_real(fn, xp, x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    check_ndim(f"{fn}: x", x, 3, "(N, T, D)")
    check_ndim(f"{fn}: h0", h0, 2, "(N, H)")
    if h0.shape[0] != x.shape[0]:
        raise ValueError(f"{fn}: h0 {shape_str(h0)} must have x's {x.shape[0]} sequences")
    _check_weights(fn, x, h0, "h0", Wx, Wh, b, gates, x.shape[2])


def _input_part(xp, x, Wx, b):
    """x @ Wx + b for every step at once: (N, T, k*H), one product."""
    N, T, D = x.shape
    return xp.reshape(xp.matmul(xp.reshape(x, (N * T, D)), Wx) + b, (N, T, Wx.shape[1]))


def _sequence_grads(xp, x, h0, h, das, Wx):
    """dx, dWx, dWh and db for all steps at once from each step's
    pre-activation gradient das[t] (N, k*H): one product each."""
    N, T, D = x.shape
    da2 = xp.reshape(xp.stack(das, axis=1), (N * T, Wx.shape[1]))
    hprev = xp.concat([h0[:, None, :], h[:, :-1, :]], axis=1)
    t = xp.matrix_transpose
    return (xp.reshape(xp.matmul(da2, t(Wx)), x.shape),
            xp.matmul(t(xp.reshape(x, (N * T, D))), da2),
            xp.matmul(t(xp.reshape(hprev, (N * T, h0.shape[1]))), da2), xp.sum(da2, axis=0))


def _step_product(xp, w, transpose=False):
    """``h -> h @ w`` (``h @ w.T`` when ``transpose``) for every step of a
    sequence: the backend's, prepared once (the NumPy backend packs w for
    its compiled kernel), else the portable product."""
    prod = backend.kernels(w).step_product(w, transpose)
    if prod is not None:
        return prod
    wt = xp.matrix_transpose(w) if transpose else w
    return lambda h: xp.matmul(h, wt)


def _empty_sequence(xp, x, h0):
    return xp.zeros((x.shape[0], 0, h0.shape[1]), dtype=h0.dtype, device=_device(h0))


def rnn_forward(x, h0, Wx, Wh, b):
    """A tanh RNN over T steps. x (N, T, D), h0 (N, H). Returns h (N, T, H),
    every step's hidden state, and the cache. (The input part x @ Wx + b of
    every step is one product; only h @ Wh runs step by step.)"""
    xp = xp_of(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    _check_sequence("rnn_forward", xp, x, h0, Wx, Wh, b, 1)
    if not x.shape[1]:
        return _empty_sequence(xp, x, h0), (x, h0, Wx, Wh, b, None)
    xa = _input_part(xp, x, Wx, b)
    step = backend.kernels(xa, h0, Wh).rnn_step_forward   # one launch a step on a GPU
    times_wh = _step_product(xp, Wh)
    hs, h = [], h0
    for t in range(x.shape[1]):
        hw = times_wh(h)
        h = step(xa, t, hw)
        if h is None:
            h = xp.tanh(xa[:, t, :] + hw)
        hs.append(h)
    out = xp.stack(hs, axis=1)
    return out, (x, h0, Wx, Wh, b, out)


def rnn_backward(dh, cache):
    """Backward of :func:`rnn_forward`; dh (N, T, H) is the upstream
    gradient of every hidden state. Returns dx, dh0, dWx, dWh, db."""
    x, h0, Wx, Wh, b, out = cache
    xp = xp_of(dh=dh, x=x)
    N, T = x.shape[:2]
    check_dout("rnn_backward", xp, dh, (N, T, h0.shape[1]))
    if not T:
        return tuple(xp.zeros_like(a) for a in (x, h0, Wx, Wh, b))
    times_whT = _step_product(xp, Wh, transpose=True)
    das = [None] * T
    dnext = xp.zeros_like(h0)
    step = backend.kernels(dh, out).rnn_step_backward
    for t in reversed(range(T)):
        da = step(dh, t, dnext, out)
        if da is None:
            h = out[:, t, :]
            da = (dh[:, t, :] + dnext) * (1 - h * h)
        das[t] = da
        dnext = times_whT(da)
    dx, dWx, dWh, db = _sequence_grads(xp, x, h0, out, das, Wx)
    return dx, dnext, dWx, dWh, db


# ------------------------------------------------------------------ word embeddings
def word_embedding_forward(x, W):
    """Rows of W (V, D) for the integer word indices x (N, T): out (N, T, D)."""
    xp = xp_of(x=x, W=W)
    check_ndim("word_embedding_forward: W", W, 2, "(V, D)")
    if not xp.isdtype(x.dtype, "integral"):
        raise TypeError(f"word_embedding_forward: x must hold integer word indices, got "
                        f"dtype {x.dtype}")
    V = W.shape[0]
    if x.size and backend.labels_need_check(x):
        lo, hi = backend.label_range(x)
        if lo < 0 or hi >= V:
            raise ValueError(f"word_embedding_forward: word indices must lie in [0, {V - 1}] "
                             f"for W's {V} words, got values in [{lo}, {hi}]")
    flat = xp.reshape(x, (-1,))
    out = xp.reshape(xp.take(W, flat, axis=0), (*x.shape, W.shape[1]))
    return out, (x, W)


def word_embedding_backward(dout, cache):
    """Backward of :func:`word_embedding_forward`: dW (V, D), each row the
    sum of the gradients of the positions holding that word."""
    x, W = cache
    xp = xp_of(dout=dout, W=W)
    check_dout("word_embedding_backward", xp, dout, (*x.shape, W.shape[1]))
    fast = backend.kernels(dout, W).scatter_add_rows(x, dout, W.shape[0])
    if fast is not None:
        return fast
    flat = xp.reshape(x, (-1,))
    words = xp.arange(W.shape[0], dtype=flat.dtype, device=_device(flat))
    hot = xp.astype(flat[None, :] == words[:, None], dout.dtype)       # (V, N*T)
    return xp.matmul(hot, xp.reshape(dout, (-1, W.shape[1])))


# ------------------------------------------------------------------ LSTM
def _lstm_gates(xp, a, c_prev):
    """(next_h, next_c, (i, f, o, g, tanh(next_c))) from the pre-activation
    a (N, 4H). The gates' sigmoid as 0.5 * tanh(a / 2) + 0.5: it never
    overflows, takes two passes over the values where the exp form takes
    six, and is what the GPU's step kernel computes."""
    H = c_prev.shape[1]
    sig = 0.5 * xp.tanh(0.5 * a[:, :3 * H]) + 0.5
    i, f, o = sig[:, :H], sig[:, H:2 * H], sig[:, 2 * H:]
    g = xp.tanh(a[:, 3 * H:])
    next_c = f * c_prev + i * g
    tc = xp.tanh(next_c)
    return o * tc, next_c, (i, f, o, g, tc)


def _lstm_gate_grads(xp, dh, dc_next, c_prev, i, f, o, g, tc):
    """(da (N, 4H), dc_prev) of one step from the gradients dh of its
    output and dc_next of its cell."""
    dc = dc_next + dh * o * (1 - tc * tc)
    da = xp.concat([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                    dh * tc * o * (1 - o), dc * i * (1 - g * g)], axis=1)
    return da, dc * f


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step (gates i, f, o, g). x (N, D) or (D,) (the same input
    for every row), prev_h (N, H), prev_c (N, H) or a number (0: a zero
    cell state, as a sampling loop starts; the course's formula
    broadcasts it), Wx (D, 4H), Wh (H, 4H), b (4H,). Returns next_h,
    next_c and the cache (the backward's dprev_c is (N, H))."""
    if is_number(prev_c) or (backend.is_array(prev_c) and prev_c.ndim == 0):
        xp = xp_of(x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
        prev_c = xp.full(prev_h.shape, float(backend.to_numpy(prev_c)), dtype=prev_h.dtype,
                         device=_device(prev_h))
    xp = xp_of(x=x, prev_h=prev_h, prev_c=prev_c, Wx=Wx, Wh=Wh, b=b)
    _check_step("lstm_step_forward", xp, x, prev_h, Wx, Wh, b, 4)
    check_real("lstm_step_forward", xp, prev_c=prev_c)
    if tuple(prev_c.shape) != tuple(prev_h.shape):
        raise ValueError(f"lstm_step_forward: prev_c {shape_str(prev_c)} must have prev_h's "
                         f"shape {shape_str(prev_h)} (or be a number, such as 0)")
    next_h, next_c, gates = _lstm_gates(xp, xp.matmul(x, Wx) + xp.matmul(prev_h, Wh) + b, prev_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, *gates)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward of one LSTM step: dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc = cache
    xp = xp_of(dnext_h=dnext_h, dnext_c=dnext_c, x=x)
    check_dout("lstm_step_backward", xp, dnext_h, prev_h.shape)
    check_dout("lstm_step_backward", xp, dnext_c, prev_c.shape)
    da, dprev_c = _lstm_gate_grads(xp, dnext_h, dnext_c, prev_c, i, f, o, g, tc)
    t = xp.matrix_transpose
    dx, dWx = _input_grads(xp, x, da, Wx)
    return (dx, xp.matmul(da, t(Wh)), dprev_c, dWx, xp.matmul(t(prev_h), da), xp.sum(da, axis=0))


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over T steps from h0 and a zero cell state. x (N, T, D), h0
    (N, H). Returns h (N, T, H) and the cache. (The input part x @ Wx + b of
    every step is one product; only h @ Wh runs step by step.)"""
    xp = xp_of(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    _check_sequence("lstm_forward", xp, x, h0, Wx, Wh, b, 4)
    if not x.shape[1]:
        return _empty_sequence(xp, x, h0), (x, h0, Wx, Wh, b, None, [])
    xa = _input_part(xp, x, Wx, b)
    h, c = h0, xp.zeros_like(h0)
    hs, states = [], []
    step = backend.kernels(xa, h0, Wh).lstm_step_forward   # one launch a step on a GPU
    times_wh = _step_product(xp, Wh)
    for t in range(x.shape[1]):
        hw = times_wh(h)
        fast = step(xa, t, hw, c)
        h, c_next, gates = fast if fast is not None else _lstm_gates(xp, xa[:, t, :] + hw, c)
        states.append((c, *gates))
        c = c_next
        hs.append(h)
    out = xp.stack(hs, axis=1)
    return out, (x, h0, Wx, Wh, b, out, states)


def lstm_backward(dh, cache):
    """Backward of :func:`lstm_forward`: dx, dh0, dWx, dWh, db."""
    x, h0, Wx, Wh, b, out, states = cache
    xp = xp_of(dh=dh, x=x)
    N, T = x.shape[:2]
    check_dout("lstm_backward", xp, dh, (N, T, h0.shape[1]))
    if not T:
        return tuple(xp.zeros_like(a) for a in (x, h0, Wx, Wh, b))
    times_whT = _step_product(xp, Wh, transpose=True)
    das = [None] * T
    dh_next, dc_next = xp.zeros_like(h0), xp.zeros_like(h0)
    step = backend.kernels(dh, h0).lstm_step_backward
    for t in reversed(range(T)):
        c_prev, i, f, o, g, tc = states[t]
        fast = step(dh, t, dh_next, dc_next, c_prev, (i, f, o, g, tc))
        if fast is None:   # (a kernel's dc_prev carries the gradient in its first H columns)
            fast = _lstm_gate_grads(xp, dh[:, t, :] + dh_next, dc_next[:, :h0.shape[1]],
                                    c_prev, i, f, o, g, tc)
        das[t], dc_next = fast
        dh_next = times_whT(das[t])
    dx, dWx, dWh, db = _sequence_grads(xp, x, h0, out, das, Wx)
    return dx, dh_next, dWx, dWh, db


# ------------------------------------------------------------------ output side
def temporal_affine_forward(x, w, b):
    """The same affine layer at every time step: x (N, T, D), w (D, M), b
    (M,) -> out (N, T, M)."""
    xp = xp_of(x=x, w=w, b=b)
    check_ndim("temporal_affine_forward: x", x, 3, "(N, T, D)")
    check_ndim("temporal_affine_forward: w", w, 2, "(D, M)")
    N, T, D = x.shape
    if w.shape[0] != D or tuple(b.shape) != (w.shape[1],):
        raise ValueError(f"temporal_affine_forward: x {shape_str(x)} needs w ({D}, M) and b "
                         f"(M,), got w {shape_str(w)} and b {shape_str(b)}")
    out = xp.reshape(xp.matmul(xp.reshape(x, (N * T, D)), w) + b, (N, T, w.shape[1]))
    return out, (x, w, b, out)


def temporal_affine_backward(dout, cache):
    """Backward of :func:`temporal_affine_forward`: dx, dw, db."""
    x, w, b, out = cache
    xp = xp_of(dout=dout, x=x)
    check_dout("temporal_affine_backward", xp, dout, out.shape)
    N, T, D = x.shape
    M = w.shape[1]
    d2 = xp.reshape(dout, (N * T, M))
    dx = xp.reshape(xp.matmul(d2, xp.matrix_transpose(w)), (N, T, D))
    dw = xp.matmul(xp.matrix_transpose(xp.reshape(x, (N * T, D))), d2)
    return dx, dw, xp.sum(d2, axis=0)


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax loss summed over the time steps ``mask`` keeps and averaged
    over the N sequences. x (N, T, V) scores, y (N, T) word indices, mask
    (N, T) booleans (or numbers 0 and 1: any other value would weigh its
    step, which no caption wants, and is refused). Returns (loss, dx).
    verbose prints dx's flat shape."""
    xp = xp_of(x=x, y=y, mask=mask)
    check_real("temporal_softmax_loss", xp, x=x)
    check_ndim("temporal_softmax_loss: x", x, 3, "scores (N, T, V)")
    N, T, V = x.shape
    if tuple(y.shape) != (N, T) or tuple(mask.shape) != (N, T):
        raise ValueError(f"temporal_softmax_loss: y and mask must have shape {(N, T)} to "
                         f"match x {shape_str(x)}, got {shape_str(y)} and {shape_str(mask)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"temporal_softmax_loss: y must hold integer word indices, got dtype "
                        f"{y.dtype}")
    if N * T and backend.labels_need_check(y):
        lo, hi = backend.label_range(y)
        if lo < 0 or hi >= V:
            raise ValueError(f"temporal_softmax_loss: word indices must lie in [0, {V - 1}] "
                             f"for {V} scores, got values in [{lo}, {hi}]")
    if N == 0:
        raise ValueError(f"temporal_softmax_loss: x {shape_str(x)} is an empty batch; the "
                         f"loss is an average over sequences and needs at least one")
    if not xp.isdtype(mask.dtype, "bool"):
        check_real("temporal_softmax_loss", xp, mask=mask)
        if T and not bool(backend.to_numpy(xp.all((mask == 0) | (mask == 1)))):
            raise ValueError("temporal_softmax_loss: mask must hold booleans or 0 and 1 (which "
                             "steps are scored); it holds other values")
    xf = xp.reshape(x, (N * T, V))
    yf = xp.reshape(y, (-1,))
    keep = xp.astype(xp.reshape(mask, (-1,)), x.dtype)[:, None]
    shifted = xf - xp.max(xf, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    words = xp.arange(V, dtype=yf.dtype, device=_device(yf))
    hot = xp.astype(yf[:, None] == words[None, :], x.dtype)
    loss = -xp.sum(keep * hot * log_probs) / N
    dx = (xp.exp(log_probs) - hot) / N * keep
    if verbose:
        print("dx_flat: ", tuple(dx.shape))
    return loss, xp.reshape(dx, (N, T, V))
