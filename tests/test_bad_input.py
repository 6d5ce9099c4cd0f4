"""Inputs that once gave a silently wrong result, or lost work, now give
the right result or an error that says what was wrong."""
from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

from xpnn import backend
from xpnn import data as D
from xpnn.cli import main as cli_main
from xpnn.layers import (batchnorm_forward, softmax_loss, spatial_batchnorm_forward,
                         svm_loss)
from xpnn.models import FullyConnectedNet
from xpnn.solver import Solver

from conftest import host
from layer_cases import CASES


def _toy_data(n=40, d=6, c=3, seed=0):
    r = np.random.RandomState(seed)
    return {"X_train": r.randn(n, d), "y_train": r.randint(c, size=n),
            "X_val": r.randn(10, d), "y_val": r.randint(c, size=10)}


# ------------------------------------------------------------------ lost work
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_at_the_first_step_leaves_the_weights_as_they_were(xb):
    data = _toy_data()
    np.random.seed(0)
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, dtype=np.float64)
    before = host(model.params)
    data["X_train"] = data["X_train"].copy()
    data["X_train"][:] = np.nan                 # every batch gives a NaN loss
    s = Solver(model, data, batch_size=10, num_epochs=1, verbose=False, print_every=1)
    # on the host the step is refused before its update; off it, the model
    # goes back to where this train() call started
    kept = ("The model keeps its parameters from before that step."
            if backend.get(xb.name).readback_is_free
            else "The model is back at its parameters from the start of this train() call "
                 "(there is no best yet).")
    with pytest.raises(FloatingPointError, match=r"at iteration 1; lower the learning rate\. "
                                                 + re.escape(kept) + r" To go on from here "
                                                 r"with a lower rate: solver\.optim_config"
                                                 r"\['learning_rate'\] = 0\.001; "
                                                 r"solver\.train\(\)$"):
        s.train()
    after = host(model.params)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_best_params_are_never_non_finite(xb):
    """An lr that overflows: a NaN model classifies everything as one class
    (~1/3 here), which once counted as the best validation accuracy."""
    data = _toy_data(seed=2)
    np.random.seed(1)
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, dtype=np.float32,
                              weight_scale=1e-3)
    s = Solver(model, data, batch_size=40, num_epochs=3, verbose=False, update_rule="sgd",
               optim_config={"learning_rate": 1e38})
    try:
        s.train()
    except FloatingPointError:
        pass
    for v in host(s.best_params).values():
        assert np.all(np.isfinite(v))
    for v in host(model.params).values():
        assert np.all(np.isfinite(v))


# ------------------------------------------------------------------ silent wrong results
def test_batchnorm_test_mode_without_running_statistics_is_refused(xb):
    x = xb.asarray(np.random.RandomState(0).randn(4, 3))
    g, b = xb.asarray(np.ones(3)), xb.asarray(np.zeros(3))
    with pytest.raises(ValueError, match="test mode needs bn_param\\['running_mean'\\]"):
        batchnorm_forward(x, g, b, {"mode": "test"})
    with pytest.raises(ValueError, match="running_var'\\] must have shape \\(3,\\)"):
        batchnorm_forward(x, g, b, {"mode": "train", "running_var": xb.asarray(np.ones(4))})


def test_batchnorm_empty_batch_is_refused_and_keeps_the_running_mean(xb):
    param = {"mode": "train", "running_mean": xb.asarray(np.ones(3)),
             "running_var": xb.asarray(np.ones(3))}
    with pytest.raises(ValueError, match="empty batch"):
        spatial_batchnorm_forward(xb.asarray(np.zeros((0, 3, 2, 2))), xb.asarray(np.ones(3)),
                                  xb.asarray(np.zeros(3)), param)
    np.testing.assert_array_equal(host(param["running_mean"]), np.ones(3))


def test_models_predict_before_training(xb):
    """A model's test-mode pass before any training is defined (zero running
    statistics, as the course's layers start from), not an error."""
    m = FullyConnectedNet([4], input_dim=3, num_classes=2, normalization="batchnorm")
    assert host(m.loss(xb.asarray(np.ones((2, 3))))).shape == (2, 2)


def test_empty_batch_losses_are_refused(xb):
    for fn in (softmax_loss, svm_loss):
        with pytest.raises(ValueError, match="empty batch"):
            fn(xb.asarray(np.zeros((0, 4))), xb.asarray(np.zeros(0, dtype=np.int64)))


def _batch(path, data, labels):
    with open(path, "wb") as fh:
        pickle.dump({"data": data, "labels": labels}, fh, protocol=2)


def test_cifar_batches_with_out_of_range_values_are_refused(tmp_path):
    ok = np.zeros((2, 3072), dtype=np.int64)
    bad_pixels = ok.copy()
    bad_pixels[0, 5] = 300                       # once wrapped to 44
    cases = [(bad_pixels, [1, 2], "pixel values lie in \\[0, 300\\]"),
             (ok, [1, 12], "labels lie in \\[1, 12\\]"),
             (ok, ["a", "b"], "must be integers"),
             (ok.astype(float) + 0.5, [1, 2], "must be integers")]
    for i, (X, y, msg) in enumerate(cases):
        _batch(tmp_path / f"b{i}", X, y)
        with pytest.raises(ValueError, match=msg):
            D.load_CIFAR_batch(str(tmp_path / f"b{i}"))
    with open(tmp_path / "list", "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    with pytest.raises(ValueError, match="holds a list, expected a dict"):
        D.load_CIFAR_batch(str(tmp_path / "list"))


def _png(path):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)


def test_cinic_loader_refuses_what_would_mislead(tmp_path):
    for split in ("train", "valid", "test"):
        for cls in ("cat", "dog"):
            for k in range(2):
                _png(str(tmp_path / split / cls / f"{k}.png"))
    assert D.get_CINIC10_data(str(tmp_path), classes=["cat", "dog"])["X_train"].shape[0] == 4
    with pytest.raises(ValueError, match="name each class once"):
        D.get_CINIC10_data(str(tmp_path), classes=["cat", "cat"])
    # one class once trained and reported accuracy 1.0
    with pytest.raises(ValueError, match=r"at least two classes to tell apart, got \['cat'\]"):
        D.get_CINIC10_data(str(tmp_path), classes=["cat"])
    for bad in (-1, 0, 1.5, True):
        with pytest.raises(ValueError, match="num_per_class must be a positive integer"):
            D.get_CINIC10_data(str(tmp_path), classes=["cat", "dog"], num_per_class=bad)
    os.makedirs(tmp_path / "train" / "bird")
    with pytest.raises(ValueError, match="bird' holds no .png images"):
        D.get_CINIC10_data(str(tmp_path), classes=["cat", "bird"])


def test_digits_split_sizes_are_checked():
    with pytest.raises(ValueError, match="num_validation must be an integer >= 0, got -5"):
        D.get_digits_data(num_validation=-5)
    d = D.get_digits_data(num_validation=0, num_test=10)
    assert d["X_val"].shape[0] == 0 and d["X_test"].shape[0] == 10


def test_a_checkpoint_of_another_model_setting_is_refused(tmp_path):
    data = _toy_data()
    bn = FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="batchnorm")
    s = Solver(bn, data, batch_size=10, num_epochs=1, verbose=False,
               checkpoint_name=str(tmp_path / "bn"))
    s.train()
    ln = FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="layernorm")
    s2 = Solver(ln, data, verbose=False)
    before = host(ln.params)
    with pytest.raises(ValueError, match="normalization='batchnorm' there, 'layernorm' here"):
        s2.load_checkpoint(str(tmp_path / "bn_epoch_1.npz"))
    assert s2.epoch == 0 and s2.loss_history == []          # nothing half-loaded
    for k, v in host(ln.params).items():
        np.testing.assert_array_equal(v, before[k])


# ------------------------------------------------------------------ cryptic errors
@pytest.mark.parametrize("param, msg", [
    ({"stride": "2", "pad": 1}, TypeError), ({"stride": None, "pad": 1}, TypeError),
    ({"stride": 2 ** 70, "pad": 1}, "stride'\\] must be at most 2147483647"),
    ({"stride": 1, "pad": float("nan")}, "pad'\\] must be an integer"),
])
def test_conv_settings_of_the_wrong_kind_are_named(param, msg):
    from xpnn.layers import conv_forward_fast
    x, w, b = np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), np.zeros(1)
    if msg is TypeError:
        with pytest.raises(TypeError, match="conv_param\\['stride'\\] must be an integer"):
            conv_forward_fast(x, w, b, param)
    else:
        with pytest.raises(ValueError, match=msg):
            conv_forward_fast(x, w, b, param)


def test_hyperparameters_of_the_wrong_kind_are_named():
    from xpnn.layers import dropout_forward
    from xpnn.optim import adam, sgd
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match="KEEPING a unit and must be a number in \\(0, 1\\], "
                                         "got 'half'"):
        dropout_forward(x, {"mode": "train", "p": "half"})
    with pytest.raises(TypeError, match="bn_param\\['eps'\\] must be a number, got None"):
        batchnorm_forward(x, np.ones(2), np.zeros(2), {"mode": "train", "eps": None})
    with pytest.raises(TypeError, match="config\\['learning_rate'\\] must be a number, got "
                                        "'1e-3'"):
        sgd(x, x, {"learning_rate": "1e-3"})
    with pytest.raises(ValueError, match="config\\['beta1'\\] must be a finite number"):
        adam(x, x, {"beta1": float("nan")})
    model = FullyConnectedNet([3], input_dim=2, num_classes=2)
    data = {"X_train": x, "y_train": np.array([0, 1]), "X_val": x, "y_val": np.array([0, 1])}
    with pytest.raises(TypeError, match="batch_size must be an integer >= 1, got '10'"):
        Solver(model, data, batch_size="10")
    with pytest.raises(TypeError, match="data\\['X_train'\\] must be an array.*list"):
        Solver(model, {**data, "X_train": [[1, 2], [3, 4]]})
    with pytest.raises(ValueError, match="holds no samples"):
        Solver(model, {**data, "X_train": np.zeros((0, 2)), "y_train": np.zeros(0, int)})


def test_backwards_check_dout_against_what_their_forward_returned(xb):
    """Each backward names itself, and 'dout', for a dout of the wrong shape,
    of another backend or not an array at all."""
    from xpnn import layers as L
    r = np.random.RandomState(0)
    a = xb.asarray
    x2, x4 = a(r.randn(4, 6)), a(r.randn(2, 4, 3, 5))
    cases = [
        (L.affine_backward, L.affine_forward(x2, a(r.randn(6, 3)), a(r.randn(3))), (4, 1)),
        (L.relu_backward, L.relu_forward(x2), (4, 1)),
        (L.leaky_relu_backward, L.leaky_relu_forward(x2), (6, 4)),
        (L.sigmoid_backward, L.sigmoid_forward(x2), (1, 6)),
        (L.tanh_backward, L.tanh_forward(x2), (4,)),
        (L.dropout_backward, L.dropout_forward(x2, {"mode": "train", "p": 0.5}), (4, 1)),
        (L.batchnorm_backward, L.batchnorm_forward(x2, a(np.ones(6)), a(np.zeros(6)),
                                                   {"mode": "train"}), (1, 6)),
        (L.layernorm_backward, L.layernorm_forward(x2, a(np.ones(6)), a(np.zeros(6)),
                                                   {}), (4, 1)),
        (L.spatial_groupnorm_backward, L.spatial_groupnorm_forward(
            x4, a(np.ones((1, 4, 1, 1))), a(np.zeros((1, 4, 1, 1))), 2, {}), (2, 4, 5, 3)),
        (L.spatial_batchnorm_backward, L.spatial_batchnorm_forward(
            x4, a(np.ones(4)), a(np.zeros(4)), {"mode": "train"}), (2, 4, 5, 3)),
    ]
    other = "numpy" if xb.name != "numpy" else "array_api_strict"
    for fn, (out, cache), bad in cases:
        name = fn.__name__
        with pytest.raises(ValueError, match=f"^{name}: dout has shape .*expected the forward "
                                             "output's"):
            fn(a(np.ones(bad)), cache)
        shape = tuple(out.shape)
        with pytest.raises(TypeError, match=f"'dout' is a {other} array"):
            fn(backend.to_device(np.ones(shape), other), cache)
        with pytest.raises(TypeError, match="argument 'dout' must be an array .* got list"):
            fn(np.ones(shape).tolist(), cache)


def _checkpoint(tmp_path):
    data = _toy_data()
    m = FullyConnectedNet([5], input_dim=6, num_classes=3)
    s = Solver(m, data, batch_size=10, num_epochs=1, verbose=False,
               checkpoint_name=str(tmp_path / "c"))
    s.train()
    return str(tmp_path / "c_epoch_1.npz"), data


def _rewrite_meta(src, dst, meta_text):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__meta__"] = np.array(meta_text)
    np.savez(dst, **arrays)


def test_malformed_checkpoint_metadata_is_named_and_changes_nothing(tmp_path):
    import json
    from xpnn.checkpoint import load_model, load_npz
    path, data = _checkpoint(tmp_path)
    meta, _ = load_npz(path)
    cases = {"notjson.npz": ("{not json", "metadata is not JSON"),
             "list.npz": ("[1, 2]", "metadata is a list"),
             "nokey.npz": (json.dumps({k: v for k, v in meta.items() if k != "loss_history"}),
                           "incomplete or malformed.*loss_history")}
    for name, (text, msg) in cases.items():
        _rewrite_meta(path, tmp_path / name, text)
        m = FullyConnectedNet([5], input_dim=6, num_classes=3)
        s = Solver(m, data, verbose=False)
        with pytest.raises(ValueError, match=msg):
            s.load_checkpoint(str(tmp_path / name))
        assert s.epoch == 0 and s.loss_history == [] and s.best_params == {}
    huge = json.loads(json.dumps(meta))
    huge["model"]["init_kwargs"]["hidden_dims"] = [10 ** 12]
    _rewrite_meta(path, tmp_path / "huge.npz", json.dumps(huge))
    with pytest.raises(ValueError, match="setting hidden_dims asks for a size of "
                                         "1000000000000, more than the 53 parameter values"):
        load_model(str(tmp_path / "huge.npz"))


def _absurd_checkpoints(tmp_path):
    """Checkpoints of `xpnn train` whose metadata asks for 10^7 x 10^7 layers:
    a FullyConnectedNet's hidden_dims and a Sequential's Linear."""
    import json
    from xpnn.checkpoint import load_npz
    out = []
    for model in ("fc", "arch"):
        args = ["train", "--epochs", "1", "--plot", "none", "--quiet",
                "--checkpoint", str(tmp_path / model)]
        if model == "arch":
            arch = tmp_path / "arch.json"
            arch.write_text(json.dumps({"layers": [{"type": "Flatten"},
                                                   {"type": "Linear", "in_features": 64,
                                                    "out_features": 10}]}))
            args += ["--arch", str(arch)]
        else:
            args += ["--model", "fc"]
        assert cli_main(args) == 0
        path = str(tmp_path / f"{model}_epoch_1.npz")
        meta, _ = load_npz(path)
        kw = meta["model"]["init_kwargs"]
        if model == "fc":
            kw["hidden_dims"] = [10 ** 7, 10 ** 7]
        else:
            kw["layers"][-1].update(in_features=10 ** 7, out_features=10 ** 7)
        _rewrite_meta(path, tmp_path / f"absurd-{model}.npz", json.dumps(meta))
        out.append((str(tmp_path / f"absurd-{model}.npz"), kw))
    return out


def test_absurd_layer_sizes_in_a_checkpoint_are_refused_before_allocating(tmp_path, capsys):
    """`xpnn train --resume` of a crafted checkpoint once died of a 728 TiB
    allocation with a NumPy traceback; now one line names the setting and
    the size, for a course model and a Sequential alike."""
    from xpnn.checkpoint import load_model
    for path, _ in _absurd_checkpoints(tmp_path):
        capsys.readouterr()
        assert cli_main(["train", "--resume", path, "--plot", "none"]) == 1
        err = capsys.readouterr().err
        assert "asks for a size of 10000000" in err and "nothing was allocated" in err
        assert ("setting hidden_dims" in err) != ("setting layers" in err), err
        with pytest.raises(ValueError, match="asks for a size of 10000000"):
            load_model(path)


def test_checkpoints_are_ordinary_files_and_killed_writers_leave_no_litter(tmp_path):
    import subprocess
    import sys
    path, _ = _checkpoint(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".tmp-{dead}-abc.npz").write_bytes(b"torn")
    _checkpoint(tmp_path)
    assert not (tmp_path / f".tmp-{dead}-abc.npz").exists()


def test_cli_refuses_early_and_clearly(tmp_path, capsys):
    from xpnn.checkpoint import save_model
    from xpnn.cli import main
    m = FullyConnectedNet([5], input_dim=64, num_classes=10)
    save_model(m, str(tmp_path / "model.npz"))
    assert main(["train", "--quiet", "--resume", str(tmp_path / "model.npz")]) == 1
    assert "--resume needs a checkpoint written by xpnn train" in capsys.readouterr().err
    assert main(["train", "--quiet", "--classes", "cat,dog"]) == 1
    assert "does not apply to --dataset digits" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")          # a folder that cannot exist, even for root
    assert main(["train", "--quiet", "--epochs", "1", "--checkpoint",
                 str(blocker / "runs" / "run")]) == 1
    assert "cannot write checkpoints to" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_layer_names_the_argument_that_is_wrong(xb, name):
    """Through each layer's forward and backward: an argument that is not an
    array, or lives on another backend, is named; a dout of the wrong shape
    is refused by the backward that was called, which names itself."""
    c = CASES[name]
    other = "numpy" if xb.name != "numpy" else "array_api_strict"
    a = xb.put(c["make"](np.random.RandomState(0)))
    out, cache = c["fwd"](a)
    for arg in c["grads"]:
        with pytest.raises(TypeError, match=f"argument '{arg}' must be an array .*got list"):
            c["fwd"]({**a, arg: host(a[arg]).tolist()})
        if len(c["grads"]) > 1:  # a lone input may be on any backend
            with pytest.raises(TypeError, match=f"'{arg}' is a {other} array"):
                c["fwd"]({**a, arg: backend.to_device(host(a[arg]), other)})
    if a["x"].ndim == 4 and not name.startswith(("conv_", "prelu")) \
            or name in ("conv_fast", "conv_naive"):
        fwd = c["bwd"].__name__.replace("backward", "forward")
        with pytest.raises(ValueError, match=f"^{fwd}: x must be 4-D \\(N, C, H, W\\), got "
                                             "shape \\("):
            c["fwd"]({**a, "x": a["x"][0, ...]})
    shape = tuple(out.shape)
    d = c["dout"]
    if not name.endswith("avg_pool") and not name.endswith("avg_pool_overlap"):
        # (average pooling keeps no arrays: its backward runs where dout is)
        with pytest.raises(TypeError, match=f"'{d}' is a {other} array"):
            c["bwd"](backend.to_device(np.ones(shape), other), cache)
    with pytest.raises(TypeError, match=f"argument '{d}' must be an array .*got list"):
        c["bwd"](np.ones(shape).tolist(), cache)
    bad = shape[:-1] + (shape[-1] + 1,)
    # a sandwich is undone from its last layer, which names itself (conv ->
    # ReLU -> pool runs its ReLU after the pooling, so ReLU is last there too)
    fn = c["bwd"].__name__
    if name.startswith(("affine_", "conv_")) and "_relu" in name:
        fn = "relu_backward"
    with pytest.raises(ValueError, match=f"^{fn}: dout has shape"):
        c["bwd"](xb.asarray(np.ones(bad)), cache)


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_losses_name_what_is_wrong(xb, loss_fn):
    name = loss_fn.__name__
    other = "numpy" if xb.name != "numpy" else "array_api_strict"
    x, y = np.zeros((3, 4)), np.array([0, 3, 1])
    with pytest.raises(TypeError, match="argument 'x' must be an array .*got list"):
        loss_fn(x.tolist(), xb.asarray(y))
    with pytest.raises(TypeError, match="argument 'y' must be an array .*got list"):
        loss_fn(xb.asarray(x), y.tolist())
    with pytest.raises(TypeError, match=f"'y' is a {other} array"):
        loss_fn(xb.asarray(x), backend.to_device(y, other))
    with pytest.raises(ValueError, match=f"^{name}: labels must lie in \\[0, 3\\] for 4 "
                                         "classes, got values in \\[0, 4\\]"):
        loss_fn(xb.asarray(x), xb.asarray(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match=f"^{name}: x must be 2-D scores \\(N, C\\)"):
        loss_fn(xb.asarray(np.zeros((3, 4, 1))), xb.asarray(y))
