"""The recurrent step's compiled host kernels (NumPy backend).

The product (``_cython/step_gemm.h``): every version this CPU runs
(AVX-512, AVX2/FMA, the baseline) against a float64 product for row counts
around the row block, widths around the vector and panel, B packed plain
and transposed, panels that start unaligned; the same bits on one thread or
several; the recurrent layers use it once per sequence and fall back for
what it does not serve; it refuses what it was not built for.

The gates (``_cython/step_gates.h``, float32): tanh within a few ulp of the
exact value everywhere, NaN kept; the LSTM and RNN passes against the
portable path on strided inputs; the layers take them for float32 and keep
NumPy's path for float64."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.backend import numpy as _kernels
from xpnn.backend.numpy import steps
from xpnn.layers import lstm_backward, lstm_forward, rnn_backward, rnn_forward
from xpnn.layers.recurrent import _lstm_gate_grads, _lstm_gates

from conftest import record_calls


def _cy():
    if not _kernels.has_compiled():
        pytest.skip("compiled extension not built (the step product is part of it)")
    return _kernels._cy


def _levels():
    cy = _cy()
    return [lv for lv in (0, 3, 4) if lv <= cy.STEP_LEVEL]


def _pool():
    return _kernels._blaspool.address() if _kernels._blaspool is not None else 0


def _packed(cy, w, trans, level, threads=1, offset=0):
    """B packed into a buffer that starts ``offset`` elements into its array
    (offset 1: no panel is aligned to a vector)."""
    K, N = (w.shape[1], w.shape[0]) if trans else w.shape
    nr = cy.step_panel_width(w.dtype == np.float64, level)
    size = -(-N // nr) * K * nr
    bp = np.full(size + offset, np.nan, dtype=w.dtype)[offset:]
    cy.step_pack(w, trans, bp, level, threads, _pool() if threads > 1 else 0)
    return bp


# rows around the blocks (4 and 6 rows), widths around vectors (2-16) and
# panels (12-64 columns), depths 1 to 37
SHAPES = [(1, 1, 1), (5, 3, 15), (6, 17, 16), (7, 8, 17), (13, 37, 63), (25, 16, 64),
          (4, 5, 65), (12, 9, 130), (3, 2, 200)]


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_every_version_equals_a_float64_product(dtype, rtol, trans, M, K, N):
    cy = _cy()
    r = np.random.RandomState(M * 1000 + K * 10 + N)
    a = r.randn(M, K).astype(dtype)
    w = r.randn(N, K).astype(dtype) if trans else r.randn(K, N).astype(dtype)
    B = (w.T if trans else w).astype(np.float64)
    want = a.astype(np.float64) @ B
    scale = np.abs(a).astype(np.float64) @ np.abs(B)     # bound on each sum's size
    for level in _levels():
        for offset in (0, 1):
            bp = _packed(cy, w, trans, level, offset=offset)
            c = np.full((M, N), np.nan, dtype=dtype)
            cy.step_product(a, bp, c, level, 1, 0)
            err = np.abs(c.astype(np.float64) - want)
            assert np.all(err <= rtol * scale + 1e-30), (level, offset)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_whatever_the_thread_count(dtype):
    """Panels are split over threads; each sum runs over k in order, so one
    thread and several give identical results (and identical packings)."""
    cy = _cy()
    if not _pool():
        pytest.skip("xpnn's C thread pool was not built")
    r = np.random.RandomState(3)
    a, w = r.randn(25, 96).astype(dtype), r.randn(96, 700).astype(dtype)
    for level in _levels():
        out = []
        for threads in (1, 2, 3, 7):
            bp = _packed(cy, w, False, level, threads)
            c = np.empty((25, 700), dtype=dtype)
            cy.step_product(a, bp, c, level, threads, _pool())
            out.append((bp, c))
        for bp, c in out[1:]:
            np.testing.assert_array_equal(bp, out[0][0])
            np.testing.assert_array_equal(c, out[0][1])


def test_inf_and_nan_propagate():
    cy = _cy()
    a = np.ones((7, 5), np.float32)
    a[2, 3] = np.nan
    a[5, 0] = np.inf
    w = np.ones((5, 20), np.float32)
    for level in _levels():
        c = np.zeros((7, 20), np.float32)
        cy.step_product(a, _packed(cy, w, False, level), c, level, 1, 0)
        assert np.isnan(c[2]).all() and np.isposinf(c[5]).all()
        assert np.isfinite(np.delete(c, [2, 5], axis=0)).all()


def test_empty_rows_depth_and_width():
    cy = _cy()
    level = _levels()[-1]
    for M, K, N in [(0, 4, 9), (3, 0, 9), (3, 4, 0)]:
        a, w = np.ones((M, K)), np.ones((K, N))
        c = np.full((M, N), np.nan)
        cy.step_product(a, _packed(cy, w, False, level), c, level, 2, _pool())
        np.testing.assert_array_equal(c, np.zeros((M, N)))


def test_refuses_what_it_was_not_built_for():
    cy = _cy()
    level = _levels()[-1]
    a, w = np.ones((3, 4), np.float32), np.ones((4, 9), np.float32)
    bp = _packed(cy, w, False, level)
    with pytest.raises(ValueError, match="level 5"):
        cy.step_panel_width(False, 5)
    if cy.STEP_LEVEL < 4:
        with pytest.raises(ValueError, match="this CPU runs"):
            cy.step_panel_width(False, 4)
    with pytest.raises(ValueError, match="packed buffer holds"):
        cy.step_product(a, bp[:-1], np.empty((3, 9), np.float32), level, 1, 0)
    with pytest.raises(ValueError, match="c has 2 rows, a 3"):
        cy.step_product(a, bp, np.empty((2, 9), np.float32), level, 1, 0)
    with pytest.raises(ValueError, match="packed buffer holds"):
        cy.step_pack(w, False, bp[:5], level, 1, 0)


def test_step_product_falls_back_to_matmul_for_what_it_does_not_serve():
    cy = _cy()
    if cy.STEP_LEVEL < 3:
        pytest.skip("this CPU has no AVX2/FMA: the step product is not used")
    r = np.random.RandomState(1)
    w = r.randn(6, 10).astype(np.float32)
    prod = steps.step_product(cy, w, False, _pool())
    h64 = r.randn(4, 6)                                  # float64 rows, float32 weights
    assert prod(h64).dtype == np.float64
    np.testing.assert_allclose(prod(h64), h64 @ w, rtol=1e-12)
    hT = np.asfortranarray(r.randn(4, 6).astype(np.float32))   # not C-ordered: copied
    np.testing.assert_allclose(prod(hT), hT @ w, rtol=1e-5)
    with pytest.raises(ValueError):
        prod(np.ones((4, 7), np.float32))                 # NumPy's own shape error
    assert steps.step_product(cy, w.astype(np.float16)) is None
    assert steps.step_product(cy, np.ones(3, np.float32)) is None
    assert steps.step_product(None, w) is None


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_recurrent_layers_pack_once_per_sequence_and_match_plain_products(monkeypatch, cell):
    """A sequence's forward packs Wh once and its backward packs Wh.T once;
    outputs and every gradient equal the ones computed with NumPy's matmul
    (the step product switched off)."""
    cy = _cy()
    if cy.STEP_LEVEL < 3:
        pytest.skip("this CPU has no AVX2/FMA: the step product is not used")
    fwd, bwd, k = (rnn_forward, rnn_backward, 1) if cell == "rnn" else \
        (lstm_forward, lstm_backward, 4)
    r = np.random.RandomState(5)
    N, T, D, H = 7, 5, 6, 9
    x, h0 = r.randn(N, T, D), r.randn(N, H)
    Wx, Wh, b = r.randn(D, k * H), r.randn(H, k * H), r.randn(k * H)
    dh = r.randn(N, T, H)

    def run():
        h, cache = fwd(x, h0, Wx, Wh, b)
        return (h, *bwd(dh, cache))

    log = []
    record_calls(monkeypatch, steps, "StepProduct", log)
    fast = run()
    assert log == ["StepProduct", "StepProduct"]
    monkeypatch.setattr(_kernels.NumpyKernels, "step_product", lambda self, w, t=False: None)
    plain = run()
    for f, p in zip(fast, plain):
        np.testing.assert_allclose(f, p, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- gates
def _tanh32(cy, x):
    """The kernels' float32 tanh, through the RNN pass with hw = 0."""
    x = np.asarray(x, np.float32).reshape(1, -1)
    return cy.rnn_gates_forward(x, np.zeros_like(x))[0]


def test_tanh_within_a_few_ulp_everywhere():
    cy = _cy()
    x = np.concatenate([np.linspace(-12, 12, 400001), np.geomspace(1e-30, 1, 2001),
                        -np.geomspace(1e-30, 1, 2001), [0.0, -0.0, 8.999, 9.0, 9.001, 88.0,
                                                        1e30, -1e30, np.inf, -np.inf]])
    x = x.astype(np.float32)
    got = _tanh32(cy, x).astype(np.float64)
    want = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - want) / ulp) <= 8
    assert np.all(np.abs(got) <= 1) and np.all(np.sign(got) == np.sign(want))
    assert got[-2] == 1 and got[-1] == -1


def test_nan_goes_in_and_comes_out():
    cy = _cy()
    out = _tanh32(cy, [np.nan, 1.0, np.nan])
    assert np.isnan(out[[0, 2]]).all() and np.isfinite(out[1])
    xa = np.zeros((2, 3, 8), np.float32)
    xa[1, 0, 3] = np.nan                       # the forget gate of row 1, unit 1
    h, c, *_ = cy.lstm_gates_forward(xa[:, 0, :], np.zeros((2, 8), np.float32),
                                     np.ones((2, 2), np.float32))
    assert np.isnan(c[1, 1]) and np.isnan(h[1, 1]) and np.isfinite(np.delete(c.ravel(), 3)).all()


def _lstm_data(r, N, T, H, scale):
    xa = (r.randn(N, T, 4 * H) * scale).astype(np.float32)   # gates from mild to saturated
    hw = (r.randn(N, 4 * H) * scale).astype(np.float32)
    return xa, hw, r.randn(N, H).astype(np.float32)


@pytest.mark.parametrize("N,H", [(1, 1), (3, 5), (25, 512), (4, 33)])
@pytest.mark.parametrize("scale", [0.5, 4.0, 30.0])
def test_lstm_gates_match_the_portable_path(N, H, scale):
    """Forward from a step of xa (a strided view) and backward from strided
    upstream gradients, against the portable NumPy code at float32."""
    cy = _cy()
    r = np.random.RandomState(N * 100 + H)
    xa, hw, c_prev = _lstm_data(r, N, 3, H, scale)
    got = cy.lstm_gates_forward(xa[:, 1, :], hw, c_prev)
    h, c, gates = _lstm_gates(np, xa[:, 1, :] + hw, c_prev)
    for g, w in zip(got, (h, c, *gates)):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-6)
    dh = r.randn(N, 3, H).astype(np.float32)
    dh_next, dc_next = r.randn(N, H).astype(np.float32), r.randn(N, H).astype(np.float32)
    da, dc_prev = cy.lstm_gates_backward(dh[:, 2, :], dh_next, dc_next, c_prev, *got[2:])
    want_da, want_dc = _lstm_gate_grads(np, dh[:, 2, :] + dh_next, dc_next, c_prev, *got[2:])
    np.testing.assert_allclose(da, want_da, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dc_prev, want_dc, rtol=1e-5, atol=1e-5)


def test_rnn_gates_match_the_portable_path():
    cy = _cy()
    r = np.random.RandomState(2)
    xa, hw = (r.randn(6, 4, 19) * 3).astype(np.float32), (r.randn(6, 19) * 3).astype(np.float32)
    h = cy.rnn_gates_forward(xa[:, 3, :], hw)
    np.testing.assert_allclose(h, np.tanh(xa[:, 3, :] + hw), rtol=1e-6, atol=1e-6)
    out, dh, dn = np.stack([h] * 4, axis=1), r.randn(6, 4, 19).astype(np.float32), \
        r.randn(6, 19).astype(np.float32)
    np.testing.assert_allclose(cy.rnn_gates_backward(dh[:, 3, :], dn, out[:, 3, :]),
                               (dh[:, 3, :] + dn) * (1 - h * h), rtol=1e-6, atol=1e-6)


def test_gates_refuse_mismatched_shapes_and_strides():
    cy = _cy()
    f = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match=r"xa_t has shape \(2, 8\), expected \(2, 12\)"):
        cy.lstm_gates_forward(f, f, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="unit stride"):
        cy.rnn_gates_forward(np.zeros((2, 16), np.float32)[:, ::2], f)
    g = np.zeros((2, 2), np.float32)
    wide = np.zeros((2, 6), np.float32)[:, :2]
    with pytest.raises(ValueError, match="share one row stride"):
        cy.lstm_gates_backward(g, g, g, g, g, g, g, g, wide)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_float32_sequences_take_the_gate_passes_float64_keeps_numpy(monkeypatch, cell):
    """A float32 sequence runs each step's gates in the compiled pass (one
    call per step each way) and agrees with the float64 computation to
    float32 precision; a float64 sequence never calls them."""
    _cy()
    fwd, bwd, k = (rnn_forward, rnn_backward, 1) if cell == "rnn" else \
        (lstm_forward, lstm_backward, 4)
    r = np.random.RandomState(8)
    N, T, D, H = 5, 6, 7, 8
    arrays = [r.randn(N, T, D), r.randn(N, H), r.randn(D, k * H) / 3, r.randn(H, k * H) / 3,
              r.randn(k * H)]
    dh = r.randn(N, T, H)
    log = []
    for name in (f"{cell}_gates_forward", f"{cell}_gates_backward"):
        record_calls(monkeypatch, _kernels._cy, name, log)

    def run(dt):
        h, cache = fwd(*[a.astype(dt) for a in arrays])
        return (h, *bwd(dh.astype(dt), cache))

    want = run(np.float64)
    assert log == []
    got = run(np.float32)
    assert log.count(f"{cell}_gates_forward") == T and log.count(f"{cell}_gates_backward") == T
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)


def test_sequences_run_the_compiled_product_every_step(monkeypatch):
    """Not only built, used: T products each way, two packings, and none of
    NumPy's matmul fallbacks."""
    cy = _cy()
    if cy.STEP_LEVEL < 3:
        pytest.skip("this CPU has no AVX2/FMA: the step product is not used")
    log = []
    for name in ("step_pack", "step_product"):
        record_calls(monkeypatch, _kernels._cy, name, log)
    r = np.random.RandomState(0)
    N, T, D, H = 4, 6, 3, 7
    x, h0 = r.randn(N, T, D).astype(np.float32), r.randn(N, H).astype(np.float32)
    Wx, Wh = r.randn(D, 4 * H).astype(np.float32), r.randn(H, 4 * H).astype(np.float32)
    b = r.randn(4 * H).astype(np.float32)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    lstm_backward(np.ones_like(h), cache)
    assert log.count("step_pack") == 2 and log.count("step_product") == 2 * T


def test_step_product_levels_and_fallbacks(monkeypatch):
    """AVX2 machines (level 3) use the kernel too, the baseline does not;
    rows of another dtype, 1-D or stacked rows, transposed or not, get
    NumPy's product and never reach the kernel."""
    cy = _cy()
    if cy.STEP_LEVEL < 3:
        pytest.skip("this CPU has no AVX2/FMA: the step product is not used")
    r = np.random.RandomState(4)
    w = r.randn(6, 10).astype(np.float32)
    monkeypatch.setattr(cy, "STEP_LEVEL", 3)
    prod = steps.step_product(cy, w, False, _pool())
    assert prod is not None and prod.level == 3
    h = r.randn(5, 6).astype(np.float32)
    np.testing.assert_allclose(prod(h), h @ w, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(cy, "STEP_LEVEL", 0)
    assert steps.step_product(cy, w) is None
    monkeypatch.undo()
    log = []
    record_calls(monkeypatch, _kernels._cy, "step_product", log)
    for transpose, wt in ((False, w), (True, w.T.copy())):
        prod = steps.step_product(cy, wt, transpose, _pool())
        for hb in (r.randn(5, 6), r.randn(6).astype(np.float32),
                   r.randn(2, 5, 6).astype(np.float32)):
            np.testing.assert_allclose(prod(hb), hb @ w, rtol=1e-5, atol=1e-5)
    assert log == []
    assert steps.step_product(cy, w)(h).shape == (5, 10) and log == ["step_product"]


def test_mixed_precision_sequences_promote_as_numpy_does(monkeypatch):
    """float32 weights with a float64 initial state: the compiled gate
    passes decline (they take float32 only) and the sequence computes in
    float64 from the step products on, as NumPy's promotion would (the
    input part x @ Wx stays a float32 product, hence the tolerance)."""
    _cy()
    log = []
    for name in ("lstm_gates_forward", "lstm_gates_backward"):
        record_calls(monkeypatch, _kernels._cy, name, log)
    r = np.random.RandomState(9)
    N, T, D, H = 3, 4, 5, 6
    x, h0 = r.randn(N, T, D).astype(np.float32), r.randn(N, H)
    Wx, Wh = (r.randn(D, 4 * H) / 3).astype(np.float32), (r.randn(H, 4 * H) / 3).astype(np.float32)
    b = r.randn(4 * H).astype(np.float32)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    grads = lstm_backward(np.ones((N, T, H)), cache)
    assert h.dtype == np.float64 and log == []
    h64, c64 = lstm_forward(*(a.astype(np.float64) for a in (x, h0, Wx, Wh, b)))
    np.testing.assert_allclose(h, h64, rtol=1e-6, atol=1e-7)
    for g, w in zip(grads, lstm_backward(np.ones((N, T, H)), c64)):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("wide", ["x", "h0", "Wx", "Wh", "b"])
def test_one_float64_array_among_float32_ones(cell, wide):
    """Whichever one input is float64, the sequence computes what NumPy's
    promotion gives (the compiled passes take only all-float32 steps and
    leave the rest to NumPy), forward and backward, without an error."""
    _cy()
    fwd, bwd, k = (rnn_forward, rnn_backward, 1) if cell == "rnn" else \
        (lstm_forward, lstm_backward, 4)
    r = np.random.RandomState(12)
    N, T, D, H = 3, 4, 5, 6
    a = dict(x=r.randn(N, T, D), h0=r.randn(N, H), Wx=r.randn(D, k * H) / 3,
             Wh=r.randn(H, k * H) / 3, b=r.randn(k * H))
    mixed = {n: (v if n == wide else v.astype(np.float32)) for n, v in a.items()}
    h, cache = fwd(**mixed)
    grads = bwd(np.ones((N, T, H)), cache)
    h64, c64 = fwd(**{n: v.astype(np.float32).astype(np.float64) if n != wide else v
                      for n, v in a.items()})
    np.testing.assert_allclose(h, h64, rtol=1e-4, atol=1e-5)
    for g, w in zip(grads, bwd(np.ones((N, T, H)), c64)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_a_float64_upstream_gradient_into_a_float32_sequence(cell):
    """A float32 sequence whose upstream gradient is float64 (a loss
    computed in float64): the gate passes decline that step and NumPy
    promotes, with no error."""
    _cy()
    fwd, bwd, k = (rnn_forward, rnn_backward, 1) if cell == "rnn" else \
        (lstm_forward, lstm_backward, 4)
    r = np.random.RandomState(13)
    a = [r.randn(3, 4, 5), r.randn(3, 6), r.randn(5, 6 * k) / 3, r.randn(6, 6 * k) / 3,
         r.randn(6 * k)]
    h, cache = fwd(*(v.astype(np.float32) for v in a))
    dh = r.randn(3, 4, 6)
    got = bwd(dh, cache)
    _, c64 = fwd(*(v.astype(np.float32).astype(np.float64) for v in a))
    for g, w in zip(got, bwd(dh, c64)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_without_the_extension_every_step_hook_declines():
    z3, z2 = np.zeros((2, 3, 4), np.float32), np.zeros((2, 4), np.float32)
    assert steps.rnn_step_forward(None, z3, 0, z2) is None
    assert steps.rnn_step_backward(None, z3, 0, z2, z3) is None
    assert steps.lstm_step_forward(None, np.zeros((2, 3, 16), np.float32), 0,
                                   np.zeros((2, 16), np.float32), z2) is None
    assert steps.lstm_step_backward(None, z3, 0, z2, z2, z2, (z2,) * 5) is None
    assert steps.step_product(None, z2) is None
