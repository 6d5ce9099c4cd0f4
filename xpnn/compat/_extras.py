"""Course helpers that xpnn's own API does not name, each a thin wrapper:
the other names of the fast convolution and pooling, the blob-style
gradient check, the data loaders for Tiny ImageNet, the ImageNet
validation sample and saved models, and two image-grid helpers."""
from __future__ import annotations

import io
import os
import zipfile
from math import ceil, sqrt

import numpy as np

from ..backend import to_numpy
from ..data import DATA_FOLDERS, _BatchUnpickler, find_dataset
from ..gradient_check import eval_numerical_gradient_blobs
from ..layers import (conv_backward_fast, conv_forward_fast, max_pool_backward_fast,
                      max_pool_forward_fast)

# ------------------------------------------------------------------ other names
# The course's fast_layers names its strided and reshape variants; xpnn's
# fast layers cover every case they do (any stride; tiling or not).
conv_forward_strides = conv_forward_fast
conv_backward_strides = conv_backward_fast
max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_fast


def eval_numerical_gradient_net(net, inputs, output, h=1e-5):
    """Numerical gradients of a blob-style layer object (``net.forward()``
    reads its input blobs): one array per input blob, against ``output``'s
    upstream gradient."""
    return eval_numerical_gradient_blobs(lambda *args: net.forward(), inputs, output, h=h)


# ------------------------------------------------------------------ image grids
def _normalise(G):
    lo, hi = G.min(), G.max()
    return (G - lo) / (hi - lo) if hi > lo else np.zeros_like(G)


def vis_grid(Xs):
    """Images (N, H, W, C) on a square grid, one pixel apart, the gaps at
    the smallest value, the whole rescaled to [0, 1]."""
    Xs = np.asarray(to_numpy(Xs), dtype=np.float64)
    if Xs.ndim != 4:
        raise ValueError(f"vis_grid expects images (N, H, W, C), got shape {Xs.shape}")
    N, H, W, C = Xs.shape
    side = int(ceil(sqrt(N))) if N else 0
    G = np.full((side * (H + 1), side * (W + 1), C), Xs.min() if N else 0.0)
    for k in range(N):
        r, c = divmod(k, side)
        G[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W] = Xs[k]
    return _normalise(G)


def vis_nn(rows):
    """A list of rows, each a list of images (H, W, C) of one size, as one
    grid one pixel apart (gaps at the smallest value), rescaled to [0, 1]."""
    rows = [[np.asarray(to_numpy(im), dtype=np.float64) for im in row] for row in rows]
    if not rows or not rows[0]:
        raise ValueError("vis_nn expects a non-empty list of non-empty rows of images")
    H, W, C = rows[0][0].shape
    ncols = max(len(r) for r in rows)
    lo = min(im.min() for r in rows for im in r)
    G = np.full((len(rows) * (H + 1), ncols * (W + 1), C), lo)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            if im.shape != (H, W, C):
                raise ValueError(f"vis_nn: image ({i}, {j}) has shape {im.shape}, the first "
                                 f"has {(H, W, C)}")
            G[i * (H + 1):i * (H + 1) + H, j * (W + 1):j * (W + 1) + W] = im
    return _normalise(G)


# ------------------------------------------------------------------ loaders
def _read_image(path, dtype):
    from PIL import Image
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=dtype)
    return a.transpose(2, 0, 1)


def load_tiny_imagenet(path, dtype=np.float32, subtract_mean=True):
    """Tiny ImageNet (or a subset in its layout): ``wnids.txt``, ``words.txt``,
    ``train/<wnid>/images/*``, ``val/images`` with ``val/val_annotations.txt``
    and optionally ``test/images`` (+ ``test/test_annotations.txt``).

    Returns a dict: class_names (a list of name lists per class), X_train,
    y_train, X_val, y_val, X_test, y_test (None without annotations), all
    images (N, 3, 64, 64) of ``dtype``, and mean_image (subtracted from every
    split when subtract_mean)."""
    def lines(name):
        with open(os.path.join(path, name)) as fh:
            return [ln.rstrip("\n") for ln in fh if ln.strip()]
    if not os.path.isfile(os.path.join(path, "wnids.txt")):
        raise FileNotFoundError(f"{path!r} is not a Tiny ImageNet folder: no wnids.txt")
    wnids = [w.strip() for w in lines("wnids.txt")]
    label = {w: i for i, w in enumerate(wnids)}
    words = dict(ln.split("\t", 1) for ln in lines("words.txt"))
    class_names = [[n.strip() for n in words.get(w, w).split(",")] for w in wnids]

    X_train, y_train = [], []
    for w in wnids:
        folder = os.path.join(path, "train", w, "images")
        for f in sorted(os.listdir(folder)):
            X_train.append(_read_image(os.path.join(folder, f), dtype))
            y_train.append(label[w])

    def split(name, required):
        ann = os.path.join(path, name, f"{name}_annotations.txt")
        folder = os.path.join(path, name, "images")
        if not os.path.isdir(folder):
            if required:
                raise FileNotFoundError(f"{folder!r} is missing")
            return None, None
        if os.path.isfile(ann):
            pairs = [ln.split("\t")[:2] for ln in lines(os.path.join(name, f"{name}_annotations.txt"))]
            files = [p[0] for p in pairs]
            ys = np.array([label[p[1]] for p in pairs], dtype=np.int64)
        elif required:
            raise FileNotFoundError(f"{ann!r} is missing")
        else:
            files, ys = sorted(os.listdir(folder)), None
        X = np.stack([_read_image(os.path.join(folder, f), dtype) for f in files]) \
            if files else np.zeros((0, 3, 64, 64), dtype)
        return X, ys

    X_train = np.stack(X_train)
    y_train = np.array(y_train, dtype=np.int64)
    X_val, y_val = split("val", True)
    X_test, y_test = split("test", False)
    mean_image = X_train.mean(axis=0)
    if subtract_mean:
        X_train, X_val = X_train - mean_image, X_val - mean_image
        if X_test is not None:
            X_test = X_test - mean_image
    return {"class_names": class_names, "X_train": X_train, "y_train": y_train,
            "X_val": X_val, "y_val": y_val, "X_test": X_test, "y_test": y_test,
            "mean_image": mean_image}


def _read_npz_member(zf, name):
    """One array of an .npz; an object array (a pickled dict) goes through
    the restricted unpickler instead of pickle."""
    with zf.open(name) as fh:
        raw = io.BytesIO(fh.read())
    version = np.lib.format.read_magic(raw)
    shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                             else np.lib.format.read_array_header_2_0)(raw)
    if dtype.hasobject:
        return _BatchUnpickler(raw, encoding="latin1").load()
    raw.seek(0)
    return np.lib.format.read_array(raw, allow_pickle=False)


def load_imagenet_val(num=None, path=None):
    """The course's ImageNet validation sample ``imagenet_val_25.npz``:
    X (N, 224, 224, 3), y (N,), class_names (label -> name). The file is
    found as the data sets are (xpnn.data.find_dataset) unless ``path``;
    num keeps the first num images. Its label map is read with the
    restricted unpickler."""
    if path is None:
        path = os.path.join(find_dataset("", "imagenet_val_25.npz", DATA_FOLDERS),
                            "imagenet_val_25.npz")
    with zipfile.ZipFile(path) as zf:
        members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        X = _read_npz_member(zf, members["X"])
        y = _read_npz_member(zf, members["y"])
        label_map = _read_npz_member(zf, members["label_map"])
    if isinstance(label_map, np.ndarray):
        label_map = label_map.item()
    if num is not None:
        X, y = X[:num], y[:num]
    return X, y, label_map


def load_models(models_dir):
    """Every saved model in ``models_dir`` (xpnn model or checkpoint .npz
    files, see xpnn.checkpoint.save_model), by file name without extension.
    Pickled course models are not loaded: a pickle can run code."""
    from ..checkpoint import load_model
    models = {}
    for f in sorted(os.listdir(models_dir)):
        if f.endswith(".npz"):
            models[f[:-4]] = load_model(os.path.join(models_dir, f))
    return models
