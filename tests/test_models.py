"""Models: the seed notebooks' seeded cells print the course's numbers, and
every model's gradients check out numerically on every backend."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn import backend
from xpnn.gradient_check import eval_numerical_gradient, rel_error
from xpnn.models import ConvNet, FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet, build_model
from xpnn.models import neural_net

from conftest import host


def _fc_check_data():
    np.random.seed(231)
    N, D, C = 2, 15, 10
    return np.random.randn(N, D), np.random.randint(C, size=(N,))


def _loss(xb, v):
    return float(xb.host(v))


def test_fully_connected_initial_losses(xb):
    X, y = _fc_check_data()
    losses = [_loss(xb, FullyConnectedNet([20, 30], input_dim=15, num_classes=10, reg=reg,
                                          weight_scale=5e-2, dtype=np.float64).loss(X, y)[0])
              for reg in (0, 3.14)]
    assert losses[0] == pytest.approx(2.3004790897684924, rel=1e-13)
    assert losses[1] == pytest.approx(7.052114776533016, rel=1e-13)


def test_fully_connected_batchnorm_initial_losses(xb):
    X, y = _fc_check_data()
    losses = [_loss(xb, FullyConnectedNet([20, 30], input_dim=15, num_classes=10, reg=reg,
                                          weight_scale=5e-2, dtype=np.float64,
                                          normalization="batchnorm").loss(X, y)[0])
              for reg in (0, 3.14)]
    assert losses[0] == pytest.approx(2.2611955101340957, rel=1e-13)
    assert losses[1] == pytest.approx(6.996533220108303, rel=1e-13)


def test_fully_connected_dropout_initial_losses(xb):
    if xb.name == "cupy":
        pytest.skip("the GPU draws its own dropout masks; NumPy-seeded values do not apply")
    X, y = _fc_check_data()
    expected = {1: 2.3004790897684924, 0.75: 2.302371489704412, 0.5: 2.3042759220785896}
    for keep, want in expected.items():
        model = FullyConnectedNet([20, 30], input_dim=15, num_classes=10, weight_scale=5e-2,
                                  dtype=np.float64, dropout=keep, seed=123)
        assert _loss(xb, model.loss(X, y)[0]) == pytest.approx(want, rel=1e-13)


def test_two_layer_net_course_cell(xb):
    np.random.seed(231)
    N, D, H, C = 3, 5, 50, 7
    std = 1e-3
    model = TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=std)
    P = backend.to_numpy(model.params)
    assert abs(P["W1"].std() - std) < std / 10 and abs(P["W2"].std() - std) < std / 10
    assert np.all(P["b1"] == 0) and np.all(P["b2"] == 0)
    model.params["W1"] = np.linspace(-0.7, 0.3, num=D * H).reshape(D, H)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=H)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=H * C).reshape(H, C)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=C)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    scores = xb.host(model.loss(X))
    correct = np.array([[11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434,
                         15.33206765, 16.09215096],
                        [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128,
                         15.49994135, 16.18839143],
                        [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822,
                         15.66781506, 16.2846319]])
    assert np.abs(scores - correct).sum() < 1e-6
    y = np.asarray([0, 5, 1])
    assert abs(_loss(xb, model.loss(X, y)[0]) - 3.4702243556) < 1e-10
    model.reg = 1.0
    assert abs(_loss(xb, model.loss(X, y)[0]) - 26.5948426952) < 1e-10


def test_monolithic_two_layer_net_toy_cells(xb):
    def init_toy_model():
        np.random.seed(0)
        return neural_net.TwoLayerNet(4, 10, 3, std=1e-1)

    net = init_toy_model()
    np.random.seed(1)
    X = 10 * np.random.randn(5, 4)
    y = np.array([0, 1, 2, 2, 1])
    correct_scores = np.array([[-1.07260209, 0.05083871, -0.87253915],
                               [-2.02778743, -0.10832494, -1.52641362],
                               [-0.74225908, 0.15259725, -0.39578548],
                               [-0.38172726, 0.10835902, -0.17328274],
                               [-0.64417314, -0.18886813, -0.41106892]])
    assert np.abs(xb.host(net.loss(X)) - correct_scores).sum() < 1e-7
    loss, grads = net.loss(X, y, reg=0.05)
    assert _loss(xb, loss) == pytest.approx(1.071696123862817, rel=1e-14)
    for name in grads:
        num = eval_numerical_gradient(lambda _: net.loss(X, y, reg=0.05)[0], net.params[name],
                                      verbose=False)
        assert rel_error(num, grads[name]) < 1e-8
    net = init_toy_model()
    stats = net.train(X, y, X, y, learning_rate=1e-1, reg=5e-6, num_iters=100, verbose=False)
    assert stats["loss_history"][-1] == pytest.approx(0.020371427168192176, rel=1e-12)
    assert np.array_equal(xb.host(net.predict(X)), y)


MODEL_CASES = {
    "fc_layernorm_dropout": lambda: FullyConnectedNet(
        [6, 5], input_dim=7, num_classes=4, normalization="layernorm", dropout_keep_ratio=0.7,
        seed=1, reg=0.3, weight_scale=0.3, dtype=np.float64),
    "fc_batchnorm": lambda: FullyConnectedNet(
        [6, 5], input_dim=7, num_classes=4, normalization="batchnorm", reg=0.1,
        weight_scale=0.3, dtype=np.float64),
    "three_layer_conv": lambda: ThreeLayerConvNet(
        input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5, num_classes=4,
        weight_scale=0.2, dtype=np.float64),
    "three_layer_conv_bn": lambda: ThreeLayerConvNet(
        input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5, num_classes=4,
        weight_scale=0.2, dtype=np.float64, use_batchnorm=True, reg=0.05),
    "convnet_global_pool_dropout": lambda: ConvNet(
        input_dim=(1, 8, 8), conv_blocks=((3, 2), (3,)), hidden_dims=(5,), num_classes=3,
        global_pool=True, dropout_keep_ratio=0.8, seed=3, dtype=np.float64, reg=0.01),
}


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_gradients(xb, name):
    np.random.seed(5)
    model = MODEL_CASES[name]()
    shape = model.init_kwargs["input_dim"]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    X = np.random.randn(3, *shape)
    y = np.random.randint(model.init_kwargs["num_classes"], size=3)
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for pname in sorted(grads):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[pname],
                                      verbose=False, h=1e-6)
        err = np.linalg.norm(num - xb.host(grads[pname])) / max(np.linalg.norm(num), 1.0)
        assert err < 1e-6, f"{pname}: normwise error {err:.2e}"
    scores = model.loss(X)
    assert tuple(scores.shape) == (3, model.init_kwargs["num_classes"])
    assert backend.backend_of(scores) == xb.name


def test_models_keep_their_dtype(xb):
    model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((4,),), hidden_dims=(8,), num_classes=3)
    X = np.random.RandomState(0).randn(4, 1, 8, 8)
    loss, grads = model.loss(X, np.array([0, 1, 2, 0]))
    assert all(xb.host(g).dtype == np.float32 for g in grads.values())
    assert xb.host(model.loss(X)).dtype == np.float32


def test_rng_argument_does_not_touch_global_state():
    np.random.seed(9)
    before = np.random.get_state()[1].copy()
    a = FullyConnectedNet([4], input_dim=3, num_classes=2, rng=7)
    b = FullyConnectedNet([4], input_dim=3, num_classes=2, rng=7)
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(host(a.params["W1"]), host(b.params["W1"]))


def test_build_model_round_trip():
    m = ConvNet(input_dim=(1, 8, 8), conv_blocks=((4,),), hidden_dims=(8,), num_classes=3)
    m2 = build_model("ConvNet", m.init_kwargs)
    assert {k: v.shape for k, v in m.params.items()} == {k: v.shape for k, v in m2.params.items()}
    with pytest.raises(ValueError, match="unknown model class 'Foo'"):
        build_model("Foo", {})


def test_model_argument_errors():
    with pytest.raises(ValueError, match="KEEPING"):
        FullyConnectedNet([3], dropout_keep_ratio=0)
    with pytest.raises(ValueError, match="normalization must be"):
        FullyConnectedNet([3], normalization="groupnorm")
    with pytest.raises(ValueError, match="filter_size must be odd"):
        ThreeLayerConvNet(filter_size=4)
    with pytest.raises(ValueError, match="halve the 8x8 input below 1 pixel"):
        ConvNet(input_dim=(1, 8, 8), conv_blocks=((2,),) * 4)


def test_reg_zero_adds_no_reg_term(xb):
    """reg == 0 must mean no regularisation work at all (on a GPU each term
    is kernel launches): a weight whose square overflows, on an input that
    is always zero, leaves the loss finite only if 0 * sum(W**2) is never
    computed."""
    np.random.seed(0)
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, reg=0.0, dtype=np.float64)
    W1 = host(model.params["W1"])
    W1[0, :] = 1e200                      # W1**2 overflows to inf
    model.params["W1"] = xb.asarray(W1)
    X = np.random.randn(5, 3)
    X[:, 0] = 0.0                         # ... but this input never uses it
    loss, grads = model.loss(xb.asarray(X), xb.asarray(np.array([0, 1, 0, 1, 1])))
    assert np.isfinite(float(host(loss)))
    assert np.all(np.isfinite(host(grads["W1"])))


def test_course_models_are_layer_networks_with_course_names(xb):
    """The course models are built from xpnn.nn layers: each course name is
    a layer's array (one dict, so an update through either is seen by both),
    the batch/layer norms own the course's one-entry-per-norm bn_params, and
    the model describes itself as a table."""
    from xpnn.nn import Network
    m = ConvNet(input_dim=(3, 8, 8), conv_blocks=((4,), (6,)), hidden_dims=(5,),
                dropout_keep_ratio=0.5, seed=1, dtype=np.float64)
    assert isinstance(m, Network)
    assert [type(la).__name__ for la in m] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU",
        "MaxPool2d", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert list(m.params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                              "W3", "b3", "gamma3", "beta3", "W4", "b4"]
    assert m[4].W is m.params["W2"] and m[9].beta is m.params["beta3"]
    m.params["W4"] = m.params["W4"] * 0
    assert float(host(backend.namespace().sum(m[12].W * m[12].W))) == 0.0
    assert m[5].running_var is m.bn_params[1]["running_var"] and len(m.bn_params) == 3
    assert "12 Linear(5, 10)" in m.summary() and repr(m).startswith("ConvNet(input_dim=")
    ln = FullyConnectedNet([4, 3], input_dim=6, normalization="layernorm")
    assert ln.bn_params == [{}, {}]   # the course's ln_params: a dict per norm layer
    # the course notebooks' dropout: one dict, reseeded each forward when a seed is given
    m.loss(np.ones((2, 3, 8, 8)), np.array([0, 1]))
    assert m.dropout_param == {"mode": "train", "p": 0.5, "seed": 1}
    m.loss(np.ones((2, 3, 8, 8)))
    assert m.dropout_param["mode"] == "test"
