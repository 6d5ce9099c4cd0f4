"""Course notebooks of every edition run with only their imports changed
(xpnn.compat) and print their own numbers. The snippets are written for
these tests in the notebooks' style; the numbers are the notebooks'."""
from __future__ import annotations

import importlib
import os
import pickle

import numpy as np
import pytest

from xpnn import backend
from xpnn.compat import EDITIONS

from conftest import host

UCLA = ("nndl", "nndl_2022")
#: editions whose dropout number is the probability of DROPPING a unit
DROP_P = ("cs231n_2016", "cs231n_2017", "nndl_2022")


def _fc_path(edition):
    return "fc_net" if edition in UCLA else "classifiers.fc_net"


def _mod(edition, path):
    return importlib.import_module(f"xpnn.compat.{edition}.{path}")


def _star(edition, path):
    """What ``from <edition>.<path> import *`` brings."""
    ns: dict = {}
    exec(f"from xpnn.compat.{edition}.{path} import *", ns)
    return ns


# ------------------------------------------------------------------ 1. star imports
@pytest.mark.parametrize("edition", EDITIONS)
def test_model_modules_bring_the_layers_as_the_course_modules_do(edition):
    cnn_path = "cnn" if edition in UCLA else "classifiers.cnn"
    fc = _star(edition, _fc_path(edition))
    for name in ("affine_forward", "batchnorm_forward", "dropout_forward", "svm_loss",
                 "softmax_loss", "layernorm_forward", "affine_relu_forward", "TwoLayerNet",
                 "FullyConnectedNet"):
        assert name in fc, name
    cnn = _star(edition, cnn_path)
    for name in ("conv_forward_fast", "max_pool_forward_fast", "conv_relu_pool_forward",
                 "spatial_batchnorm_forward", "ThreeLayerConvNet"):
        assert name in cnn, name
    assert "_variants" not in fc


@pytest.mark.parametrize("edition", EDITIONS)
def test_star_imports_bring_np_as_the_course_modules_do(edition):
    """Course modules import NumPy as np and have no __all__, so a star
    import brings np; UCLA's own helper files use np after
    ``from nndl.layers import *`` alone (the Optimization notebook failed
    from that cell on)."""
    for path in ("layers", "optim", "solver", "layer_utils", "gradient_check", _fc_path(edition)):
        ns = _star(edition, path)
        assert ns["np"] is np, path
    if edition in UCLA:
        ns = _star(edition, "layers")
        exec("def helper(x):\n    return np.maximum(0, x)\n", ns)   # a helper file's code
        assert ns["helper"](np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("edition", UCLA)
def test_ucla_module_names(edition):
    assert "conv_forward_naive" in _star(edition, "conv_layers")
    assert "conv_relu_pool_backward" in _star(edition, "conv_layer_utils")
    for prefix in ("utils", "cs231n"):
        assert "conv_forward_fast" in _star(edition, f"{prefix}.fast_layers")
        assert callable(_mod(edition, f"{prefix}.data_utils").get_CIFAR10_data)
        assert _mod(edition, f"{prefix}.solver").Solver.update_rules["adam"].__name__ == "adam"
        assert callable(_mod(edition, f"{prefix}.gradient_check").eval_numerical_gradient)


# ------------------------------------------------------------------ 2. data paths
def _fake_cifar(folder, per_batch=30):
    os.makedirs(folder)
    r = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(os.path.join(folder, name), "wb") as fh:
            pickle.dump({"data": r.randint(0, 256, size=(per_batch, 3072)).astype(np.uint8),
                         "labels": list(r.randint(0, 10, size=per_batch))}, fh, protocol=2)


@pytest.mark.parametrize("edition", EDITIONS)
def test_get_CIFAR10_data_without_arguments_finds_the_course_folder(edition, tmp_path,
                                                                     monkeypatch):
    get = _mod(edition, "data_utils").get_CIFAR10_data
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XPNN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*looked for "
                                                r"'data_batch_1' in: .*cs231n/datasets.*XPNN_DATA"):
        get(num_training=100, num_validation=20, num_test=10)
    _fake_cifar(tmp_path / "cs231n" / "datasets" / "cifar-10-batches-py")
    data = get(100, 20, 10)   # the course's first positional argument: num_training
    assert data["X_train"].shape == (100, 3, 32, 32) and data["X_val"].shape[0] == 20
    assert data["X_test"].shape[0] == 10
    elsewhere = tmp_path / "mine"
    _fake_cifar(elsewhere / "cifar-10-batches-py", per_batch=40)
    monkeypatch.setenv("XPNN_DATA", str(elsewhere))
    assert get(150, 40, 10)["X_train"].shape[0] == 150   # XPNN_DATA comes first


# ------------------------------------------------------------------ 3 + 4. constructors, dropout
@pytest.mark.parametrize("edition", DROP_P)
def test_old_signature_dropout_is_the_drop_probability(edition):
    ns = _star(edition, _fc_path(edition))
    model = ns["FullyConnectedNet"]([5], input_dim=4, num_classes=3, dropout=0.25,
                                    use_batchnorm=True)
    assert model.use_dropout and model.dropout_param["p"] == 0.75   # xpnn keeps 75%
    assert model.normalization == "batchnorm" and model.use_batchnorm
    assert not ns["FullyConnectedNet"]([5], input_dim=4, num_classes=3, dropout=0).use_dropout
    with pytest.raises(ValueError, match="probability of DROPPING a unit.*in \\[0, 1\\)"):
        ns["FullyConnectedNet"]([5], input_dim=4, dropout=1)
    x = np.ones((200, 50))
    out, cache = ns["dropout_forward"](x, {"mode": "train", "p": 0.3, "seed": 3})
    assert abs(np.mean(out == 0) - 0.3) < 0.02                   # 30% dropped
    native = _star("cs231n_2022", "layers")["dropout_forward"](
        x, {"mode": "train", "p": 0.7, "seed": 3})[0]
    np.testing.assert_array_equal(out, native)                   # the same draws, one implementation
    np.testing.assert_array_equal(ns["dropout_backward"](x, cache), out)
    with pytest.raises(ValueError, match="DROPPING"):
        ns["dropout_forward"](x, {"mode": "train", "p": 1.0})


@pytest.mark.parametrize("edition", UCLA)
def test_ucla_modular_two_layer_net_keywords(edition):
    net = _mod(edition, "fc_net").TwoLayerNet(input_dim=6, hidden_dims=5, num_classes=3,
                                             dropout=0.25, weight_scale=1e-2, reg=0.1)
    W1 = host(net.params["W1"])
    assert W1.shape == (6, 5) and W1.dtype == np.float64
    assert net.use_dropout
    assert net.dropout_param["p"] == (0.75 if edition in DROP_P else 0.25)   # xpnn: keep
    assert not _mod(edition, "fc_net").TwoLayerNet(input_dim=6, hidden_dims=5).use_dropout


def test_ucla_2023_to_2026_dropout_is_the_keep_probability():
    """UCLA's 2023-26 notebooks build FullyConnectedNet(dropout=1.0) for no
    dropout (1 is the default) and run the dropout layer for p in 0.3 ...
    1.0 as the fraction KEPT; xpnn.compat.nndl rejected 1.0. The first
    homework's fc_net.py of those years defaults to dropout=0 and never uses
    it: 0 means no dropout too."""
    ns = _star("nndl", "fc_net")
    FC = ns["FullyConnectedNet"]
    assert not FC([5], input_dim=4, num_classes=3).use_dropout            # default: 1
    assert not FC([5], input_dim=4, num_classes=3, dropout=1.0).use_dropout
    model = FC([5], input_dim=4, num_classes=3, dropout=0.25, use_batchnorm=True)
    assert model.use_dropout and model.dropout_param["p"] == 0.25 and model.use_batchnorm
    assert not FC([5], input_dim=4, num_classes=3, dropout=0).use_dropout
    with pytest.raises(ValueError, match="probability of KEEPING a unit.*\\[0, 1\\]"):
        FC([5], input_dim=4, dropout=1.5)
    x = np.random.RandomState(0).randn(500, 500) + 10
    for p in (0.3, 0.6, 0.75, 1.0):     # the notebook's loop
        out, _ = ns["dropout_forward"](x, {"mode": "train", "p": p, "seed": 123})
        assert abs(np.mean(out == 0) - (1 - p)) < 0.01                     # 1 - p dropped
        assert abs(out.mean() - x.mean()) < 0.05 * x.mean()                # inverted dropout


def test_new_editions_dropout_is_the_keep_probability():
    for edition in ("cs231n_2019", "ece662"):
        model = _mod(edition, "classifiers.fc_net").FullyConnectedNet(
            [5], input_dim=4, num_classes=3, dropout=0.25, normalization="layernorm")
        assert model.dropout_param["p"] == 0.25


@pytest.mark.parametrize("edition", EDITIONS)
def test_fully_connected_net_gradient_check_cell(xb, edition):
    """FullyConnectedNets: the seeded initial losses, through each edition."""
    FC = _mod(edition, _fc_path(edition)).FullyConnectedNet
    np.random.seed(231)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    losses = []
    for reg in (0, 3.14):
        model = FC([H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=5e-2,
                   dtype=np.float64)
        losses.append(float(host(model.loss(X, y)[0])))
    assert losses == pytest.approx([2.3004790897684924, 7.052114776533016], rel=1e-13)


# ------------------------------------------------------------------ 5. update rules
def test_2017_adam_counts_steps_from_one():
    g = np.array([0.5, -2.0])
    lr = 1e-3
    w17, cfg17 = _mod("cs231n_2017", "optim").adam(np.zeros(2), g, {"learning_rate": lr})
    w22, cfg22 = _mod("cs231n_2022", "optim").adam(np.zeros(2), g, {"learning_rate": lr})
    assert cfg17["t"] == 2 and cfg22["t"] == 1
    np.testing.assert_allclose(w22, -lr * np.sign(g), rtol=1e-6)     # t = 1: a full step
    m, v = 0.1 * g / (1 - 0.9 ** 2), 0.001 * g * g / (1 - 0.999 ** 2)
    np.testing.assert_allclose(w17, -lr * m / (np.sqrt(v) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("edition", UCLA)
def test_ucla_update_rules_keep_their_state_names(edition):
    opt = _mod(edition, "optim")
    r = np.random.RandomState(0)
    w, g = r.randn(4, 3), r.randn(4, 3)
    nw, cfg = opt.adam(w, g, {"learning_rate": 1e-2})
    ref_w, ref = _mod("cs231n_2022", "optim").adam(w, g, {"learning_rate": 1e-2})
    assert set(cfg) >= {"v", "a", "t"} and "m" not in cfg
    np.testing.assert_array_equal(cfg["v"], ref["m"])    # UCLA: v = first moment
    np.testing.assert_array_equal(cfg["a"], ref["v"])    # a = second moment
    np.testing.assert_array_equal(nw, ref_w)
    nw2, cfg = opt.adam(nw, g, cfg)                      # and it reads them back
    ref_w2, _ = _mod("cs231n_2022", "optim").adam(ref_w, g, ref)
    np.testing.assert_array_equal(nw2, ref_w2)
    _, c = opt.rmsprop(w, g, {"learning_rate": 1e-2})
    assert "a" in c and "cache" not in c


def test_edition_solver_uses_the_edition_update_rules():
    Solver = _mod("nndl", "solver").Solver
    model = _mod("nndl", "fc_net").FullyConnectedNet([6], input_dim=5, num_classes=3)
    r = np.random.RandomState(0)
    data = {"X_train": r.randn(20, 5), "y_train": r.randint(3, size=20),
            "X_val": r.randn(5, 5), "y_val": r.randint(3, size=5)}
    s = Solver(model, data, update_rule="adam", batch_size=10, num_epochs=1, verbose=False)
    s.train()
    assert all({"v", "a"} <= set(c) for c in s.optim_configs.values())


# ------------------------------------------------------------------ 6 + 8. monolithic nets
def _toy(edition, path):
    """The notebooks' init_toy_model() and init_toy_data() cells."""
    TwoLayerNet = _mod(edition, path).TwoLayerNet

    def init_toy_model():
        np.random.seed(0)
        return TwoLayerNet(4, 10, 3, std=1e-1)
    net = init_toy_model()
    np.random.seed(1)
    X = 10 * np.random.randn(5, 4)
    return net, X, np.array([0, 1, 2, 2, 1]), init_toy_model


@pytest.mark.parametrize("edition", ["cs231n_2017", "cs231n_2019"])
def test_cs231n_assignment1_two_layer_net_toy_cells(xb, edition):
    net, X, y, init_toy_model = _toy(edition, "classifiers.neural_net")
    assert host(net.params["W1"]).shape == (4, 10)            # (D, H)
    correct_scores = np.array([[-0.81233741, -1.27654624, -0.70335995],
                               [-0.17129677, -1.18803311, -0.47310444],
                               [-0.51590475, -1.01354314, -0.8504215],
                               [-0.15419291, -0.48629638, -0.52901952],
                               [-0.00618733, -0.12435261, -0.15226949]])
    assert np.abs(host(net.loss(X)) - correct_scores).sum() < 1e-7
    loss, grads = net.loss(X, y, reg=0.05)
    assert abs(float(host(loss)) - 1.30378789133) < 1e-10
    from xpnn.gradient_check import eval_numerical_gradient, rel_error
    for name in grads:
        num = eval_numerical_gradient(lambda _: net.loss(X, y, reg=0.05)[0], net.params[name],
                                      verbose=False)
        assert rel_error(num, host(grads[name])) < 1e-8, name
    net = init_toy_model()
    stats = net.train(X, y, X, y, learning_rate=1e-1, reg=5e-6, num_iters=100, verbose=False)
    assert stats["loss_history"][-1] == pytest.approx(0.017149607938732093, rel=1e-12)


@pytest.mark.parametrize("edition", UCLA)
def test_ucla_two_layer_net_samples_with_replacement(edition):
    net, X, y, init_toy_model = _toy(edition, "neural_net")
    assert net.params["W1"].shape == (10, 4)                     # (H, D)
    assert float(net.loss(X, y, reg=0.05)[0]) == pytest.approx(1.071696123862817, rel=1e-14)
    net = init_toy_model()
    stats = net.train(X, y, X, y, learning_rate=1e-1, reg=5e-6, num_iters=100, verbose=False)
    assert stats["loss_history"][-1] == pytest.approx(0.014497864587765886, rel=1e-12)
    # an epoch of 7 / 2 = 3.5 iterations: the course's true division checks
    # accuracy (and decays) at iterations 0 and 7 of 10; floor division at 0, 3, 6, 9
    r = np.random.RandomState(2)
    Xs, ys = r.randn(7, 4), r.randint(3, size=7)
    stats = init_toy_model().train(Xs, ys, Xs, ys, batch_size=2, num_iters=10, verbose=False)
    assert len(stats["train_acc_history"]) == 2


@pytest.mark.parametrize("edition, checks", [("cs231n_2016", (34, 4)), ("cs231n_2017", (15, 2)),
                                             ("cs231n_2019", (15, 2)), ("cs231n_2022", (15, 2))])
def test_cs231n_two_layer_net_counts_epochs_and_prints_as_its_python(edition, checks, capsys):
    """CS231n's neural_net.py divides num_train / batch_size: Python 2's
    floor in 2016 (checks at 0, 3, 6, 9 of 10 for 7 / 2), true division from
    2017 (3.5: `it % 3.5 == 0` at 0, 7, 14, ...; 49000 / 300 at 0 only);
    its lines are 'iteration %d / %d: loss %f'."""
    r = np.random.RandomState(2)
    Xs, ys = r.randn(7, 4), r.randint(3, size=7)
    net = _mod(edition, "classifiers.neural_net").TwoLayerNet(4, 10, 3, std=1e-1)
    stats = net.train(Xs, ys, Xs, ys, batch_size=2, num_iters=101, verbose=True)
    assert len(stats["train_acc_history"]) == checks[0]
    lines = capsys.readouterr().out.splitlines()
    losses = stats["loss_history"]
    assert lines == ["iteration 0 / 101: loss %f" % losses[0],
                     "iteration 100 / 101: loss %f" % losses[100]]
    stats = net.train(Xs, ys, Xs, ys, batch_size=2, num_iters=10)
    assert len(stats["train_acc_history"]) == checks[1]


# ------------------------------------------------------------------ 9. course-written models
class _CourseNet:
    """A model as a student writes it: NumPy params, xpnn layers."""

    def __init__(self):
        r = np.random.RandomState(0)
        self.params = {"W1": 0.1 * r.randn(6, 8), "b1": np.zeros(8),
                       "W2": 0.1 * r.randn(8, 3), "b2": np.zeros(3)}

    def loss(self, X, y=None):
        from xpnn.layers import affine_forward, affine_relu_backward, affine_relu_forward, \
            affine_backward, softmax_loss
        h, c1 = affine_relu_forward(X, self.params["W1"], self.params["b1"])
        s, c2 = affine_forward(h, self.params["W2"], self.params["b2"])
        if y is None:
            return s
        loss, ds = softmax_loss(s, y)
        dh, dW2, db2 = affine_backward(ds, c2)
        _, dW1, db1 = affine_relu_backward(dh, c1)
        return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def test_solver_trains_a_course_written_model_on_any_backend():
    r = np.random.RandomState(1)
    data = {"X_train": r.randn(40, 6), "y_train": r.randint(3, size=40),
            "X_val": r.randn(10, 6), "y_val": r.randint(3, size=10)}
    Solver = _mod("cs231n_2019", "solver").Solver
    runs = []
    for name in ("numpy", "array_api_strict"):
        with backend.use_backend(name):
            np.random.seed(0)
            s = Solver(_CourseNet(), data, update_rule="sgd_momentum", batch_size=10,
                       num_epochs=2, verbose=False)
            s.train()
            runs.append(s.loss_history)
    assert runs[0] == runs[1]


def _fc_cls(edition):
    return _mod(edition, _fc_path(edition)).FullyConnectedNet


def _bn_kwargs(edition):
    return {"use_batchnorm": True} if edition in ("cs231n_2016", "cs231n_2017", *UCLA) else \
        {"normalization": "batchnorm"}


@pytest.mark.parametrize("edition", EDITIONS)
def test_batchnorm_and_dropout_cells(xb, edition):
    """BatchNormalization and Dropout notebooks' seeded initial losses, each
    edition spelling batch norm and dropout its own way."""
    if xb.name == "cupy":
        pytest.skip("the GPU draws its own dropout masks; NumPy-seeded values do not apply")
    FC = _fc_cls(edition)
    np.random.seed(231)
    X, y = np.random.randn(2, 15), np.random.randint(10, size=(2,))
    bn = [float(host(FC([20, 30], input_dim=15, num_classes=10, reg=reg, weight_scale=5e-2,
                        dtype=np.float64, **_bn_kwargs(edition)).loss(X, y)[0]))
          for reg in (0, 3.14)]
    assert bn == pytest.approx([2.2611955101340957, 6.996533220108303], rel=1e-13)
    drop_meaning = edition in DROP_P
    np.random.seed(231)        # the Dropout notebook's own cell
    X, y = np.random.randn(2, 15), np.random.randint(10, size=(2,))
    expected = {1: 2.3004790897684924, 0.75: 2.302371489704412, 0.5: 2.3042759220785896}
    for keep, want in expected.items():
        model = FC([20, 30], input_dim=15, num_classes=10, weight_scale=5e-2, dtype=np.float64,
                   dropout=(1 - keep) if drop_meaning else keep, seed=123)
        assert float(host(model.loss(X, y)[0])) == pytest.approx(want, rel=1e-13)


# ------------------------------------------------------------------ 10. as the course computes
def _cnn_cls(edition):
    return _mod(edition, "cnn" if edition in UCLA else "classifiers.cnn").ThreeLayerConvNet


@pytest.mark.parametrize("edition", EDITIONS)
def test_float64_data_into_a_float32_course_model_computes_in_float64(xb, edition):
    """The course's NumPy code promotes: a fresh ThreeLayerConvNet() (float32,
    the course default) on np.random.randn data computes in float64, and its
    printed loss is the float64 one to the last digits; xpnn's own model
    casts the data to float32 (its loss differed from the 7th digit)."""
    from xpnn.models import FullyConnectedNet, ThreeLayerConvNet
    kw = dict(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10)
    np.random.seed(0)
    model = _cnn_cls(edition)(**kw)
    X, y = np.random.randn(5, 3, 8, 8), np.random.randint(10, size=5)
    assert host(model.params["W1"]).dtype == np.float32
    ref = ThreeLayerConvNet(dtype=np.float64, **kw)
    ref.params = {k: host(v).astype(np.float64) for k, v in model.params.items()}
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")        # and no dtype warning
        loss, grads = model.loss(X, y)
    want, want_grads = ref.loss(X, y)
    assert float(host(loss)) == pytest.approx(float(host(want)), rel=1e-13)
    for k in want_grads:
        assert host(grads[k]).dtype == np.float64, k
        np.testing.assert_allclose(host(grads[k]), host(want_grads[k]), rtol=1e-9, atol=1e-13)
    native = ThreeLayerConvNet(**kw)
    native.params = dict(model.params)
    assert host(native.loss(X, y)[0]).dtype == np.float32    # xpnn's own: cast to the model's
    fc = _fc_cls(edition)([6], input_dim=4, num_classes=3)   # float32 by default
    assert host(fc.loss(np.random.randn(2, 4))).dtype == np.float64
    assert host(fc.loss(np.random.randn(2, 4).astype(np.float32))).dtype == np.float32


@pytest.mark.parametrize("edition", EDITIONS)
def test_the_course_solver_trains_on_through_a_nan_loss(edition):
    """A learning-rate sweep where some rates diverge: the course's Solver
    goes on (its loss history holds the NaN, every epoch is checked) and the
    sweep prints its best; xpnn's own Solver stops with FloatingPointError.
    One warning says what happened."""
    import warnings
    from xpnn.solver import Solver as NativeSolver
    Solver = _mod(edition, "solver").Solver
    r = np.random.RandomState(0)
    data = {"X_train": 1e3 * r.randn(40, 5), "y_train": r.randint(3, size=40),
            "X_val": r.randn(10, 5), "y_val": r.randint(3, size=10)}

    def run(cls):
        np.random.seed(0)
        model = _fc_cls(edition)([6], input_dim=5, num_classes=3, dtype=np.float64)
        s = cls(model, data, update_rule="sgd", optim_config={"learning_rate": 1e30},
                batch_size=10, num_epochs=3, verbose=False)
        s.train()
        return s
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = run(Solver)
    assert not np.all(np.isfinite(s.loss_history)) and len(s.loss_history) == 12
    assert len(s.val_acc_history) == 4            # the start and every epoch
    diverged = [w for w in caught if "diverged" in str(w.message)]
    assert len(diverged) == 1 and "goes on" in str(diverged[0].message)
    with pytest.raises(FloatingPointError, match="diverged"):
        run(NativeSolver)


@pytest.mark.parametrize("edition", ["cs231n_2022", "cs231n_2019"])
def test_models_and_linear_classifiers_save_and_load_as_the_2025_course(edition, tmp_path,
                                                                        monkeypatch, capsys):
    """CS231n 2025+ notebooks call model.save("best_two_layer_net.npy") and
    .load(...): cs231n/saved/<name>, a dict of arrays in np.save's format,
    "<name> saved." / "loaded." / "not available." (False). A crafted file is
    refused, not run."""
    monkeypatch.chdir(tmp_path)
    FC = _mod(edition, "classifiers.fc_net").FullyConnectedNet
    Softmax = _mod(edition, "classifiers").Softmax
    m = FC([5], input_dim=4, num_classes=3, dtype=np.float64)
    m.save("best_fc.npy")
    assert (tmp_path / "cs231n" / "saved" / "best_fc.npy").is_file()
    other = FC([5], input_dim=4, num_classes=3, dtype=np.float64)
    assert other.load("best_fc.npy") is True
    for k in m.params:
        np.testing.assert_array_equal(host(other.params[k]), host(m.params[k]))
    assert other.load("missing.npy") is False
    clf = Softmax()
    clf.W = np.arange(12.0).reshape(4, 3)
    clf.save("softmax.npy")
    again = Softmax()
    assert again.load("softmax.npy") and np.array_equal(again.W, clf.W)
    assert capsys.readouterr().out.splitlines() == [
        "best_fc.npy saved.", "best_fc.npy loaded.", "missing.npy not available.",
        "softmax.npy saved.", "softmax.npy loaded."]

    class Crafted:
        def __reduce__(self):
            return (os.system, ("echo crafted",))
    np.save(tmp_path / "cs231n" / "saved" / "crafted.npy",
            np.array({"W": Crafted()}, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="crafted.npy' is not a file save\\(\\) writes "
                                         "\\(UnpicklingError: refusing to load (posix|nt).system"):
        again.load("crafted.npy")
