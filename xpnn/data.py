"""Data sets in N, C, H, W layout, with the course's loaders.

- :func:`get_digits_data`: the 8x8 handwritten digits that ship inside
  scikit-learn (no download), the default for ``xpnn train``.
- :func:`load_CIFAR10` / :func:`get_CIFAR10_data`: the CIFAR-10 python
  batches, read with an unpickler that accepts only the types the format
  holds, so a crafted file is refused instead of run.
- :func:`get_CINIC10_data`: the CINIC-10 image-folder layout
  ``<root>/{train,valid,test}/<class>/*.png``, optionally a class subset.
- :func:`load_coco_data`, :func:`sample_coco_minibatch`,
  :func:`decode_captions`: assignment 3's COCO captions and image features
  (HDF5 and JSON files in the course's ``coco_captioning`` layout; h5py, the
  ``coco`` extra, reads them).
"""
from __future__ import annotations

import io
import os
import pickle

import numpy as np

from . import backend
from .layers._util import check_int, check_number

__all__ = ["load_coco_data", "decode_captions", "sample_coco_minibatch", "image_from_url",
           "load_CIFAR10", "get_CIFAR10_data", "get_CINIC10_data", "get_digits_data",
           "CINIC10_CLASSES", "find_dataset", "DATA_FOLDERS", "DOWNLOADS", "load_CIFAR_batch",
           "load_pickle"]

CINIC10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


class _BatchUnpickler(pickle.Unpickler):
    """Allows only what a CIFAR-10 batch holds: builtins containers and the
    NumPy array reconstruction functions."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch "
                                     "holds only dicts, lists, bytes, str, int and arrays")


def _load_cifar_batch(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR-10 batch {path!r} is missing; expected the "
                                "'cifar-10-batches-py' folder with data_batch_1..5 and "
                                f"test_batch{_how_to_get('cifar-10-batches-py')}")
    try:
        with open(path, "rb") as fh:
            d = _BatchUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
        if not isinstance(d, dict):
            raise ValueError(f"it holds a {type(d).__name__}, expected a dict with 'data' "
                             "and 'labels'")
        X, Y = np.asarray(d["data"]), np.asarray(d["labels"])
        if X.dtype.kind not in "ui" or Y.dtype.kind not in "ui":
            raise ValueError(f"data ({X.dtype}) and labels ({Y.dtype}) must be integers")
        if X.ndim != 2 or X.shape[1] != 3072 or Y.shape != (X.shape[0],):
            raise ValueError(f"data has shape {X.shape} and labels {Y.shape}; expected "
                             "(n, 3072) pixel rows and n labels")
        if X.size and (X.min() < 0 or X.max() > 255):
            raise ValueError(f"pixel values lie in [{X.min()}, {X.max()}], expected [0, 255]")
        if Y.size and (Y.min() < 0 or Y.max() > 9):
            raise ValueError(f"labels lie in [{Y.min()}, {Y.max()}], expected 0..9")
        X = X.astype(np.uint8)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError,
            AttributeError, IndexError, MemoryError, OverflowError) as exc:
        raise ValueError(f"{path!r} is not a valid CIFAR-10 python batch: {exc}") from None
    X = X.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)
    return X, Y.astype(np.int64)


def load_CIFAR_batch(filename):
    """One CIFAR-10 python batch: (X (10000, 32, 32, 3) float64, y (10000,)),
    read with the restricted unpickler (a crafted file is refused)."""
    return _load_cifar_batch(filename)


def load_pickle(f):
    """Load a pickle the way the course helper does (latin-1 strings), but
    only the plain data the course files hold: dicts, lists, tuples,
    strings, numbers and NumPy arrays. Anything else (a class instance, a
    function) is refused with an error instead of being run."""
    data = f.read() if hasattr(f, "read") else open(f, "rb").read()
    try:
        return _BatchUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"refusing to unpickle: {exc}") from None
    except Exception as exc:  # a truncated or garbled pickle fails in many ways
        raise ValueError(f"not a readable pickle: {type(exc).__name__}: {exc}") from None


def _how_to_get(name):
    """Where data set ``name`` (a key of :data:`DOWNLOADS`) comes from, for an
    error about a folder that is not there."""
    page, command = DOWNLOADS[name]
    return f" (from {page}: {command} makes it in the working directory)"


def load_CIFAR10(root):
    """(X_train, y_train, X_test, y_test) from the CIFAR-10 python batches in
    ``root``; X as float64 (N, 32, 32, 3), as the course loader returns."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CIFAR-10 folder {root!r} does not exist; expected the "
                                f"extracted 'cifar-10-batches-py' folder"
                                f"{_how_to_get('cifar-10-batches-py')}")
    parts = [_load_cifar_batch(os.path.join(root, f"data_batch_{b}")) for b in range(1, 6)]
    Xtr = np.concatenate([p[0] for p in parts])
    Ytr = np.concatenate([p[1] for p in parts])
    Xte, Yte = _load_cifar_batch(os.path.join(root, "test_batch"))
    return Xtr, Ytr, Xte, Yte


def _split_and_center(X_train, y_train, X_val, y_val, X_test, y_test, subtract_mean):
    if subtract_mean:
        mean = X_train.mean(axis=0)
        X_train, X_val, X_test = X_train - mean, X_val - mean, X_test - mean
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val,
            "X_test": X_test, "y_test": y_test}


#: where the no-argument loaders look, after $XPNN_DATA, relative to the
#: working directory (the folders the course editions keep data sets in)
DATA_FOLDERS = ("datasets", "cs231n/datasets", "nndl/datasets", "utils/datasets",
                "ece662/datasets", ".")


#: where the data sets come from: the official page, and one command that
#: downloads and unpacks one into the folder find_dataset looks for
DOWNLOADS = {
    "cifar-10-batches-py": (
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        "curl -L https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz | tar -xz"),
    "coco_captioning": (
        "http://cs231n.stanford.edu/coco_captioning.zip (what the course's "
        "datasets/get_coco_captioning.sh fetches)",
        "curl -LO http://cs231n.stanford.edu/coco_captioning.zip && unzip coco_captioning.zip"),
    "CINIC-10": (
        "https://github.com/BayesWatch/cinic-10",
        "mkdir -p CINIC-10 && curl -L https://datashare.ed.ac.uk/bitstream/handle/10283/3192/"
        "CINIC-10.tar.gz | tar -xz -C CINIC-10"),
}


def find_dataset(name, marker, folders=DATA_FOLDERS):
    """The folder of data set ``name`` (e.g. 'cifar-10-batches-py'): the first
    of ``$XPNN_DATA/<name>``, ``$XPNN_DATA`` itself, then ``<folder>/<name>``
    for each of ``folders`` (relative to the working directory), that holds
    ``marker`` (a file or folder inside the data set). FileNotFoundError
    listing every place looked, and how to fix it, if none does."""
    places = []
    env = os.environ.get("XPNN_DATA")
    if env:
        places += [os.path.join(env, name), env]
    places += [os.path.normpath(os.path.join(f, name)) for f in folders]
    for place in places:
        if os.path.exists(os.path.join(place, marker)):
            return place
    raise FileNotFoundError(
        f"data set {name!r} not found; looked for {marker!r} in: " + ", ".join(
            repr(os.path.abspath(p)) for p in places) +
        f". Download and extract it into one of these, or set XPNN_DATA to the folder "
        f"that holds {name!r}" + (
            f"; from {DOWNLOADS[name][0]}, e.g. in the working directory: "
            f"{DOWNLOADS[name][1]}" if name in DOWNLOADS else ""))


def get_CIFAR10_data(cifar10_dir=None, num_training=49000, num_validation=1000,
                     num_test=1000, subtract_mean=True):
    """The course split: the first num_training training images for training,
    the next num_validation for validation, the first num_test test images;
    per-pixel mean of the training part subtracted; N, C, H, W layout.
    cifar10_dir None: found by :func:`find_dataset`."""
    if cifar10_dir is None:
        cifar10_dir = find_dataset("cifar-10-batches-py", "data_batch_1")
    X_train, y_train, X_test, y_test = load_CIFAR10(cifar10_dir)
    if num_training + num_validation > X_train.shape[0]:
        raise ValueError(f"num_training + num_validation = {num_training + num_validation} "
                         f"exceeds the {X_train.shape[0]} training images")
    X_val = X_train[num_training:num_training + num_validation]
    y_val = y_train[num_training:num_training + num_validation]
    X_train, y_train = X_train[:num_training], y_train[:num_training]
    X_test, y_test = X_test[:num_test], y_test[:num_test]
    data = _split_and_center(X_train, y_train, X_val, y_val, X_test, y_test, subtract_mean)
    for k in ("X_train", "X_val", "X_test"):
        data[k] = np.ascontiguousarray(data[k].transpose(0, 3, 1, 2))
    return data


def _read_png(path):
    from PIL import Image
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float64)
    except Exception as exc:
        raise ValueError(f"cannot read image {path!r}: {exc}") from None


def _load_cinic_split(root, split, classes, limit):
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        hint = _how_to_get("CINIC-10") if not os.path.exists(root) else ""
        raise FileNotFoundError(f"CINIC-10 split folder {folder!r} is missing; expected "
                                f"{root}/{{train,valid,test}}/<class>/*.png{hint}")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        cdir = os.path.join(folder, cls)
        if not os.path.isdir(cdir):
            raise FileNotFoundError(f"CINIC-10 class folder {cdir!r} is missing")
        files = sorted(f for f in os.listdir(cdir) if f.lower().endswith(".png"))
        if not files:
            raise ValueError(f"CINIC-10 class folder {cdir!r} holds no .png images")
        if limit is not None:
            files = files[:limit]
        for f in files:
            img = _read_png(os.path.join(cdir, f))
            if img.shape != (32, 32, 3):
                raise ValueError(f"image {os.path.join(cdir, f)!r} is {img.shape[1]}x"
                                 f"{img.shape[0]}; CINIC-10 images are 32x32 RGB")
            xs.append(img)
            ys.append(label)
    if not xs:
        raise ValueError(f"no .png images found under {folder!r} for classes {list(classes)}")
    return np.stack(xs).transpose(0, 3, 1, 2), np.asarray(ys, dtype=np.int64)


def get_CINIC10_data(root=None, classes=None, num_per_class=None, subtract_mean=True):
    """CINIC-10 from ``root/{train,valid,test}/<class>/*.png`` (root None:
    found by :func:`find_dataset`).

    classes: names of a subset (labels follow the given order), default all
    ten; num_per_class: read at most this many images per class and split
    (for quick experiments). Returns the course dict, N, C, H, W float64.
    """
    if root is None:
        root = find_dataset("CINIC-10", "train")
    classes = tuple(classes) if classes is not None else CINIC10_CLASSES
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice or not classes:
        raise ValueError(f"classes must name each class once, got {list(classes)}")
    if len(classes) < 2:   # one class: every prediction right, accuracy 1.0 says nothing
        raise ValueError(f"classes must name at least two classes to tell apart, got "
                         f"{list(classes)}; e.g. {','.join(CINIC10_CLASSES[:2])}")
    if num_per_class is not None and (isinstance(num_per_class, bool) or not isinstance(
            num_per_class, (int, np.integer)) or num_per_class < 1):
        raise ValueError(f"num_per_class must be a positive integer or None, got "
                         f"{num_per_class!r}")
    unknown = [c for c in classes if c not in CINIC10_CLASSES]
    if unknown:
        raise ValueError(f"unknown CINIC-10 classes {unknown}; valid are {list(CINIC10_CLASSES)}")
    parts = [_load_cinic_split(root, s, classes, num_per_class) for s in ("train", "valid",
                                                                          "test")]
    (Xtr, ytr), (Xva, yva), (Xte, yte) = parts
    return _split_and_center(Xtr, ytr, Xva, yva, Xte, yte, subtract_mean)


def get_digits_data(num_validation=270, num_test=270, subtract_mean=True, seed=0):
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes) as
    (N, 1, 8, 8) float64 scaled to [0, 1], shuffled with its own seeded RNG
    (NumPy's global state is untouched) and split into train/val/test."""
    from sklearn.datasets import load_digits
    for name, v in (("num_validation", num_validation), ("num_test", num_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    d = load_digits()
    X = (d.images / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    n = X.shape[0]
    if num_validation + num_test >= n:
        raise ValueError(f"num_validation + num_test must leave training images out of {n}")
    perm = np.random.RandomState(seed).permutation(n)
    X, y = X[perm], y[perm]
    te, va = slice(0, num_test), slice(num_test, num_test + num_validation)
    tr = slice(num_test + num_validation, n)
    return _split_and_center(X[tr], y[tr], X[va], y[va], X[te], y[te], subtract_mean)


# ------------------------------------------------------------------ COCO captions
#: the files of the course's coco_captioning folder
COCO_FILES = {"captions": "coco2014_captions.h5", "vocab": "coco2014_vocab.json",
              "train_urls": "train2014_urls.txt", "val_urls": "val2014_urls.txt"}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading the COCO captioning files needs h5py: pip install h5py "
                          "(from xpnn's own folder: pip install -e '.[coco]')") from None
    return h5py


def _memory_bytes():
    """This machine's physical memory in bytes (None where it cannot say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _gib(n):
    return f"{n / 2 ** 30:.1f} GiB"


def _open_h5(h5py, path):
    """An HDF5 file open for reading, or a ValueError naming it."""
    try:
        return h5py.File(path, "r")
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"load_coco_data: {path!r} is not a readable HDF5 file ({exc}); it is "
                         f"cut or not the course's: download it again "
                         f"({DOWNLOADS['coco_captioning'][0]})") from None


def _h5(path, what, fn):
    """``fn()``, an access to the HDF5 file ``path``; h5py's errors of a
    damaged file (OSError, KeyError, RuntimeError, ValueError, with no file
    name) become a ValueError naming it."""
    try:
        return fn()
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"load_coco_data: {path!r}: {what} cannot be read ({exc}); the file "
                         f"is damaged: download it again") from None


def _read_h5_array(h5py, f, path, key):
    """Dataset ``key`` of the open HDF5 file ``f`` as a NumPy array: its
    declared size is checked against the machine's memory and (when stored
    contiguously) against the file's size before anything is read."""
    keys = _h5(path, "its index", lambda: sorted(f.keys()))
    if key not in keys:
        raise KeyError(f"load_coco_data: {path!r} has no {key!r}; the course's file holds "
                       f"{', '.join(keys) or 'nothing'} ... download it again")
    ds = _h5(path, repr(key), lambda: f[key])
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"load_coco_data: {path!r}: {key!r} is a group, not an array")
    shape, dtype = _h5(path, repr(key), lambda: (tuple(ds.shape), ds.dtype))
    if dtype.kind not in "biuf":
        raise ValueError(f"load_coco_data: {path!r}: {key!r} holds {dtype}, not numbers")
    nbytes = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
    memory = _memory_bytes()
    if memory is not None and nbytes > memory:
        raise ValueError(f"load_coco_data: {path!r}: {key!r} declares a {shape} {dtype} "
                         f"array of {_gib(nbytes)}, more than this machine's {_gib(memory)} "
                         f"of memory; the file is damaged or not the course's")
    offset = _h5(path, repr(key), lambda: ds.id.get_offset())
    if offset is not None and offset + nbytes > os.path.getsize(path):
        raise ValueError(f"load_coco_data: {path!r} is cut: {key!r} declares {nbytes} bytes "
                         f"from byte {offset}, but the file has {os.path.getsize(path)}; "
                         f"download it again")
    return np.asarray(_h5(path, repr(key), lambda: ds[()]))


def _read_vocab(path):
    """(word_to_idx, idx_to_word) of the course's vocabulary JSON, checked:
    idx_to_word a list of distinct words, word_to_idx its inverse."""
    import json
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"load_coco_data: {path!r} is not the course's vocabulary JSON "
                         f"({exc}); download it again") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"load_coco_data: {path!r} holds a {type(vocab).__name__}, expected a "
                         f"JSON object with 'word_to_idx' and 'idx_to_word'")
    for key, kind in (("word_to_idx", dict), ("idx_to_word", list)):
        if not isinstance(vocab.get(key), kind):
            raise ValueError(f"load_coco_data: {path!r}: {key!r} must be a JSON "
                             f"{'object' if kind is dict else 'list'}, got "
                             f"{type(vocab.get(key)).__name__}")
    w2i, i2w = vocab["word_to_idx"], vocab["idx_to_word"]
    if len(w2i) != len(i2w) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(i2w)
            and i2w[i] == w for w, i in w2i.items()):
        raise ValueError(f"load_coco_data: {path!r}: 'word_to_idx' ({len(w2i)} words) and "
                         f"'idx_to_word' ({len(i2w)}) disagree; each must be the other's "
                         f"inverse")
    return w2i, i2w


def _read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return np.asarray([line.strip() for line in f])
    except UnicodeDecodeError as exc:
        raise ValueError(f"load_coco_data: {path!r} is not a text file of image urls ({exc})") \
            from None


def _kind(x):
    """NumPy's dtype kind of an array of any backend ('O' for a non-array)."""
    try:
        return np.dtype(backend.dtype_name(x)).kind if backend.is_array(x) else "O"
    except TypeError:
        return "O"


def _split_keys(data, split, where):
    """The keys of ``split`` ('train' or 'val') in captioning data: captions,
    image indices, features, urls; data not a dict, or a key missing, is an
    error naming ``where``."""
    if not isinstance(data, dict):
        raise TypeError(f"{where}: data must be the dict load_coco_data returns, got "
                        f"{type(data).__name__}")
    keys = [f"{split}_{k}" for k in ("captions", "image_idxs", "features", "urls")]
    for key in keys:
        if key not in data:
            raise KeyError(f"{where}: data has no {key!r} (load it with load_coco_data)")
    return keys


def check_captioning_split(data, split, where):
    """The ``split`` ('train' or 'val') of captioning data in
    :func:`xpnn.data.load_coco_data`'s layout, checked: captions (N, T)
    integer word indices, N >= 1; image_idxs (N,) integers indexing the
    features (M, D) and the urls (M,). Returns N. Each problem is a
    ValueError (KeyError for a missing key) naming ``where`` and the key."""
    keys = _split_keys(data, split, where)
    caps, idxs, feats, urls = (data[k] for k in keys)
    shape = {k: tuple(int(d) for d in getattr(data[k], "shape", ())) for k in keys}
    kinds = {k: _kind(data[k]) for k in keys}
    if len(shape[keys[0]]) != 2 or kinds[keys[0]] not in "iu" or not shape[keys[0]][0]:
        raise ValueError(f"{where}: data[{keys[0]!r}] must be integer word indices (N, T) with "
                         f"N >= 1, got shape {shape[keys[0]]}, dtype "
                         f"{getattr(caps, 'dtype', type(caps).__name__)}")
    n = shape[keys[0]][0]
    if shape[keys[1]] != (n,) or kinds[keys[1]] not in "iu":
        raise ValueError(f"{where}: data[{keys[1]!r}] must be ({n},) integers, an image for "
                         f"each of the {n} captions, got shape {shape[keys[1]]}, dtype "
                         f"{getattr(idxs, 'dtype', type(idxs).__name__)}")
    if len(shape[keys[2]]) != 2 or kinds[keys[2]] != "f":
        raise ValueError(f"{where}: data[{keys[2]!r}] must be floating image features (M, D), "
                         f"got shape {shape[keys[2]]}")
    if len(shape[keys[3]]) != 1:
        raise ValueError(f"{where}: data[{keys[3]!r}] must be one url per image (M,), got "
                         f"shape {shape[keys[3]]}")
    lo, hi = backend.label_range(idxs)
    images = min(shape[keys[2]][0], shape[keys[3]][0])
    if lo < 0 or hi >= images:
        raise ValueError(f"{where}: data[{keys[1]!r}] holds image indices in [{lo}, {hi}] but "
                         f"data[{keys[2]!r}] has {shape[keys[2]][0]} rows and data[{keys[3]!r}] "
                         f"{shape[keys[3]][0]} (indices must lie in [0, {images - 1}])")
    return n


def _check_coco(data, V, names):
    """Captions, image indices, features and urls of both splits agree."""
    for split in ("train", "val"):
        caps, idxs = f"{split}_captions", f"{split}_image_idxs"
        where = {caps: names["captions"], idxs: names["captions"],
                 f"{split}_features": names[f"{split}_features"],
                 f"{split}_urls": names[f"{split}_urls"]}
        try:
            check_captioning_split(data, split, "load_coco_data")
        except (KeyError, ValueError) as exc:
            files = list(dict.fromkeys(where[k] for k in where if repr(k) in str(exc))) or \
                [where[caps]]
            raise type(exc)(f"{exc.args[0]} (in {', '.join(map(repr, files))})") from None
        lo, hi = int(data[caps].min()), int(data[caps].max())
        if lo < 0 or hi >= V:
            raise ValueError(f"load_coco_data: {caps!r} in {names['captions']!r} holds word "
                             f"indices in [{lo}, {hi}], outside the vocabulary's [0, {V - 1}]")


def load_coco_data(base_dir=None, max_train=None, pca_features=True):
    """The course's COCO captioning data as a dict: ``train_captions`` /
    ``val_captions`` (word indices), ``train_image_idxs`` /
    ``val_image_idxs``, ``train_features`` / ``val_features`` (VGG-16 fc7,
    PCA-reduced unless ``pca_features`` is False), ``word_to_idx``,
    ``idx_to_word``, ``train_urls`` / ``val_urls``. ``max_train``: that many
    training captions drawn with replacement by ``np.random.randint``.
    base_dir None: the folder ``coco_captioning`` found by
    :func:`find_dataset` (where the course's download script puts it).

    Every file is checked as it is read (a missing, cut, random or crafted
    file, or one declaring an array larger than this machine's memory, is
    refused before it is read, naming the file and the key), and then the
    whole: captions are integer word indices of the vocabulary, each
    caption's image index is a row of the features and the urls,
    ``word_to_idx`` and ``idx_to_word`` are each other's inverse."""
    h5py = _h5py()
    if max_train is not None:
        max_train = check_int("load_coco_data: max_train", max_train, 1)
    if base_dir is None:
        base_dir = find_dataset("coco_captioning", COCO_FILES["captions"])
    suffix = "_pca" if pca_features else ""
    names = {"captions": COCO_FILES["captions"], "train_features": f"train2014_vgg16_fc7{suffix}.h5",
             "val_features": f"val2014_vgg16_fc7{suffix}.h5", "vocab": COCO_FILES["vocab"],
             "train_urls": COCO_FILES["train_urls"], "val_urls": COCO_FILES["val_urls"]}
    paths = {k: os.path.join(base_dir, n) for k, n in names.items()}
    missing = [names[k] for k, p in paths.items() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"load_coco_data: {os.path.abspath(base_dir)!r} lacks {', '.join(missing)}; the "
            f"course's download ({DOWNLOADS['coco_captioning'][0]}) holds them all")
    data = {}
    with _open_h5(h5py, paths["captions"]) as f:
        for k in _h5(paths["captions"], "its index", lambda: list(f.keys())):
            data[k] = _read_h5_array(h5py, f, paths["captions"], k)
    for split in ("train", "val"):
        with _open_h5(h5py, paths[f"{split}_features"]) as f:
            data[f"{split}_features"] = _read_h5_array(h5py, f, paths[f"{split}_features"],
                                                       "features")
    data["word_to_idx"], data["idx_to_word"] = _read_vocab(paths["vocab"])
    for split in ("train", "val"):
        data[f"{split}_urls"] = _read_lines(paths[f"{split}_urls"])
    _check_coco(data, len(data["idx_to_word"]), paths)
    if max_train is not None:
        mask = np.random.randint(data["train_captions"].shape[0], size=max_train)
        data["train_captions"] = data["train_captions"][mask]
        data["train_image_idxs"] = data["train_image_idxs"][mask]
    return data


def _word_of(idx_to_word):
    """idx -> word for a list (the course's) or a dict (CaptioningRNN's)."""
    if isinstance(idx_to_word, dict):
        return idx_to_word.get
    if isinstance(idx_to_word, (list, tuple, np.ndarray)):
        n = len(idx_to_word)
        return lambda i: idx_to_word[i] if 0 <= i < n else None
    raise TypeError(f"decode_captions: idx_to_word must be a list (or dict) of words, got "
                    f"{type(idx_to_word).__name__}")


def decode_captions(captions, idx_to_word):
    """Word-index captions (N, T), or one caption (T,), as strings: the words
    up to and with '<END>', '<NULL>' left out. The indices must be integers
    that ``idx_to_word`` (a list, or a dict) has words for."""
    if not backend.is_array(captions) and not isinstance(captions, (list, tuple)):
        raise TypeError(f"decode_captions: captions must be an array of word indices (N, T) "
                        f"or (T,), got {type(captions).__name__}")
    captions = np.asarray(backend.to_numpy(captions))
    if captions.dtype.kind not in "iu":
        raise TypeError(f"decode_captions: captions must hold integer word indices, got dtype "
                        f"{captions.dtype}")
    if captions.ndim not in (1, 2):
        raise ValueError(f"decode_captions: captions must be (N, T) or one caption (T,), got "
                         f"shape {captions.shape}")
    word_of = _word_of(idx_to_word)
    single = captions.ndim == 1
    rows = captions[None] if single else captions
    decoded = []
    for row in rows:
        words = []
        for idx in row:
            word = word_of(int(idx))
            if word is None:
                raise ValueError(f"decode_captions: word index {int(idx)} has no word in "
                                 f"idx_to_word ({len(idx_to_word)} words)")
            if word != "<NULL>":
                words.append(word)
            if word == "<END>":
                break
        decoded.append(" ".join(words))
    return decoded[0] if single else decoded


def sample_coco_minibatch(data, batch_size=100, split="train"):
    """(captions, image features, image urls) of ``batch_size`` captions of
    ``split`` drawn with replacement by ``np.random.choice``."""
    batch_size = check_int("sample_coco_minibatch: batch_size", batch_size, 1)
    if split not in ("train", "val"):
        raise ValueError(f"sample_coco_minibatch: split must be 'train' or 'val', got {split!r}")
    # the keys only: the whole check (check_captioning_split) reads every
    # image index, once per minibatch here
    caps, idxs, feats, urls = (data[k] for k in _split_keys(data, split,
                                                            "sample_coco_minibatch"))
    n = caps.shape[0] if getattr(caps, "ndim", 0) else 0
    if not n:
        raise ValueError(f"sample_coco_minibatch: data[{split + '_captions'!r}] holds no "
                         f"captions to draw from")
    mask = np.random.choice(n, batch_size)
    image_idxs = idxs[mask]
    try:
        return caps[mask], feats[image_idxs], urls[image_idxs]
    except IndexError as exc:
        raise IndexError(f"sample_coco_minibatch: data[{split + '_image_idxs'!r}] points past "
                         f"the features or urls ({exc})") from None


#: the most bytes image_from_url reads (a COCO image is a few hundred KB)
MAX_IMAGE_BYTES = 64 * 2 ** 20


def _watched_opener(sockets):
    """A urllib opener whose HTTP(S) connections record their sockets in
    ``sockets``, so a watchdog can end them at a deadline."""
    import http.client
    import urllib.request

    class HTTP(http.client.HTTPConnection):
        def connect(self):
            super().connect()
            sockets.append(self.sock)

    class HTTPS(http.client.HTTPSConnection):
        def connect(self):
            super().connect()
            sockets.append(self.sock)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(HTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(HTTPS, req, context=self._context)

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def _fetch(url, timeout):
    """The bytes at ``url`` within ``timeout`` seconds in all, headers and
    every chunk of the body included: a watchdog shuts the connection's
    sockets at the deadline (a server trickling a byte at a time is cut
    off there; the name lookup before connecting is the system's)."""
    import socket
    import threading
    sockets: list = []
    expired = threading.Event()

    def stop():
        expired.set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    watchdog = threading.Timer(timeout, stop)
    watchdog.daemon = True
    watchdog.start()
    late = TimeoutError(f"no whole image within timeout={timeout:g} s")
    try:
        with _watched_opener(sockets).open(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and \
                    int(length) > MAX_IMAGE_BYTES:
                raise ValueError(f"image_from_url: {url!r} declares {int(length)} bytes "
                                 f"(Content-Length), more than an image this function reads "
                                 f"({MAX_IMAGE_BYTES}); not downloading it")
            read = getattr(response, "read1", response.read)
            chunks, total = [], 0
            while True:
                chunk = read(65536)
                if expired.is_set():
                    raise late
                if not chunk:
                    return b"".join(chunks)
                total += len(chunk)
                if total > MAX_IMAGE_BYTES:
                    raise ValueError(f"image_from_url: {url!r} sends more than "
                                     f"{MAX_IMAGE_BYTES} bytes, more than an image this "
                                     f"function reads; stopped")
                chunks.append(chunk)
    except Exception:
        if expired.is_set():      # whatever the shut socket raised
            raise late from None
        raise
    finally:
        watchdog.cancel()


def image_from_url(url, timeout=10):
    """The image at ``url`` as an (H, W, 3) uint8 array (the captioning
    notebooks show COCO images from the web). As the course's: a failed
    fetch (offline, an HTTP error, or no whole image within ``timeout``
    seconds in all) prints ``URL Error:  <reason> <url>`` and returns None;
    the captions and their training need no images. What is not an image,
    an image larger than PIL's limit (a decompression bomb) and a body
    over 64 MiB are errors that say so."""
    import http.client
    import socket
    import urllib.error
    import warnings

    from PIL import Image

    if not isinstance(url, str):
        raise TypeError(f"image_from_url: url must be a string (an http or https address), "
                        f"got {type(url).__name__}")
    timeout = check_number("image_from_url: timeout", timeout, low=0.0, low_inclusive=False)
    try:
        raw = _fetch(url, timeout)
    except urllib.error.URLError as exc:
        print("URL Error: ", exc.reason, url)
        return None
    except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
        print("URL Error: ", exc, url)
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # PIL warns above MAX_IMAGE_PIXELS (an error here) and refuses
            # twice that, both when it reads the size, before decoding
            return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"image_from_url: {url!r} is an image of more pixels than PIL reads "
                         f"safely ({exc}; the limit is PIL.Image.MAX_IMAGE_PIXELS = "
                         f"{Image.MAX_IMAGE_PIXELS}): a decompression bomb, not a photo") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"image_from_url: {url!r} is not an image PIL can read "
                         f"({type(exc).__name__}: {exc})") from None

