"""Assignment 3 (NumPy editions): the recurrent layers, CaptioningRNN, the
CaptioningSolver and the COCO files, in xpnn's own modules and under the
course names. The expected arrays are the notebooks' printed values; the
snippets are written for these tests."""
from __future__ import annotations

import importlib
import json
import os

import numpy as np
import pytest

from xpnn import backend
from xpnn.captioning import CaptioningSolver
from xpnn.data import decode_captions, image_from_url, load_coco_data, sample_coco_minibatch
from xpnn.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from xpnn.layers import recurrent as R
from xpnn.models.rnn import CaptioningRNN

from conftest import host


def _on(xb, *arrays):
    """The arrays on the test's backend (integers and booleans as they are)."""
    return [xb.asarray(a) for a in arrays]


def _ls(lo, hi, *shape):
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)


# ------------------------------------------------------------------ notebook values
def test_rnn_and_lstm_forward_print_the_notebooks_values(xb):
    N, D, H = 3, 10, 4
    h = R.rnn_step_forward(*_on(xb, _ls(-0.4, 0.7, N, D), _ls(-0.2, 0.5, N, H),
                                   _ls(-0.1, 0.9, D, H), _ls(-0.3, 0.7, H, H),
                                   _ls(-0.2, 0.4, H)))[0]
    want = [[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
            [0.66854692, 0.79562378, 0.87755553, 0.92795967],
            [0.97934501, 0.99144213, 0.99646691, 0.99854353]]
    assert rel_error(host(h), np.array(want)) < 1e-8
    N, T, D, H = 2, 3, 4, 5
    h = R.rnn_forward(*_on(xb, _ls(-0.1, 0.3, N, T, D), _ls(-0.3, 0.1, N, H),
                              _ls(-0.2, 0.4, D, H), _ls(-0.4, 0.1, H, H),
                              _ls(-0.7, 0.1, H)))[0]
    want = [[[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
             [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
             [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
            [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
             [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
             [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]]
    assert rel_error(host(h), np.array(want)) < 1e-7
    N, D, H = 3, 4, 5
    nh, nc, _ = R.lstm_step_forward(*_on(xb, 
        _ls(-0.4, 1.2, N, D), _ls(-0.3, 0.7, N, H), _ls(-0.4, 0.9, N, H),
        _ls(-2.1, 1.3, D, 4 * H), _ls(-0.7, 2.2, H, 4 * H), _ls(0.3, 0.7, 4 * H)))
    want_h = [[0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
              [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
              [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]]
    want_c = [[0.32986176, 0.39145139, 0.451556, 0.51014116, 0.56717407],
              [0.66382255, 0.76674007, 0.87195994, 0.97902709, 1.08751345],
              [0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676]]
    assert rel_error(host(nh), np.array(want_h)) < 1e-7
    assert rel_error(host(nc), np.array(want_c)) < 1e-7
    N, D, H, T = 2, 5, 4, 3
    h = R.lstm_forward(*_on(xb, _ls(-0.4, 0.6, N, T, D), _ls(-0.4, 0.8, N, H),
                               _ls(-0.2, 0.9, D, 4 * H), _ls(-0.3, 0.6, H, 4 * H),
                               _ls(0.2, 0.7, 4 * H)))[0]
    want = [[[0.01764008, 0.01823233, 0.01882671, 0.0194232],
             [0.11287491, 0.12146228, 0.13018446, 0.13902939],
             [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
            [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
             [0.6704845, 0.69350089, 0.71486014, 0.7346449],
             [0.81733511, 0.83677871, 0.85403753, 0.86935314]]]
    assert rel_error(host(h), np.array(want)) < 1e-7


def test_word_embedding_forward_picks_rows(xb):
    x = np.asarray([[0, 3, 1, 2], [2, 1, 0, 3]])
    W = _ls(0, 1, 5, 3)
    out = host(R.word_embedding_forward(*_on(xb, x, W))[0])
    np.testing.assert_array_equal(out, W[x])
    with pytest.raises(ValueError, match=r"word indices must lie in \[0, 4\]"):
        R.word_embedding_forward(*_on(xb, x + 2, W))


@pytest.mark.parametrize("cell, lo, hi, want", [("rnn", -1.5, 0.3, 9.83235591003),
                                                 ("lstm", -0.5, 1.7, 9.82445935443)])
def test_captioning_rnn_loss_prints_the_notebooks_value(xb, cell, lo, hi, want):
    N, D, W, H, T = 10, 20, 30, 40, 13
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          cell_type=cell, dtype=np.float64)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=int(np.prod(v.shape))).reshape(v.shape)
    features = _ls(lo, hi, N, D)
    captions = (np.arange(N * T) % 3).reshape(N, T)
    loss, grads = model.loss(features, captions)
    assert abs(float(host(loss)) - want) < 1e-10
    assert set(grads) == set(model.params)


def test_temporal_softmax_loss_sanity_checks(capsys):
    """The notebook's three checks: about log(V) per kept step, summed over
    the T steps, times the kept fraction."""
    r = np.random.RandomState(0)

    def check(N, T, V, p):
        x = 0.001 * r.randn(N, T, V)
        y = r.randint(V, size=(N, T))
        mask = r.rand(N, T) <= p
        return float(R.temporal_softmax_loss(x, y, mask)[0])
    assert check(100, 1, 10, 1.0) == pytest.approx(np.log(10), abs=0.01)
    assert check(100, 10, 10, 1.0) == pytest.approx(10 * np.log(10), abs=0.05)
    assert check(2000, 10, 10, 0.1) == pytest.approx(np.log(10), abs=0.1)
    R.temporal_softmax_loss(np.zeros((2, 3, 4)), np.zeros((2, 3), dtype=int),
                            np.ones((2, 3), dtype=bool), verbose=True)
    assert capsys.readouterr().out == "dx_flat:  (6, 4)\n"


# ------------------------------------------------------------------ gradient checks
def _check(f, args, i, dout, grad, tol=1e-6):
    args = [a.copy() for a in args]

    def g(v):
        args[i] = v
        return f(*args)
    num = eval_numerical_gradient_array(g, args[i].copy(), dout)
    assert rel_error(num, host(grad)) < tol


def test_every_recurrent_backward_passes_a_float64_gradient_check(xb):
    r = np.random.RandomState(231)
    N, T, D, H, V, M = 3, 4, 5, 6, 7, 8
    # RNN step and sequence
    args = [r.randn(N, D), r.randn(N, H), r.randn(D, H), r.randn(H, H), r.randn(H)]
    out, cache = R.rnn_step_forward(*_on(xb, *args))
    dout = r.randn(*out.shape)
    grads = R.rnn_step_backward(*_on(xb, dout), cache)
    for i, g in enumerate(grads):
        _check(lambda *a: R.rnn_step_forward(*a)[0], args, i, dout, g)
    args = [r.randn(N, T, D), r.randn(N, H), r.randn(D, H), r.randn(H, H), r.randn(H)]
    out, cache = R.rnn_forward(*_on(xb, *args))
    dout = r.randn(*out.shape)
    for i, g in enumerate(R.rnn_backward(*_on(xb, dout), cache)):
        _check(lambda *a: R.rnn_forward(*a)[0], args, i, dout, g)
    # LSTM step: both outputs' gradients flow back
    args = [r.randn(N, D), r.randn(N, H), r.randn(N, H), r.randn(D, 4 * H),
            r.randn(H, 4 * H), r.randn(4 * H)]
    nh, nc, cache = R.lstm_step_forward(*_on(xb, *args))
    dh, dc = r.randn(N, H), r.randn(N, H)
    grads = R.lstm_step_backward(*_on(xb, dh, dc), cache)
    for i, g in enumerate(grads):
        args_i = [a.copy() for a in args]

        def f(v, i=i, args_i=args_i):
            args_i[i] = v
            h, c, _ = R.lstm_step_forward(*args_i)
            return h * dh + c * dc
        num = eval_numerical_gradient_array(f, args_i[i].copy(), np.ones((N, H)))
        assert rel_error(num, host(g)) < 1e-7, i
    args = [r.randn(N, T, D), r.randn(N, H), r.randn(D, 4 * H), r.randn(H, 4 * H),
            r.randn(4 * H)]
    out, cache = R.lstm_forward(*_on(xb, *args))
    dout = r.randn(*out.shape)
    for i, g in enumerate(R.lstm_backward(*_on(xb, dout), cache)):
        _check(lambda *a: R.lstm_forward(*a)[0], args, i, dout, g)
    # word embedding, temporal affine
    x, W = r.randint(V, size=(N, T)), r.randn(V, D)
    out, cache = R.word_embedding_forward(*_on(xb, x, W))
    dout = r.randn(*out.shape)
    _check(lambda W_: R.word_embedding_forward(x, W_)[0], [W], 0, dout,
           R.word_embedding_backward(*_on(xb, dout), cache))
    args = [r.randn(N, T, D), r.randn(D, M), r.randn(M)]
    out, cache = R.temporal_affine_forward(*_on(xb, *args))
    dout = r.randn(*out.shape)
    for i, g in enumerate(R.temporal_affine_backward(*_on(xb, dout), cache)):
        _check(lambda *a: R.temporal_affine_forward(*a)[0], args, i, dout, g)
    # the masked loss
    x, y, mask = r.randn(N, T, V), r.randint(V, size=(N, T)), r.rand(N, T) > 0.4
    _, dx = R.temporal_softmax_loss(*_on(xb, x, y, mask))
    num = eval_numerical_gradient(lambda v: float(R.temporal_softmax_loss(v, y, mask)[0]),
                                  x.copy(), verbose=False)
    assert rel_error(num, host(dx)) < 1e-7


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_captioning_rnn_gradients(cell):
    np.random.seed(231)
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3, "<START>": 1}
    model = CaptioningRNN(word_to_idx, input_dim=6, wordvec_dim=5, hidden_dim=4,
                          cell_type=cell, dtype=np.float64)
    features = np.random.randn(3, 6)
    captions = np.random.randint(4, size=(3, 5))
    loss, grads = model.loss(features, captions)
    for name in model.params:
        num = eval_numerical_gradient(lambda _: float(model.loss(features, captions)[0]),
                                      model.params[name], verbose=False)
        # entries near 1e-6 carry the numerical gradient's ~1e-11 noise: allclose
        np.testing.assert_allclose(host(grads[name]), num, rtol=1e-5, atol=1e-9, err_msg=name)


# ------------------------------------------------------------------ COCO files
def _write_coco(folder, r, n_train=50, n_val=10, T=9, D=24, words=None):
    """A small data set in the course's coco_captioning layout."""
    import h5py
    words = words or ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "sits",
                      "runs", "on", "the", "mat", "grass", "red", "big"]
    V = len(words)
    os.makedirs(folder, exist_ok=True)
    caps = {}
    for split, n in (("train", n_train), ("val", n_val)):
        c = np.zeros((n, T), dtype=np.int32)
        for i in range(n):
            length = r.randint(3, T - 1)
            c[i, 0] = 1
            c[i, 1:length] = r.randint(4, V, size=length - 1)
            c[i, length] = 2
        caps[split] = c
    with h5py.File(os.path.join(folder, "coco2014_captions.h5"), "w") as f:
        for split, n in (("train", n_train), ("val", n_val)):
            f[f"{split}_captions"] = caps[split]
            f[f"{split}_image_idxs"] = np.arange(n, dtype=np.int32)   # one caption per image
    for split, n in (("train", n_train), ("val", n_val)):
        feats = r.randn(n, D).astype(np.float32)
        for name in (f"{split}2014_vgg16_fc7_pca.h5", f"{split}2014_vgg16_fc7.h5"):
            with h5py.File(os.path.join(folder, name), "w") as f:
                f["features"] = feats
        with open(os.path.join(folder, f"{split}2014_urls.txt"), "w") as f:
            f.write("".join(f"http://images.example/{split}/{i}.jpg\n" for i in range(n)))
    with open(os.path.join(folder, "coco2014_vocab.json"), "w") as f:
        json.dump({"idx_to_word": words, "word_to_idx": {w: i for i, w in enumerate(words)}}, f)
    return caps


@pytest.fixture
def coco(tmp_path):
    pytest.importorskip("h5py", reason="h5py (the 'coco' extra) reads the COCO files")
    folder = tmp_path / "cs231n" / "datasets" / "coco_captioning"
    caps = _write_coco(str(folder), np.random.RandomState(0))
    return tmp_path, folder, caps


def test_load_coco_data_reads_the_course_layout(coco, monkeypatch):
    root, folder, caps = coco
    data = load_coco_data(str(folder))
    np.testing.assert_array_equal(data["train_captions"], caps["train"])
    assert data["train_features"].shape == (50, 24) and data["val_features"].shape == (10, 24)
    assert data["idx_to_word"][5] == "cat" and data["word_to_idx"]["<NULL>"] == 0
    assert data["train_urls"][3] == "http://images.example/train/3.jpg"
    np.random.seed(0)
    small = load_coco_data(str(folder), max_train=20)
    np.random.seed(0)
    mask = np.random.randint(50, size=20)
    np.testing.assert_array_equal(small["train_captions"], caps["train"][mask])
    monkeypatch.chdir(root)
    monkeypatch.delenv("XPNN_DATA", raising=False)
    assert load_coco_data()["val_captions"].shape == (10, 9)     # found where the course puts it
    os.remove(folder / "val2014_urls.txt")
    with pytest.raises(FileNotFoundError, match="lacks val2014_urls.txt.*coco_captioning.zip"):
        load_coco_data(str(folder))
    monkeypatch.chdir(folder)
    with pytest.raises(FileNotFoundError, match="coco_captioning.*not found.*coco_captioning.zip"):
        load_coco_data()


def test_the_2021_coco_utils_prints_its_base_dir(coco, capsys):
    _, folder, caps = coco
    mod = importlib.import_module("xpnn.compat.cs231n_2022.coco_utils")
    data = mod.load_coco_data(str(folder), max_train=5)
    assert capsys.readouterr().out == f"base dir  {folder}\n"
    assert data["train_captions"].shape == (5, 9)
    importlib.import_module("xpnn.compat.cs231n_2019.coco_utils").load_coco_data(str(folder))
    assert capsys.readouterr().out == ""


def test_minibatches_and_decoding(coco):
    _, folder, caps = coco
    data = load_coco_data(str(folder))
    np.random.seed(3)
    captions, feats, urls = sample_coco_minibatch(data, batch_size=4, split="val")
    np.random.seed(3)
    idx = np.random.choice(10, 4)
    np.testing.assert_array_equal(captions, caps["val"][idx])
    np.testing.assert_array_equal(feats, data["val_features"][idx])
    assert list(urls) == [f"http://images.example/val/{i}.jpg" for i in idx]
    words = data["idx_to_word"]
    text = decode_captions(np.array([1, 5, 7, 2, 0, 0]), words)
    assert text == "<START> cat sits <END>"
    assert decode_captions(np.array([[1, 5, 2, 6], [1, 0, 6, 0]]), words) == \
        ["<START> cat <END>", "<START> dog"]
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        sample_coco_minibatch(data, split="test")


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_captioning_rnn_overfits_50_captions(coco, cell, capsys):
    """The notebooks' overfitting cell at a small size: 50 captions, Adam,
    the loss falls below 0.5, and greedy sampling gives back the training
    captions."""
    _, folder, _ = coco
    data = load_coco_data(str(folder))
    np.random.seed(231)
    model = CaptioningRNN(data["word_to_idx"], input_dim=24, wordvec_dim=32, hidden_dim=64,
                          cell_type=cell, dtype=np.float64)
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=100, batch_size=25,
                              optim_config={"learning_rate": 5e-3}, lr_decay=0.995,
                              verbose=True, print_every=40)
    solver.train()
    assert len(solver.loss_history) == 200 and solver.epoch == 100
    assert solver.loss_history[-1] < 0.5 < solver.loss_history[0]
    assert solver.optim_configs["Wx"]["learning_rate"] == pytest.approx(5e-3 * 0.995 ** 100)
    out = capsys.readouterr().out
    assert "(Iteration 1 / 200) loss: " in out and "(Iteration 161 / 200) loss: " in out
    sampled = decode_captions(model.sample(data["train_features"][:10], max_length=9),
                              data["idx_to_word"])
    truth = decode_captions(data["train_captions"][:10, 1:], data["idx_to_word"])
    assert sum(s == t for s, t in zip(sampled, truth)) >= 8


def test_captioning_solver_refuses_what_it_does_not_take():
    model = CaptioningRNN({"<NULL>": 0, "a": 1}, input_dim=2, wordvec_dim=2, hidden_dim=2)
    with pytest.raises(ValueError, match="Unrecognized arguments num_epoch"):
        CaptioningSolver(model, {}, num_epoch=3)
    with pytest.raises(KeyError, match="load_coco_data"):
        CaptioningSolver(model, {})
    with pytest.raises(ValueError, match='Invalid cell_type "gru"'):
        CaptioningRNN({"<NULL>": 0}, cell_type="gru")


def test_image_from_url_reads_an_image_or_says_why_not(tmp_path, capsys):
    """As the course's: an image comes back as (H, W, 3) uint8; a fetch that
    fails prints 'URL Error: ', the reason and the url, and gives None."""
    from PIL import Image
    img = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    Image.fromarray(img).save(tmp_path / "a.png")
    np.testing.assert_array_equal(image_from_url((tmp_path / "a.png").as_uri()), img)
    assert image_from_url("http://127.0.0.1:9/none.jpg", timeout=2) is None
    out = capsys.readouterr().out
    assert out.startswith("URL Error:  ") and out.rstrip().endswith(" http://127.0.0.1:9/none.jpg")
    assert image_from_url((tmp_path / "missing.png").as_uri()) is None
    assert "URL Error:  " in capsys.readouterr().out


# ------------------------------------------------------------------ the editions
@pytest.mark.parametrize("edition", ["cs231n_2016", "cs231n_2017", "cs231n_2019",
                                     "cs231n_2022", "ece662"])
def test_assignment3_course_names(edition):
    ns: dict = {}
    exec(f"from xpnn.compat.{edition}.rnn_layers import *", ns)
    for name in R.__all__ + ["sigmoid", "np"]:
        assert name in ns, name
    assert ns["sigmoid"](np.array([0.0]))[0] == 0.5
    mod = importlib.import_module(f"xpnn.compat.{edition}.classifiers.rnn")
    assert mod.CaptioningRNN is CaptioningRNN and hasattr(mod, "affine_forward")
    solver = importlib.import_module(f"xpnn.compat.{edition}.captioning_solver")
    assert solver.CaptioningSolver.update_rules["sgd"] is importlib.import_module(
        f"xpnn.compat.{edition}.optim").sgd
    coco = importlib.import_module(f"xpnn.compat.{edition}.coco_utils")
    from xpnn.compat import _a3
    assert coco.load_coco_data is (load_coco_data if edition in ("cs231n_2016", "cs231n_2017",
                                                                 "cs231n_2019")
                                   else _a3.load_coco_data_2021)
    assert importlib.import_module(f"xpnn.compat.{edition}.image_utils").image_from_url \
        is image_from_url


def test_the_rnn_runs_the_same_on_every_backend():
    np.random.seed(0)
    word_to_idx = {"<NULL>": 0, "<START>": 1, "a": 2, "b": 3}
    feats, caps = np.random.randn(4, 6), np.random.randint(4, size=(4, 7))
    out = []
    for name in ("numpy", "array_api_strict"):
        with backend.use_backend(name):
            np.random.seed(1)
            model = CaptioningRNN(word_to_idx, input_dim=6, wordvec_dim=5, hidden_dim=8,
                                  cell_type="lstm", dtype=np.float64)
            loss, grads = model.loss(feats, caps)
            out.append((float(host(loss)), {k: host(v) for k, v in grads.items()},
                        model.sample(feats, max_length=5)))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-13)
    for k in out[0][1]:
        np.testing.assert_allclose(out[0][1][k], out[1][1][k], rtol=1e-11, atol=1e-14)
    np.testing.assert_array_equal(out[0][2], out[1][2])


def test_bad_sequences_are_refused_with_what_was_expected(xb):
    from xpnn.nn import LSTM, Embedding, Sequential, TemporalAffine
    from xpnn.solver import Solver
    with pytest.raises(ValueError, match="empty batch"):
        R.temporal_softmax_loss(*_on(xb, np.zeros((0, 3, 4)), np.zeros((0, 3), dtype=int),
                                     np.ones((0, 3), dtype=bool)))
    model = Sequential(Embedding(5, 3), LSTM(3, 4), TemporalAffine(4, 5), input_shape=(6,),
                       seed=0)
    r = np.random.RandomState(0)
    X, y = r.randint(5, size=(20, 6)), r.randint(5, size=(20, 6))
    X[3, 2] = 7                                      # a word past the table
    data = {"X_train": X, "y_train": y, "X_val": X[:5] % 5, "y_val": y[:5]}
    with pytest.raises(ValueError, match=r"X_train holds word indices in \[0, 7\] but the "
                                         r"model's Embedding has 5 words"):
        Solver(model, data, num_epochs=1, verbose=False).train()
    with pytest.raises(TypeError, match="reads word indices: X must hold integers"):
        model.loss(r.randn(2, 6))
    from xpnn.nn import Linear
    with pytest.raises(ValueError, match=r"layer 1: Embedding\(5, 3\) reads word indices, so "
                                         r"it must be the first layer"):
        Sequential(Linear(6, 6), Embedding(5, 3), LSTM(3, 4), TemporalAffine(4, 5),
                   input_shape=(6,))
    assert decode_captions(xb.asarray(np.array([[1, 2]])), ["<NULL>", "a", "<END>"]) == \
        ["a <END>"]


# ------------------------------------------------------------------ edges and bad input
def test_sequences_of_one_step_and_of_none(xb):
    """T = 1 is the step function; T = 0 gives (N, 0, H) and zero gradients
    (and a sequence of no words, a loss of 0)."""
    r = np.random.RandomState(4)
    for k, seq, back, step in ((1, R.rnn_forward, R.rnn_backward, R.rnn_step_forward),
                               (4, R.lstm_forward, R.lstm_backward, R.lstm_step_forward)):
        x, h0 = r.randn(3, 1, 5), r.randn(3, 2)
        Wx, Wh, b = r.randn(5, 2 * k), r.randn(2, 2 * k), r.randn(2 * k)
        h, _ = seq(*_on(xb, x, h0, Wx, Wh, b))
        extra = (np.zeros((3, 2)),) if k == 4 else ()
        want = step(*_on(xb, x[:, 0, :], h0, *extra, Wx, Wh, b))[0]
        np.testing.assert_allclose(host(h)[:, 0, :], host(want), rtol=1e-12)
        h, cache = seq(*_on(xb, np.zeros((3, 0, 5)), h0, Wx, Wh, b))
        assert tuple(h.shape) == (3, 0, 2)
        grads = back(xb.asarray(np.zeros((3, 0, 2))), cache)
        for g, a in zip(grads, (np.zeros((3, 0, 5)), h0, Wx, Wh, b)):
            assert tuple(g.shape) == a.shape and not host(g).any()
    loss, dx = R.temporal_softmax_loss(*_on(xb, np.zeros((2, 0, 4)), np.zeros((2, 0), int),
                                            np.ones((2, 0), bool)))
    assert float(host(loss)) == 0 and tuple(dx.shape) == (2, 0, 4)


def test_word_indices_at_the_edges_of_the_vocabulary(xb):
    """The last word is a word, one past it and -1 are not: refused by the
    embedding and by the loss, each naming the range it holds."""
    W = xb.asarray(np.arange(12.0).reshape(4, 3))
    out, _ = R.word_embedding_forward(xb.asarray(np.array([[3, 0]])), W)
    np.testing.assert_array_equal(host(out)[0], [[9, 10, 11], [0, 1, 2]])
    for bad, got in (([[4, 0]], r"\[0, 4\]"), ([[-1, 2]], r"\[-1, 2\]")):
        with pytest.raises(ValueError, match=r"^word_embedding_forward: word indices must lie "
                                             rf"in \[0, 3\] for W's 4 words, got values in {got}"):
            R.word_embedding_forward(xb.asarray(np.array(bad)), W)
    x, mask = xb.asarray(np.zeros((1, 2, 4))), xb.asarray(np.ones((1, 2), bool))
    R.temporal_softmax_loss(x, xb.asarray(np.array([[3, 0]])), mask)
    for bad, got in (([[4, 0]], r"\[0, 4\]"), ([[-1, 2]], r"\[-1, 2\]")):
        with pytest.raises(ValueError, match=r"^temporal_softmax_loss: word indices must lie "
                                             rf"in \[0, 3\] for 4 scores, got values in {got}"):
            R.temporal_softmax_loss(x, xb.asarray(np.array(bad)), mask)


def test_recurrent_functions_name_what_is_wrong(xb):
    """Each argument that is not an array or sits on another backend is
    named, and a wrong shape is described with the function's name."""
    other = "numpy" if xb.name != "numpy" else "array_api_strict"
    x, y, mask = np.zeros((2, 3, 4)), np.zeros((2, 3), int), np.ones((2, 3), bool)
    args = dict(x=x, y=y, mask=mask)
    for name in args:
        for value, msg in ((args[name].tolist(), f"argument '{name}' must be an array .*got "
                                                 "list"),
                           (backend.to_device(args[name], other), f"'{name}' is a {other} "
                                                                  "array")):
            bad = {k: (value if k == name else xb.asarray(v)) for k, v in args.items()}
            with pytest.raises(TypeError, match=msg):
                R.temporal_softmax_loss(**bad)
    with pytest.raises(ValueError, match=r"^temporal_softmax_loss: x must be 3-D scores "
                                         r"\(N, T, V\), got shape \(2, 3\)"):
        R.temporal_softmax_loss(*_on(xb, np.zeros((2, 3)), y, mask))
    with pytest.raises(ValueError, match=r"^temporal_softmax_loss: y and mask must have shape "
                                         r"\(2, 3\) to match x"):
        R.temporal_softmax_loss(*_on(xb, x, np.zeros((2, 2), int), mask))
    with pytest.raises(ValueError, match=r"^temporal_softmax_loss: y and mask must have shape"):
        R.temporal_softmax_loss(*_on(xb, x, y, np.ones((3, 3), bool)))
    words, W = np.zeros((2, 3), int), np.ones((5, 4))
    for name, value, msg in (("x", words.tolist(), "argument 'x' must be an array .*got list"),
                             ("W", W.tolist(), "argument 'W' must be an array .*got list"),
                             ("W", backend.to_device(W, other), f"'W' is a {other} array")):
        a = {**dict(x=xb.asarray(words), W=xb.asarray(W)), name: value}
        with pytest.raises(TypeError, match=msg):
            R.word_embedding_forward(**a)
    with pytest.raises(ValueError, match=r"^word_embedding_forward: W must be 2-D \(V, D\), "
                                         r"got shape \(5,\)"):
        R.word_embedding_forward(xb.asarray(words), xb.asarray(np.ones(5)))
    out, cache = R.word_embedding_forward(xb.asarray(words), xb.asarray(W))
    with pytest.raises(TypeError, match="argument 'dout' must be an array .*got list"):
        R.word_embedding_backward(np.ones((2, 3, 4)).tolist(), cache)
    with pytest.raises(TypeError, match=f"'dout' is a {other} array"):
        R.word_embedding_backward(backend.to_device(np.ones((2, 3, 4)), other), cache)
    with pytest.raises(ValueError, match=r"^word_embedding_backward: dout has shape \(2, 3, 5\)"):
        R.word_embedding_backward(xb.asarray(np.ones((2, 3, 5))), cache)


def test_temporal_softmax_loss_shifts_each_row_by_its_own_maximum(xb):
    """Scores of 1000 in one row and about 0 in another: finite, and the
    row near 0 keeps its probabilities (a shift by the largest score of the
    whole batch would underflow it to log(0))."""
    x = np.array([[[1000.0, 999.0, 998.0], [0.5, -0.5, 0.0]]])
    y, mask = np.array([[0, 2]]), np.ones((1, 2), bool)
    loss, dx = R.temporal_softmax_loss(*_on(xb, x, y, mask))
    p0 = np.exp([0.0, -1.0, -2.0]) / np.exp([0.0, -1.0, -2.0]).sum()
    p1 = np.exp(x[0, 1]) / np.exp(x[0, 1]).sum()
    assert float(host(loss)) == pytest.approx(-np.log(p0[0]) - np.log(p1[2]), rel=1e-12)
    np.testing.assert_allclose(host(dx)[0], [p0 - [1, 0, 0], p1 - [0, 0, 1]], atol=1e-12)


def test_word_embedding_backward_runs_the_backends_scatter(monkeypatch):
    """On NumPy the embedding's gradient is one scatter-add (the kernel), not
    a (V, N*T) one-hot product; both give the same sums for repeated words."""
    from xpnn.backend import numpy as host_backend
    from conftest import record_calls
    log = []
    record_calls(monkeypatch, host_backend.NumpyKernels, "scatter_add_rows", log)
    words = np.array([[1, 1, 3], [0, 1, 3]])
    dout = np.arange(24.0).reshape(2, 3, 4)
    _, cache = R.word_embedding_forward(words, np.zeros((5, 4)))
    dW = R.word_embedding_backward(dout, cache)
    assert log == ["scatter_add_rows"]
    want = np.zeros((5, 4))
    np.add.at(want, words.ravel(), dout.reshape(6, 4))
    np.testing.assert_array_equal(dW, want)


def _tiny_data(n=7, T=5, D=3, V=6, seed=0):
    """Captioning data in load_coco_data's layout, without files."""
    r = np.random.RandomState(seed)
    caps = r.randint(1, V, size=(n, T))
    return {"train_captions": caps, "train_image_idxs": np.arange(n),
            "train_features": r.randn(n, D), "train_urls": np.array([f"u{i}" for i in range(n)]),
            "word_to_idx": {"<NULL>": 0, **{f"w{i}": i for i in range(1, V)}}}


class _Recorder:
    """A captioning model that records each loss call: the batch size, and
    the solver's epoch and learning rate when it was called."""

    def __init__(self):
        self.params = {"w": np.zeros(2)}
        self.calls, self.solver, self.losses = [], None, []

    def loss(self, features, captions):
        cfg = self.solver.optim_configs["w"]
        self.calls.append((captions.shape[0], self.solver.epoch, cfg.get("learning_rate")))
        loss = float(len(self.calls)) / 7
        self.losses.append(loss)
        return loss, {"w": np.ones(2)}


def test_captioning_solver_iterations_batches_and_decay(capsys):
    """Each iteration draws batch_size captions; an epoch is captions //
    batch_size iterations (at least one); the rate decays once after each
    epoch; print_every=1 prints every iteration's own loss."""
    data = _tiny_data()
    model = _Recorder()
    solver = CaptioningSolver(model, data, batch_size=2, num_epochs=2, lr_decay=0.5,
                              optim_config={"learning_rate": 1.0}, print_every=1)
    assert (solver.epoch, solver.best_val_acc, solver.best_params, solver.loss_history,
            solver.train_acc_history, solver.val_acc_history) == (0, 0, {}, [], [], [])
    model.solver = solver
    solver.train()
    assert model.calls == [(2, 0, 1.0)] * 3 + [(2, 1, 0.5)] * 3     # 7 // 2 = 3 a epoch
    assert solver.epoch == 2 and solver.optim_configs["w"]["learning_rate"] == 0.25
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"(Iteration {t + 1} / 6) loss: {model.losses[t]:f}" for t in range(6)]
    assert solver.loss_history == model.losses
    small = _Recorder()
    s2 = CaptioningSolver(small, data, batch_size=50, num_epochs=3, verbose=False,
                          optim_config={"learning_rate": 1.0})
    small.solver = s2
    s2.train()
    assert [c[:2] for c in small.calls] == [(50, 0), (50, 1), (50, 2)]   # one per epoch
    assert capsys.readouterr().out == ""


def test_captioning_solver_limits_and_defaults():
    import inspect
    data = _tiny_data()
    s = CaptioningSolver(_Recorder(), data)
    assert (s.batch_size, s.num_epochs, s.print_every, s.lr_decay, s.verbose,
            s.update_rule_name) == (100, 10, 10, 1.0, True, "sgd")
    one = _Recorder()
    s = CaptioningSolver(one, data, batch_size=1, num_epochs=0, verbose=False)
    one.solver = s
    s.train()
    assert one.calls == [] and s.loss_history == []
    for kw, msg in ((dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
                    (dict(num_epochs=-1), "num_epochs must be an integer >= 0, got -1")):
        with pytest.raises(ValueError, match=f"^CaptioningSolver: {msg}"):
            CaptioningSolver(_Recorder(), data, **kw)
    assert str(inspect.signature(CaptioningRNN.sample)) == "(self, features, max_length=30)"
    sig = inspect.signature(CaptioningRNN.__init__)
    assert {k: v.default for k, v in list(sig.parameters.items())[2:]} == dict(
        input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn", dtype=np.float32)


def _course_a3_adam(x, dx, config):
    """Assignment 3's optim.adam as the course's file computes it (written
    out here as the reference): t from 0, advanced first, the bias
    correction folded into alpha, x updated in place."""
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(x))
    config.setdefault("v", np.zeros_like(x))
    config.setdefault("t", 0)
    b1, b2, eps = config["beta1"], config["beta2"], config["epsilon"]
    config["t"] += 1
    t = config["t"]
    config["m"] = b1 * config["m"] + (1 - b1) * dx
    config["v"] = b2 * config["v"] + (1 - b2) * (dx * dx)
    alpha = config["learning_rate"] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    x -= alpha * (config["m"] / (np.sqrt(config["v"]) + eps))
    return x, config


@pytest.mark.parametrize("edition", ["cs231n_2016", "cs231n_2017", "cs231n_2019",
                                     "cs231n_2022", "ece662"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_each_editions_captioning_solver_uses_assignment_3s_own_adam(edition, dtype):
    """The course's captioning solver imports assignment 3's optim.py, whose
    adam is not assignment 2's (xpnn's own CaptioningSolver keeps xpnn's):
    the same parameters after three steps as the course's formula, bit for
    bit in float64 and float32, on a real CaptioningRNN; 2016-19 have only
    sgd and adam, 2021 on also sgd_momentum and rmsprop. (On NumPy: the
    reference is the course's NumPy code.)"""
    with backend.use_backend("numpy"):
        _assignment_3s_adam_against_the_course(edition, dtype)


def _assignment_3s_adam_against_the_course(edition, dtype):
    mod = importlib.import_module(f"xpnn.compat.{edition}.captioning_solver")
    rnn = importlib.import_module(f"xpnn.compat.{edition}.classifiers.rnn")
    data = _tiny_data(n=8, V=6, D=4)
    np.random.seed(3)
    model = rnn.CaptioningRNN(data["word_to_idx"], input_dim=4, wordvec_dim=3, hidden_dim=5,
                              cell_type="lstm", dtype=dtype)
    ref = {k: v.copy() for k, v in model.params.items()}
    s = mod.CaptioningSolver(model, data, update_rule="adam", batch_size=4, num_epochs=3,
                             optim_config={"learning_rate": 5e-2}, verbose=False)
    np.random.seed(5)
    s.train()
    configs = {k: {"learning_rate": 5e-2} for k in ref}
    twin = rnn.CaptioningRNN(data["word_to_idx"], input_dim=4, wordvec_dim=3, hidden_dim=5,
                             cell_type="lstm", dtype=dtype)
    np.random.seed(5)
    for _ in range(6):
        twin.params = {k: v.copy() for k, v in ref.items()}
        idx = np.random.choice(8, 4)
        _, grads = twin.loss(data["train_features"][data["train_image_idxs"][idx]],
                             data["train_captions"][idx])
        for k in ref:
            ref[k], configs[k] = _course_a3_adam(ref[k], grads[k], configs[k])
    for k in ref:
        assert model.params[k].dtype == dtype
        np.testing.assert_array_equal(model.params[k], ref[k], err_msg=k)
    assert s.optim_configs["Wx"]["t"] == 6
    assert set(mod.CaptioningSolver.update_rules) == (
        {"sgd", "adam"} if edition in ("cs231n_2016", "cs231n_2017", "cs231n_2019")
        else {"sgd", "sgd_momentum", "rmsprop", "adam"})
    with pytest.raises(ValueError, match="unknown update rule 'nadam'"):
        mod.CaptioningSolver(model, data, update_rule="nadam")


def test_captioning_rnn_draws_its_weights_as_the_course_does():
    """W_embed randn(V, W) / 100, W_proj randn(D, H) / sqrt(D), Wx randn(W,
    kH) / sqrt(W), Wh randn(H, kH) / sqrt(H), W_vocab randn(H, V) / sqrt(H),
    in that order from NumPy's global RNG; biases zero; the vocabulary
    kept both ways."""
    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, "cat": 3}
    np.random.seed(11)
    m = CaptioningRNN(words, input_dim=5, wordvec_dim=3, hidden_dim=2, cell_type="lstm",
                      dtype=np.float64)
    r = np.random.RandomState(11)
    want = {"W_embed": r.randn(4, 3) / 100, "W_proj": r.randn(5, 2) / np.sqrt(5),
            "Wx": r.randn(3, 8) / np.sqrt(3), "Wh": r.randn(2, 8) / np.sqrt(2),
            "W_vocab": r.randn(2, 4) / np.sqrt(2)}
    for k, v in want.items():
        np.testing.assert_array_equal(host(m.params[k]), v)
    for k in ("b_proj", "b", "b_vocab"):
        assert not host(m.params[k]).any()
    assert m.word_to_idx is words and m.idx_to_word == {0: "<NULL>", 1: "<START>", 2: "<END>",
                                                        3: "cat"}
    with pytest.raises(TypeError, match="word_to_idx must be a dict"):
        CaptioningRNN([("<NULL>", 0)])
    with pytest.raises(ValueError, match="'<NULL>'"):
        CaptioningRNN({"a": 0})
    for f, c, msg in ((np.zeros(5), np.zeros((1, 4), int),
                       r"features must be \(N, 5\) \(input_dim 5\), got \(5,\)"),
                      (np.zeros((2, 5)), np.zeros(4, int),
                       r"captions must be \(N, T\) for the features' N = 2, got \(4,\)"),
                      (np.zeros((2, 5)), np.zeros((3, 4), int),
                       r"captions must be \(N, T\) for the features' N = 2, got \(3, 4\)")):
        with pytest.raises(ValueError, match=r"^CaptioningRNN.loss: " + msg):
            m.loss(f, c)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sampling_is_the_greedy_decode_written_out(cell):
    """sample() against the greedy loop written out from the step functions,
    with every bias nonzero; int32 captions."""
    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, 30)}}
    np.random.seed(2)
    m = CaptioningRNN(words, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type=cell,
                      dtype=np.float64)
    r = np.random.RandomState(3)
    for k in ("b_proj", "b", "b_vocab"):
        m.params[k] = backend.to_device(2 * r.randn(*m.params[k].shape))
    feats = r.randn(3, 4)
    got = m.sample(feats, max_length=6)
    assert got.dtype == np.int32 and got.shape == (3, 6)
    p = {k: host(v) for k, v in m.params.items()}
    h = feats @ p["W_proj"] + p["b_proj"]
    c = np.zeros_like(h)
    w = np.full(3, 1)
    want = []
    for _ in range(6):
        x = p["W_embed"][w]
        if cell == "rnn":
            h = np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        else:
            h, c, _ = R.lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
        w = np.argmax(h @ p["W_vocab"] + p["b_vocab"], axis=1)
        want.append(w)
    np.testing.assert_array_equal(got, np.stack(want, axis=1))


def test_captioning_rnn_defaults_as_the_course(monkeypatch):
    """CaptioningRNN(word_to_idx) is 512 -> 128 -> 128 and an RNN; sample()
    gives 30 words; features of the wrong rank are refused even when their
    length matches the captions'."""
    words = {"<NULL>": 0, "<START>": 1, "a": 2}
    m = CaptioningRNN(words)
    shapes = {k: tuple(v.shape) for k, v in m.params.items()}
    assert shapes == {"W_embed": (3, 128), "W_proj": (512, 128), "b_proj": (128,),
                      "Wx": (128, 128), "Wh": (128, 128), "b": (128,), "W_vocab": (128, 3),
                      "b_vocab": (3,)}
    assert m.cell_type == "rnn" and host(m.params["Wx"]).dtype == np.float32
    assert m.sample(np.zeros((2, 512), np.float32)).shape == (2, 30)
    with pytest.raises(ValueError, match=r"^CaptioningRNN.loss: features must be \(N, 512\) "
                                         r"\(input_dim 512\), got \(2,\)"):
        m.loss(np.zeros(2), np.zeros((2, 4), int))


def test_recurrent_shapes_are_named_by_the_function_that_was_called(xb):
    """Every recurrent function names itself and what it expected for an
    input of the wrong rank; an output layer's weights must match its
    input's width."""
    r = np.random.RandomState(0)
    x3, x2, h = r.randn(2, 3, 4), r.randn(2, 4), r.randn(2, 5)
    Wx1, Wh1, b1 = r.randn(4, 5), r.randn(5, 5), r.randn(5)
    Wx4, Wh4, b4 = r.randn(4, 20), r.randn(5, 20), r.randn(20)
    cases = [
        (R.rnn_step_forward, (x3, h, Wx1, Wh1, b1), r"x must be 2-D \(N, D\) \(or \(D,\), "
                                                    r"one input for every row\)"),
        (R.rnn_step_forward, (x2, x3, Wx1, Wh1, b1), r"prev_h must be 2-D \(N, H\)"),
        (R.lstm_step_forward, (x3, h, h, Wx4, Wh4, b4), r"x must be 2-D \(N, D\) \(or \(D,\)"
                                                        r", one input for every row\)"),
        (R.rnn_forward, (x2, h, Wx1, Wh1, b1), r"x must be 3-D \(N, T, D\)"),
        (R.rnn_forward, (x3, x3, Wx1, Wh1, b1), r"h0 must be 2-D \(N, H\)"),
        (R.lstm_forward, (x2, h, Wx4, Wh4, b4), r"x must be 3-D \(N, T, D\)"),
        (R.lstm_forward, (x3, x3, Wx4, Wh4, b4), r"h0 must be 2-D \(N, H\)"),
        (R.temporal_affine_forward, (x2, Wx1, b1), r"x must be 3-D \(N, T, D\)"),
        (R.temporal_affine_forward, (x3, x3, b1), r"w must be 2-D \(D, M\)"),
    ]
    for fn, args, msg in cases:
        with pytest.raises(ValueError, match=rf"^{fn.__name__}: {msg}, got shape"):
            fn(*_on(xb, *args))
    with pytest.raises(ValueError, match=r"^temporal_affine_forward: x \(2, 3, 4\) needs w "
                                         r"\(4, M\) and b \(M,\)"):
        R.temporal_affine_forward(*_on(xb, x3, r.randn(3, 5), b1))
    next_h, next_c, cache = R.lstm_step_forward(*_on(xb, x2, h, h, Wx4, Wh4, b4))
    with pytest.raises(TypeError, match="argument 'dnext_c' must be an array .*got list"):
        R.lstm_step_backward(next_h, np.zeros((2, 5)).tolist(), cache)
    with pytest.raises(ValueError, match=r"^lstm_step_backward: dout has shape \(2, 4\)"):
        R.lstm_step_backward(next_h, xb.asarray(np.zeros((2, 4))), cache)
    for fn, k in ((R.rnn_forward, 1), (R.lstm_forward, 4)):     # the step's checks, named
        with pytest.raises(ValueError, match=rf"^{fn.__name__}: "):
            fn(*_on(xb, x3, h, r.randn(3, 5 * k), r.randn(5, 5 * k), r.randn(5 * k)))


def test_an_empty_sequence_keeps_the_states_dtype():
    for fwd, k in ((R.rnn_forward, 1), (R.lstm_forward, 4)):
        h, _ = fwd(np.zeros((2, 0, 3), np.float32), np.zeros((2, 4), np.float32),
                   np.zeros((3, 4 * k), np.float32), np.zeros((4, 4 * k), np.float32),
                   np.zeros(4 * k, np.float32))
        assert h.dtype == np.float32 and h.shape == (2, 0, 4)


# ------------------------------------------------------------------ what the course accepts
def test_a_step_takes_one_input_for_every_row_as_the_courses_formula_broadcasts(xb):
    """A student's sample() feeds W_embed[start] (D,) to the step with
    prev_h (N, H); the course's formula broadcasts it. The step gives every
    row that input's result, and its backward the gradient of the one
    input (the sum over rows), checked numerically in float64."""
    r = np.random.RandomState(4)
    N, D, H = 3, 5, 4
    x1, h = r.randn(D), r.randn(N, H)
    for fwd, bwd, k in ((R.rnn_step_forward, R.rnn_step_backward, 1),
                        (R.lstm_step_forward, R.lstm_step_backward, 4)):
        Wx, Wh, b = r.randn(D, k * H), r.randn(H, k * H), r.randn(k * H)
        extra = (r.randn(N, H),) if k == 4 else ()
        args = [x1, h, *extra, Wx, Wh, b]
        out = fwd(*_on(xb, *args))
        full = fwd(*_on(xb, np.tile(x1, (N, 1)), h, *extra, Wx, Wh, b))
        np.testing.assert_allclose(host(out[0]), host(full[0]), rtol=1e-12)
        dh = r.randn(N, H)
        douts = (dh, r.randn(N, H)) if k == 4 else (dh,)
        grads = bwd(*_on(xb, *douts), out[-1])
        assert tuple(grads[0].shape) == (D,)

        def f(*a, k=k, douts=douts):
            o = fwd(*a)
            return sum(np.sum(host(o[j]) * douts[j]) for j in range(len(douts)))
        for i, gi in ((0, 0), (len(args) - 3, -3)):        # x, and Wx
            num = eval_numerical_gradient(lambda v, i=i: f(*[v if j == i else a
                                                             for j, a in enumerate(args)]),
                                          args[i].copy(), verbose=False)
            assert rel_error(num, host(grads[gi])) < 1e-7


def test_an_lstm_step_from_a_zero_cell_state_given_as_0(xb):
    """prev_c = 0 (a number) is a zero cell state of prev_h's shape, as the
    course's ``f * prev_c`` broadcasts it; 0.5 likewise."""
    r = np.random.RandomState(5)
    x, h = r.randn(2, 3), r.randn(2, 4)
    Wx, Wh, b = r.randn(3, 16), r.randn(4, 16), r.randn(16)
    for value in (0, 0.5, np.float64(0.0)):
        got = R.lstm_step_forward(*_on(xb, x, h), value, *_on(xb, Wx, Wh, b))
        want = R.lstm_step_forward(*_on(xb, x, h, np.full((2, 4), float(value)), Wx, Wh, b))
        for g, w in zip(got[:2], want[:2]):
            np.testing.assert_array_equal(host(g), host(w))


def test_a_boolean_or_0_1_mask_scores_the_same_steps(xb):
    r = np.random.RandomState(6)
    x, y = r.randn(3, 4, 5), r.randint(5, size=(3, 4))
    keep = r.rand(3, 4) < 0.6
    base = R.temporal_softmax_loss(*_on(xb, x, y, keep))
    for mask in (keep.astype(np.int64), keep.astype(np.float64)):
        loss, dx = R.temporal_softmax_loss(*_on(xb, x, y, mask))
        assert float(host(loss)) == float(host(base[0]))
        np.testing.assert_array_equal(host(dx), host(base[1]))


def test_captioning_loss_history_keeps_the_models_dtype(xb, capsys):
    """The course's loss_history holds what the model's loss returned: a
    float32 model's np.float32 (COCO's features are float32), whose print
    shows a float32's digits."""
    data = {"train_captions": np.array([[1, 3, 2, 0]] * 4), "train_image_idxs": np.arange(4),
            "train_urls": np.array(["u"] * 4)}
    for dtype in (np.float32, np.float64):
        data["train_features"] = np.random.RandomState(0).randn(4, 3).astype(dtype)
        np.random.seed(0)
        model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3}, input_dim=3,
                              wordvec_dim=2, hidden_dim=4, dtype=dtype)
        s = CaptioningSolver(model, data, batch_size=2, num_epochs=2, print_every=1)
        s.train()
        assert len(s.loss_history) == 4
        assert all(type(v) is dtype for v in s.loss_history), [type(v) for v in s.loss_history]
    assert s.check_accuracy(data["train_features"], data["train_captions"]) == 0.0
