"""The course helpers xpnn adds for the editions: other names of the fast
layers, the blob gradient check, image grids, and the loaders (on small
data sets written here)."""
from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from xpnn.compat import _extras
from xpnn.data import load_CIFAR_batch, load_pickle
from xpnn.layers import conv_forward_fast, max_pool_forward_fast

from conftest import host


def test_other_names_of_the_fast_layers_compute_the_same():
    r = np.random.RandomState(0)
    x, w, b = r.randn(2, 3, 8, 8), r.randn(4, 3, 3, 3), r.randn(4)
    p = {"stride": 1, "pad": 1}
    np.testing.assert_array_equal(_extras.conv_forward_strides(x, w, b, p)[0],
                                  conv_forward_fast(x, w, b, p)[0])
    q = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for f in (_extras.max_pool_forward_reshape, _extras.max_pool_forward_im2col):
        out, cache = f(x, q)
        np.testing.assert_array_equal(out, max_pool_forward_fast(x, q)[0])
        assert _extras.max_pool_backward_reshape(np.ones_like(out), cache).shape == x.shape


def test_eval_numerical_gradient_net_on_a_blob_layer():
    class Blob:
        def __init__(self, vals):
            self.vals, self.diffs = vals, np.zeros_like(vals)

    class Square:  # out = a * b, elementwise, reading its blobs
        def __init__(self, a, b):
            self.a, self.b = a, b

        def forward(self):
            return self.a.vals * self.b.vals

    r = np.random.RandomState(1)
    a, b = Blob(r.randn(3, 2)), Blob(r.randn(3, 2))
    dout = r.randn(3, 2)
    da, db = _extras.eval_numerical_gradient_net(Square(a, b), [a.vals, b.vals], dout)
    np.testing.assert_allclose(da, dout * b.vals, rtol=1e-7)
    np.testing.assert_allclose(db, dout * a.vals, rtol=1e-7)


def test_vis_grid_and_vis_nn():
    Xs = np.arange(5 * 2 * 3 * 1, dtype=float).reshape(5, 2, 3, 1) + 10
    G = _extras.vis_grid(Xs)
    assert G.shape == (3 * 3, 3 * 4, 1)                   # 3x3 cells of (2+1)x(3+1)
    assert G.min() == 0.0 and G.max() == 1.0
    np.testing.assert_allclose(G[0:2, 0:3, 0], (Xs[0, :, :, 0] - 10) / 29)
    assert G[2, 0, 0] == 0.0                              # a gap holds the minimum
    rows = [[Xs[0], Xs[1]], [Xs[2]]]
    V = _extras.vis_nn(rows)
    assert V.shape == (2 * 3, 2 * 4, 1)
    np.testing.assert_allclose(V[3:5, 0:3, 0], (Xs[2, :, :, 0] - 10) / (Xs[2].max() - 10))
    with pytest.raises(ValueError, match="image \\(0, 1\\) has shape"):
        _extras.vis_nn([[Xs[0], np.zeros((4, 4, 1))]])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_pickle_reads_data_and_refuses_code(tmp_path):
    data = {"model": [1, 2.5, "x"], "arr": np.arange(3)}
    got = load_pickle(io.BytesIO(pickle.dumps(data, protocol=2)))
    assert got["model"] == [1, 2.5, "x"] and list(got["arr"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="refusing to unpickle.*posix.system|refusing"):
        load_pickle(io.BytesIO(pickle.dumps(_Evil())))


def test_load_CIFAR_batch(tmp_path):
    r = np.random.RandomState(0)
    raw = r.randint(0, 256, size=(7, 3072)).astype(np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": raw, "labels": [1, 2, 3, 4, 5, 6, 7]}, protocol=2))
    X, y = load_CIFAR_batch(str(path))
    assert X.shape == (7, 32, 32, 3) and list(y) == [1, 2, 3, 4, 5, 6, 7]
    assert X[0, 0, 0, 0] == raw[0, 0] and X[0, 0, 0, 1] == raw[0, 1024]   # R, G planes


def _jpeg(path, value):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(path, quality=100)


def test_load_tiny_imagenet_on_a_small_set(tmp_path):
    wnids = ["n01", "n02"]
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (tmp_path / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tcat\nn99\tx\n")
    for i, w in enumerate(wnids):
        for k in range(3):
            _jpeg(str(tmp_path / "train" / w / "images" / f"{w}_{k}.JPEG"), 40 * i + 10 * k)
    ann = []
    for k in range(4):
        _jpeg(str(tmp_path / "val" / "images" / f"val_{k}.JPEG"), 200)
        ann.append(f"val_{k}.JPEG\t{wnids[k % 2]}\t0\t0\t63\t63")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    _jpeg(str(tmp_path / "test" / "images" / "test_0.JPEG"), 100)
    d = _extras.load_tiny_imagenet(str(tmp_path), subtract_mean=False)
    assert d["class_names"] == [["goldfish", "Carassius auratus"], ["cat"]]
    assert d["X_train"].shape == (6, 3, 64, 64) and d["X_train"].dtype == np.float32
    assert list(d["y_train"]) == [0, 0, 0, 1, 1, 1] and list(d["y_val"]) == [0, 1, 0, 1]
    assert d["X_test"].shape == (1, 3, 64, 64) and d["y_test"] is None
    c = _extras.load_tiny_imagenet(str(tmp_path))
    np.testing.assert_allclose(c["X_train"] + c["mean_image"], d["X_train"], atol=1e-4)
    with pytest.raises(FileNotFoundError, match="no wnids.txt"):
        _extras.load_tiny_imagenet(str(tmp_path / "train"))


def test_load_imagenet_val_reads_its_label_map_without_pickle(tmp_path, monkeypatch):
    X = np.zeros((3, 4, 4, 3), np.uint8)
    np.savez(tmp_path / "imagenet_val_25.npz", X=X, y=np.array([5, 1, 2]),
             label_map=np.array({1: "goldfish", 2: "cat", 5: "dog"}, dtype=object))
    monkeypatch.setenv("XPNN_DATA", str(tmp_path))
    Xs, y, names = _extras.load_imagenet_val(num=2)
    assert Xs.shape == (2, 4, 4, 3) and list(y) == [5, 1] and names[5] == "dog"
    np.savez(tmp_path / "evil.npz", X=X, y=np.array([1]),
             label_map=np.array([_Evil()], dtype=object))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system|refusing"):
        _extras.load_imagenet_val(path=str(tmp_path / "evil.npz"))


def test_load_models_reads_saved_models(tmp_path):
    from xpnn.checkpoint import save_model
    from xpnn.models import FullyConnectedNet
    m = FullyConnectedNet([4], input_dim=3, num_classes=2)
    save_model(m, str(tmp_path / "best.npz"))
    (tmp_path / "notes.txt").write_text("not a model")
    models = _extras.load_models(str(tmp_path))
    assert list(models) == ["best"]
    np.testing.assert_array_equal(host(models["best"].params["W1"]), host(m.params["W1"]))
