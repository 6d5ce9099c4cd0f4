"""Data loaders on tiny files written in the real formats; no network."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from xpnn.data import get_CIFAR10_data, get_CINIC10_data, get_digits_data, load_CIFAR10


def _write_cifar(root, n=6, protocol=2):
    os.makedirs(root, exist_ok=True)
    r = np.random.RandomState(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {"batch_label": "tiny", "data": r.randint(0, 256, size=(n, 3072)).astype(np.uint8),
             "labels": [int(v) for v in r.randint(0, 10, size=n)], "filenames": ["a.png"] * n}
        with open(os.path.join(root, name), "wb") as fh:
            pickle.dump(d, fh, protocol=protocol)
        batches[name] = d
    return batches


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_cifar10(tmp_path, protocol):
    root = str(tmp_path / "cifar-10-batches-py")
    batches = _write_cifar(root, protocol=protocol)
    Xtr, ytr, Xte, yte = load_CIFAR10(root)
    assert Xtr.shape == (30, 32, 32, 3) and Xte.shape == (6, 32, 32, 3)
    first = batches["data_batch_1"]["data"][0]
    # rows are 1024 red, then green, then blue values in row-major order
    np.testing.assert_array_equal(Xtr[0, :, :, 0].ravel(), first[:1024])
    np.testing.assert_array_equal(Xtr[0, 0, 1, 2], first[2048 + 1])
    assert list(ytr[:6]) == batches["data_batch_1"]["labels"]
    data = get_CIFAR10_data(root, num_training=20, num_validation=5, num_test=4)
    assert data["X_train"].shape == (20, 3, 32, 32) and data["X_val"].shape == (5, 3, 32, 32)
    assert data["X_test"].shape == (4, 3, 32, 32)
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-10)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_crafted_cifar_pickle_is_refused(tmp_path):
    root = str(tmp_path / "c")
    _write_cifar(root)
    with open(os.path.join(root, "data_batch_3"), "wb") as fh:
        pickle.dump({"data": _Evil(), "labels": []}, fh)
    with pytest.raises(ValueError, match=r"data_batch_3.*refusing to load (posix|os)\.system"):
        load_CIFAR10(root)


def test_cifar_missing_or_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_CIFAR10(str(tmp_path / "nowhere"))
    root = str(tmp_path / "c")
    _write_cifar(root)
    os.remove(os.path.join(root, "test_batch"))
    with pytest.raises(FileNotFoundError, match="test_batch.*is missing"):
        load_CIFAR10(root)
    with open(os.path.join(root, "test_batch"), "wb") as fh:
        pickle.dump({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match=r"test_batch.*expected \(n, 3072\)"):
        load_CIFAR10(root)


def _write_cinic(root, classes, per=3):
    from PIL import Image
    r = np.random.RandomState(1)
    for split in ("train", "valid", "test"):
        for cls in classes:
            d = os.path.join(root, split, cls)
            os.makedirs(d)
            for i in range(per):
                img = r.randint(0, 256, size=(32, 32, 3)).astype(np.uint8)
                Image.fromarray(img).save(os.path.join(d, f"img{i}.png"))


def test_cinic10_subset(tmp_path):
    root = str(tmp_path / "cinic")
    _write_cinic(root, ["airplane", "cat", "ship"])
    data = get_CINIC10_data(root, classes=["cat", "ship"])
    assert data["X_train"].shape == (6, 3, 32, 32) and data["X_test"].shape == (6, 3, 32, 32)
    assert sorted(set(data["y_val"].tolist())) == [0, 1]
    with pytest.raises(FileNotFoundError, match=r"class folder .*train.*dog.* is missing"):
        get_CINIC10_data(root, classes=["dog", "cat"])
    with pytest.raises(ValueError, match="unknown CINIC-10 classes \\['cow'\\]"):
        get_CINIC10_data(root, classes=["cow", "cat"])
    with open(os.path.join(root, "train", "cat", "bad.png"), "wb") as fh:
        fh.write(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*bad.png"):
        get_CINIC10_data(root, classes=["cat", "ship"])


def test_digits_split():
    data = get_digits_data()
    assert data["X_train"].shape == (1257, 1, 8, 8)
    assert data["X_val"].shape == (270, 1, 8, 8) and data["X_test"].shape == (270, 1, 8, 8)
    assert set(data["y_train"].tolist()) == set(range(10))
    state = np.random.get_state()[1].copy()
    get_digits_data()
    assert np.array_equal(np.random.get_state()[1], state)  # global RNG untouched


def test_load_cifar10_says_how_to_download(tmp_path):
    """load_CIFAR10(path) said only that the folder was missing, where
    get_CIFAR10_data() said how to get it; both now do."""
    from xpnn.data import load_CIFAR10
    for root in (str(tmp_path / "nowhere"), str(tmp_path)):
        with pytest.raises(FileNotFoundError, match=r"from https://www\.cs\.toronto\.edu/~kriz/"
                                                    r"cifar\.html: curl -L .*\| tar -xz makes it "
                                                    r"in the working directory"):
            load_CIFAR10(root)
