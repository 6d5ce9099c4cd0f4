"""Layer outputs and gradients against PyTorch (an independent framework),
in float64 on random shapes: agreement to round-off.

PyTorch is a test-oracle dependency only (the ``test`` extra)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnn.layers import *  # noqa: F403

torch = pytest.importorskip("torch", reason="PyTorch (test oracle) is not installed")
F = torch.nn.functional

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = dict(rtol=1e-10, atol=1e-11)


def _torch_grads(fn, dout, *arrays):
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _close(xb, ours, theirs):
    np.testing.assert_allclose(xb.host(ours), theirs, **TOL)


@st.composite
def conv_geometry(draw):
    N, C, F_ = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    ho, wo = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = (ho - 1) * s + kh - 2 * pad, (wo - 1) * s + kw - 2 * pad
    if H < 1 or W < 1:
        H, W = (ho - 1) * s + kh, (wo - 1) * s + kw
        pad = 0
    return N, C, H, W, F_, kh, kw, s, pad, draw(st.integers(0, 2**31 - 1))


@SETTINGS
@given(g=conv_geometry())
def test_conv_fast_matches_torch(xb, g):
    N, C, H, W, F_, kh, kw, s, pad, seed = g
    r = np.random.RandomState(seed)
    x, w, b = r.randn(N, C, H, W), r.randn(F_, C, kh, kw), r.randn(F_)
    out, cache = conv_forward_fast(xb.asarray(x), xb.asarray(w), xb.asarray(b),
                                   {"stride": s, "pad": pad})
    dout = r.randn(*out.shape)
    t_out, (tdx, tdw, tdb) = _torch_grads(
        lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=pad), dout, x, w, b)
    _close(xb, out, t_out)
    dx, dw, db = conv_backward_fast(xb.asarray(dout), cache)
    for ours, theirs in ((dx, tdx), (dw, tdw), (db, tdb)):
        _close(xb, ours, theirs)


@st.composite
def pool_geometry(draw):
    ph, pw, s = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(ph, ph + 7)), draw(st.integers(pw, pw + 7))
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W, ph, pw, s, \
        draw(st.integers(0, 2**31 - 1))


@SETTINGS
@given(g=pool_geometry())
def test_pooling_matches_torch(xb, g):
    N, C, H, W, ph, pw, s, seed = g
    r = np.random.RandomState(seed)
    x = r.randn(N, C, H, W)
    pool = {"pool_height": ph, "pool_width": pw, "stride": s}
    for fwd, bwd, tfn in ((max_pool_forward_fast, max_pool_backward_fast, F.max_pool2d),
                          (avg_pool_forward, avg_pool_backward, F.avg_pool2d)):
        out, cache = fwd(xb.asarray(x), pool)
        dout = r.randn(*out.shape)
        t_out, (tdx,) = _torch_grads(lambda x: tfn(x, (ph, pw), stride=s), dout, x)
        _close(xb, out, t_out)
        _close(xb, bwd(xb.asarray(dout), cache), tdx)


@SETTINGS
@given(N=st.integers(2, 6), C=st.integers(1, 5), H=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_normalization_matches_torch(xb, N, C, H, seed):
    r = np.random.RandomState(seed)
    x4 = 3 * r.randn(N, C, H, H + 1) + 2
    gamma, beta = r.randn(C), r.randn(C)
    # spatial batchnorm == torch batch_norm in training mode (biased variance)
    out, cache = spatial_batchnorm_forward(xb.asarray(x4), xb.asarray(gamma), xb.asarray(beta),
                                           {"mode": "train"})
    dout = r.randn(*x4.shape)
    t_out, tg = _torch_grads(lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True,
                                                          eps=1e-5), dout, x4, gamma, beta)
    _close(xb, out, t_out)
    for ours, theirs in zip(spatial_batchnorm_backward(xb.asarray(dout), cache), tg):
        _close(xb, ours, theirs)
    # batchnorm on (N, D) and layernorm on (N, D)
    x2 = x4.reshape(N, -1)[:, :C]
    d2 = dout.reshape(N, -1)[:, :C]
    out, cache = batchnorm_forward(xb.asarray(x2), xb.asarray(gamma), xb.asarray(beta),
                                   {"mode": "train"})
    t_out, tg = _torch_grads(lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True,
                                                          eps=1e-5), d2, x2, gamma, beta)
    _close(xb, out, t_out)
    for bwd in (batchnorm_backward, batchnorm_backward_alt):
        for ours, theirs in zip(bwd(xb.asarray(d2), cache), tg):
            _close(xb, ours, theirs)
    out, cache = layernorm_forward(xb.asarray(x2), xb.asarray(gamma), xb.asarray(beta), {})
    t_out, tg = _torch_grads(lambda x, g, b: F.layer_norm(x, (C,), g, b, eps=1e-5),
                             d2, x2, gamma, beta)
    _close(xb, out, t_out)
    for ours, theirs in zip(layernorm_backward(xb.asarray(d2), cache), tg):
        _close(xb, ours, theirs)


@SETTINGS
@given(N=st.integers(1, 4), G=st.integers(1, 3), per=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1))
def test_groupnorm_matches_torch(xb, N, G, per, seed):
    r = np.random.RandomState(seed)
    C = G * per
    x = 3 * r.randn(N, C, 3, 4) + 1
    gamma, beta = r.randn(1, C, 1, 1), r.randn(1, C, 1, 1)
    out, cache = spatial_groupnorm_forward(xb.asarray(x), xb.asarray(gamma), xb.asarray(beta),
                                           G, {})
    dout = r.randn(*x.shape)
    t_out, tg = _torch_grads(
        lambda x, g, b: F.group_norm(x, G, g.reshape(C), b.reshape(C), eps=1e-5),
        dout, x, gamma, beta)
    _close(xb, out, t_out)
    for ours, theirs in zip(spatial_groupnorm_backward(xb.asarray(dout), cache), tg):
        _close(xb, ours, theirs)


@SETTINGS
@given(N=st.integers(1, 20), C=st.integers(2, 12), seed=st.integers(0, 2**31 - 1))
def test_losses_match_torch(xb, N, C, seed):
    r = np.random.RandomState(seed)
    x, y = 2 * r.randn(N, C), r.randint(C, size=N)
    ty = torch.tensor(y)
    loss, dx = softmax_loss(xb.asarray(x), xb.asarray(y))
    t_loss, (tdx,) = _torch_grads(lambda s: F.cross_entropy(s, ty), np.array(1.0), x)
    _close(xb, loss, t_loss)
    _close(xb, dx, tdx)
    # torch's multi-margin loss also averages over classes: scale by C
    loss, dx = svm_loss(xb.asarray(x), xb.asarray(y))
    t_loss, (tdx,) = _torch_grads(lambda s: C * F.multi_margin_loss(s, ty), np.array(1.0), x)
    _close(xb, loss, t_loss)
    _close(xb, dx, tdx)


# ------------------------------------------------------------------ recurrent layers
def _torch_lstm_weights(Wx, Wh, b, H):
    """torch.nn.LSTM's gate order is i, f, g, o; the course's (and xpnn's)
    i, f, o, g: the last two blocks of H swap, and torch's weights are
    transposed (weight_ih (4H, D))."""
    order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
    return Wx[:, order].T, Wh[:, order].T, b[order]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sequence_model_matches_torch(xb, cell):
    """Sequential(Embedding, RNN or LSTM, TemporalAffine) against
    torch.nn.Embedding -> RNN/LSTM(batch_first) -> Linear with the same
    weights: the scores, the loss (cross-entropy summed over the steps,
    averaged over the sequences) and every parameter's gradient, float64."""
    from xpnn.nn import LSTM, RNN, Embedding, Sequential, TemporalAffine
    N, T, V, D, H = 3, 5, 7, 4, 6
    layer = LSTM(D, H) if cell == "lstm" else RNN(D, H)
    model = Sequential(Embedding(V, D), layer, TemporalAffine(H, V), input_shape=(T,),
                       dtype=np.float64, seed=1)
    r = np.random.RandomState(2)
    for k, v in model.params.items():   # biases away from zero too
        model.params[k] = 0.5 * r.randn(*v.shape)
    X, y = r.randint(V, size=(N, T)), r.randint(V, size=(N, T))
    p = {k: xb.host(v) for k, v in model.params.items()}
    model.to_device(xb.name)
    loss, grads = model.loss(xb.asarray(X), xb.asarray(y))
    scores = model.loss(xb.asarray(X))

    emb = torch.nn.Embedding(V, D).double()
    rec = (torch.nn.LSTM if cell == "lstm" else torch.nn.RNN)(D, H, batch_first=True).double()
    lin = torch.nn.Linear(H, V).double()
    Wx, Wh, b = p["1.Wx"], p["1.Wh"], p["1.b"]
    if cell == "lstm":
        Wx, Wh, b = _torch_lstm_weights(Wx, Wh, b, H)
    else:
        Wx, Wh = Wx.T, Wh.T
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(p["0.W"]))
        rec.weight_ih_l0.copy_(torch.tensor(Wx))
        rec.weight_hh_l0.copy_(torch.tensor(Wh))
        rec.bias_ih_l0.copy_(torch.tensor(b))
        rec.bias_hh_l0.zero_()
        lin.weight.copy_(torch.tensor(p["2.W"].T))
        lin.bias.copy_(torch.tensor(p["2.b"]))
    out = lin(rec(emb(torch.tensor(X)))[0])
    t_loss = F.cross_entropy(out.reshape(N * T, V), torch.tensor(y).reshape(-1),
                             reduction="sum") / N
    t_loss.backward()
    np.testing.assert_allclose(xb.host(scores), out.detach().numpy(), **TOL)
    assert float(xb.host(loss)) == pytest.approx(float(t_loss), rel=1e-12)
    g = {k: xb.host(v) for k, v in grads.items()}
    tWx, tWh = rec.weight_ih_l0.grad.numpy(), rec.weight_hh_l0.grad.numpy()
    tb = rec.bias_ih_l0.grad.numpy()
    if cell == "lstm":
        gWx, gWh, gb = _torch_lstm_weights(g["1.Wx"], g["1.Wh"], g["1.b"], H)
    else:
        gWx, gWh, gb = g["1.Wx"].T, g["1.Wh"].T, g["1.b"]
    for ours, theirs in ((g["0.W"], emb.weight.grad.numpy()), (gWx, tWx), (gWh, tWh),
                         (gb, tb), (g["2.W"].T, lin.weight.grad.numpy()),
                         (g["2.b"], lin.bias.grad.numpy())):
        np.testing.assert_allclose(ours, theirs, **TOL)
