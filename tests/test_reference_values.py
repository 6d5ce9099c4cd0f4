"""The seed notebooks' printed reference values, on every backend.

Inputs are built with NumPy exactly as in the notebook cells, then moved to
the backend under test. Expected numbers are copied from the notebooks'
printed output (to the digits printed).
"""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.gradient_check import rel_error
from xpnn.layers import *  # noqa: F403


def test_conv_forward_naive_and_fast(xb):
    x_shape, w_shape = (2, 3, 4, 4), (3, 3, 4, 4)
    x = xb.asarray(np.linspace(-0.1, 0.5, num=np.prod(x_shape)).reshape(x_shape))
    w = xb.asarray(np.linspace(-0.2, 0.3, num=np.prod(w_shape)).reshape(w_shape))
    b = xb.asarray(np.linspace(-0.1, 0.2, num=3))
    correct = np.array([[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                         [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
                         [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
                        [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
                         [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
                         [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    for fwd in (conv_forward_naive, conv_forward_fast):
        out, _ = fwd(x, w, b, {"stride": 2, "pad": 1})
        assert rel_error(out, correct) < 1e-7  # notebook: ~2e-8


def test_max_pool_forward(xb):
    x_shape = (2, 3, 4, 4)
    x = xb.asarray(np.linspace(-0.3, 0.4, num=np.prod(x_shape)).reshape(x_shape))
    pool = {"pool_width": 2, "pool_height": 2, "stride": 2}
    correct = np.array([[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                         [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
                         [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
                        [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
                         [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
                         [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])
    for fwd in (max_pool_forward_naive, max_pool_forward_fast):
        out, _ = fwd(x, pool)
        assert rel_error(out, correct) < 1e-7  # notebook: ~4e-8


def test_affine_forward(xb):
    num_inputs, input_shape, output_dim = 2, (4, 5, 6), 3
    x = np.linspace(-0.1, 0.5, num=num_inputs * np.prod(input_shape))
    x = xb.asarray(x.reshape(num_inputs, *input_shape))
    w = np.linspace(-0.2, 0.3, num=output_dim * np.prod(input_shape))
    w = xb.asarray(w.reshape(np.prod(input_shape), output_dim))
    b = xb.asarray(np.linspace(-0.3, 0.1, num=output_dim))
    out, _ = affine_forward(x, w, b)
    correct = np.array([[1.49834967, 1.70660132, 1.91485297],
                        [3.25553199, 3.5141327, 3.77273342]])
    assert rel_error(out, correct) < 1e-8


def test_relu_forward(xb):
    x = xb.asarray(np.linspace(-0.5, 0.5, num=12).reshape(3, 4))
    out, _ = relu_forward(x)
    correct = np.array([[0., 0., 0., 0.], [0., 0., 0.04545455, 0.13636364],
                        [0.22727273, 0.31818182, 0.40909091, 0.5]])
    assert rel_error(out, correct) < 1e-7


def test_svm_and_softmax_loss(xb):
    np.random.seed(231)
    num_classes, num_inputs = 10, 50
    x = xb.asarray(0.001 * np.random.randn(num_inputs, num_classes))
    y = xb.asarray(np.random.randint(num_classes, size=num_inputs))
    assert float(xb.host(svm_loss(x, y)[0])) == pytest.approx(8.999602749096233, rel=1e-13)
    assert float(xb.host(softmax_loss(x, y)[0])) == pytest.approx(2.302545844500738, rel=1e-13)


def test_svm_margin_exactly_zero_is_not_active(xb):
    """A class scoring exactly 1 below the correct one has margin 0: no loss
    and no gradient (the subgradient of max(0, m) the course uses at 0)."""
    x = xb.asarray(np.array([[2.0, 1.0, 1.5], [0.0, 3.0, -1.0]]))
    loss, dx = svm_loss(x, xb.asarray(np.array([0, 2])))
    assert float(xb.host(loss)) == pytest.approx((0.5 + 2.0 + 5.0) / 2, rel=1e-15)
    np.testing.assert_array_equal(xb.host(dx), np.array([[-1, 0, 1], [1, 1, -2]]) / 2)


def _two_layer_activations(N, D1, D2, D3):
    np.random.seed(231)
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    return np.maximum(0, X.dot(W1)).dot(W2)


def test_batchnorm_train_forward(xb):
    a = xb.asarray(_two_layer_activations(200, 50, 60, 3))
    gamma, beta = xb.asarray(np.array([1.0, 2.0, 3.0])), xb.asarray(np.array([11.0, 12.0, 13.0]))
    out = xb.host(batchnorm_forward(a, gamma, beta, {"mode": "train"})[0])
    np.testing.assert_allclose(out.mean(axis=0), [11.0, 12.0, 13.0], rtol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), [0.9999999, 1.99999999, 2.99999999], rtol=1e-7)


def test_batchnorm_test_time_statistics(xb):
    """Seed cell: 50 train-mode passes warm the running averages, then test mode."""
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    W1, W2 = np.random.randn(D1, D2), np.random.randn(D2, D3)
    bn_param = {"mode": "train"}
    gamma, beta = xb.asarray(np.ones(D3)), xb.asarray(np.zeros(D3))
    for _ in range(50):
        X = np.random.randn(N, D1)
        batchnorm_forward(xb.asarray(np.maximum(0, X.dot(W1)).dot(W2)), gamma, beta, bn_param)
    bn_param["mode"] = "test"
    X = np.random.randn(N, D1)
    a_norm = xb.host(batchnorm_forward(xb.asarray(np.maximum(0, X.dot(W1)).dot(W2)),
                                       gamma, beta, bn_param)[0])
    np.testing.assert_allclose(a_norm.mean(axis=0), [-0.03927354, -0.04349152, -0.10452688],
                               rtol=1e-6)
    np.testing.assert_allclose(a_norm.std(axis=0), [1.01531428, 1.01238373, 0.97819988],
                               rtol=1e-7)


def test_layernorm_forward(xb):
    a = xb.asarray(_two_layer_activations(4, 50, 60, 3))
    gamma, beta = xb.asarray(np.full(3, 3.0)), xb.asarray(np.full(3, 5.0))
    out = xb.host(layernorm_forward(a, gamma, beta, {"mode": "train"})[0])
    np.testing.assert_allclose(out.mean(axis=1), [5.0] * 4, rtol=1e-12)
    # The export prints 2.99999997 last: a transcription slip, since the same
    # cell's gamma=1 run prints 0.99999969 and 3 * 0.99999969 = 2.99999907.
    np.testing.assert_allclose(out.std(axis=1), [2.99999985, 2.99999998, 2.99999999, 2.99999907],
                               rtol=1e-8)
    ones, zeros = xb.asarray(np.ones(3)), xb.asarray(np.zeros(3))
    out = xb.host(layernorm_forward(a, ones, zeros, {})[0])
    # printed as 0.9999995 (a digit lost in the export; 3 x 0.99999995 = 2.99999985 above)
    np.testing.assert_allclose(out.std(axis=1), [0.99999995, 0.99999999, 1.0, 0.99999969],
                               rtol=1e-8)


def test_dropout_statistics(xb):
    """Seed cell values; on host-RNG backends the masks come from NumPy's
    global RandomState, so the printed means repeat exactly."""
    np.random.seed(231)
    x = xb.asarray(np.random.randn(500, 500) + 10)
    expected = {0.25: (10.014059116977283, 0.749784), 0.4: (9.977917658761159, 0.600796),
                0.7: (9.987811912159428, 0.30074)}
    for p, (mean, zero_frac) in expected.items():
        out = xb.host(dropout_forward(x, {"mode": "train", "p": p})[0])
        out_test = xb.host(dropout_forward(x, {"mode": "test", "p": p})[0])
        assert out_test.mean() == pytest.approx(10.0002078784775, rel=1e-13)
        assert (out_test == 0).mean() == 0.0
        if xb.name == "cupy":  # the GPU draws its own masks: statistics only
            assert out.mean() == pytest.approx(10.0, rel=0.01)
            assert (out == 0).mean() == pytest.approx(1 - p, abs=0.005)
        else:
            assert out.mean() == pytest.approx(mean, rel=1e-13)
            assert (out == 0).mean() == zero_frac


def test_dropout_seed_reseeds(xb):
    x = xb.asarray(np.random.RandomState(0).randn(10, 10) + 10)
    param = {"mode": "train", "p": 0.2, "seed": 123}
    a = xb.host(dropout_forward(x, param)[0])
    b = xb.host(dropout_forward(x, param)[0])
    np.testing.assert_array_equal(a, b)


def test_spatial_batchnorm_train_forward(xb):
    np.random.seed(231)
    x = xb.asarray(4 * np.random.randn(2, 3, 4, 5) + 10)
    gamma, beta = xb.asarray(np.array([3.0, 4.0, 5.0])), xb.asarray(np.array([6.0, 7.0, 8.0]))
    out = xb.host(spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[0])
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [6.0, 7.0, 8.0], rtol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [2.99999885, 3.99999804, 4.99999798],
                               rtol=1e-8)


def test_spatial_batchnorm_test_time_statistics(xb):
    np.random.seed(231)
    N, C, H, W = 10, 4, 11, 12
    bn_param = {"mode": "train"}
    gamma, beta = xb.asarray(np.ones(C)), xb.asarray(np.zeros(C))
    for _ in range(50):
        x = 2.3 * np.random.randn(N, C, H, W) + 13
        spatial_batchnorm_forward(xb.asarray(x), gamma, beta, bn_param)
    bn_param["mode"] = "test"
    x = 2.3 * np.random.randn(N, C, H, W) + 13
    a_norm = xb.host(spatial_batchnorm_forward(xb.asarray(x), gamma, beta, bn_param)[0])
    np.testing.assert_allclose(a_norm.mean(axis=(0, 2, 3)),
                               [-0.08034406, 0.07562881, 0.05716371, 0.04378383], rtol=1e-6)
    np.testing.assert_allclose(a_norm.std(axis=(0, 2, 3)),
                               [0.96718744, 1.0299714, 1.02887624, 1.00585577], rtol=1e-7)


def test_spatial_groupnorm_forward(xb):
    np.random.seed(231)
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 4 * np.random.randn(N, C, H, W) + 10
    np.testing.assert_allclose(x.reshape(N * G, -1).mean(axis=1),
                               [9.72505327, 8.51114185, 8.9147544, 9.43448077], rtol=1e-8)
    out, _ = spatial_groupnorm_forward(xb.asarray(x), xb.asarray(np.ones((1, C, 1, 1))),
                                       xb.asarray(np.zeros((1, C, 1, 1))), G, {"mode": "train"})
    out_g = xb.host(out).reshape(N * G, -1)
    np.testing.assert_allclose(out_g.mean(axis=1), 0, atol=1e-14)
    # the notebook prints 0.99999963 0.999999948 0.999999973 0.999999968 (sic)
    np.testing.assert_allclose(out_g.std(axis=1), [0.99999963, 0.99999948, 0.99999973,
                                                   0.99999968], rtol=1e-8)


def test_activations_match_their_closed_forms(xb):
    """The activations the notebooks print no values for, against closed
    forms in float64, out to where exp overflows. A gradient check cannot
    catch a wrong forward whose backward is computed from its own output
    (sigmoid's s(1 - s) is self-consistent for a wrong s)."""
    x = np.array([-800.0, -30.0, -2.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 2.0, 30.0, 800.0])
    from scipy.special import expit  # SciPy comes with scikit-learn
    s, s_cache = sigmoid_forward(xb.asarray(x))
    np.testing.assert_allclose(xb.host(s), expit(x), rtol=1e-15, atol=0)
    t, _ = tanh_forward(xb.asarray(x))
    np.testing.assert_allclose(xb.host(t), np.tanh(x), rtol=1e-15, atol=0)
    lr, lr_cache = leaky_relu_forward(xb.asarray(x), 0.1)
    np.testing.assert_array_equal(xb.host(lr), np.where(x > 0, x, 0.1 * x))
    # at 0 the slope is the negative side's (PyTorch's convention), as relu's is 0
    ones = xb.asarray(np.ones_like(x))
    np.testing.assert_array_equal(xb.host(leaky_relu_backward(ones, lr_cache)),
                                  np.where(x > 0, 1.0, 0.1))
    np.testing.assert_array_equal(xb.host(relu_backward(ones, relu_forward(xb.asarray(x))[1])),
                                  np.where(x > 0, 1.0, 0.0))
    np.testing.assert_allclose(xb.host(sigmoid_backward(ones, s_cache)),
                               0.25 * (1.0 / np.cosh(x / 2)) ** 2,
                               rtol=1e-12, atol=1e-15)  # 1 - s rounds at large x


def test_elu_and_prelu_against_pytorch_at_and_around_zero(xb):
    """Values and input gradients as torch's ELU and PReLU, zero included
    (where the slope is the negative side's), per-channel and shared slopes
    on 1-D, 2-D and 4-D inputs."""
    torch = pytest.importorskip("torch")
    x = np.array([[-3.0, -0.5, 0.0, 0.5, 40.0], [0.0, -1e-3, 2.0, -40.0, 1e-3]])
    for alpha in (1.0, 0.3):
        out, cache = elu_forward(xb.asarray(x), alpha)
        tx = torch.tensor(x, requires_grad=True)
        t = torch.nn.functional.elu(tx, alpha)
        t.backward(torch.ones_like(t))
        np.testing.assert_allclose(xb.host(out), t.detach().numpy(), rtol=1e-14, atol=0)
        np.testing.assert_allclose(xb.host(elu_backward(xb.asarray(np.ones_like(x)), cache)),
                                   tx.grad.numpy(), rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match=r"elu_forward: alpha must be a finite number in "
                                         r"\[0.0, inf\], got -1"):
        elu_forward(xb.asarray(x), -1)
    r = np.random.RandomState(0)
    for xs, a in (((5,), r.rand(1)), ((3, 5), r.rand(5)), ((3, 5), r.rand(1)),
                  ((2, 4, 3, 3), r.rand(4))):
        xv = r.randn(*xs)
        xv.flat[0] = 0.0
        dout = r.randn(*xs)
        out, cache = prelu_forward(xb.asarray(xv), xb.asarray(a))
        tx, ta = torch.tensor(xv, requires_grad=True), torch.tensor(a, requires_grad=True)
        t = torch.nn.functional.prelu(tx, ta)
        t.backward(torch.tensor(dout))
        dx, da = prelu_backward(xb.asarray(dout), cache)
        np.testing.assert_allclose(xb.host(out), t.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(xb.host(dx), tx.grad.numpy(), rtol=1e-14)
        np.testing.assert_allclose(xb.host(da), ta.grad.numpy(), rtol=1e-12)
    for bad in (np.ones((2, 2)), np.ones(3)):
        with pytest.raises(ValueError, match=r"prelu_forward: a must have shape \(1,\) or "
                                             r"\(4,\)"):
            prelu_forward(xb.asarray(np.ones((2, 4))), xb.asarray(bad))


def test_dropout_needs_a_mode_and_keeps_its_own_backend(xb):
    """No mode is refused (as batch norm does; it once meant train mode,
    silently); p = 1 keeps everything; the mask is drawn on the input's
    backend whatever backend is active."""
    from xpnn import backend
    x = xb.asarray(np.ones((100, 50)))
    with pytest.raises(ValueError, match="dropout_param needs 'mode': 'train'"):
        dropout_forward(x, {"p": 0.5, "seed": 0})
    out, (_, mask) = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    assert mask is not None and 0.4 < float(np.mean(xb.host(out) > 0)) < 0.6
    np.testing.assert_array_equal(
        xb.host(dropout_forward(x, {"mode": "train", "p": 1.0})[0]), np.ones((100, 50)))
    with backend.use_backend("numpy"):
        out, _ = dropout_forward(x, {"mode": "train", "p": 0.5})
        assert backend.backend_of(out) == xb.name


def test_the_convnet_gradient_check_prints_the_notebooks_numbers(xb, capsys):
    """CS231n 2019's ThreeLayerConvNet gradient check prints W2 at 1.8e-02
    for a correct implementation (the README's rule of thumb rests on it):
    the cell as written, its printed lines compared to the notebook's."""
    from xpnn.compat.cs231n_2019.classifiers.cnn import ThreeLayerConvNet
    from xpnn.compat.cs231n_2019.gradient_check import eval_numerical_gradient
    from conftest import host
    num_inputs, input_dim, num_classes = 2, (3, 16, 16), 10
    np.random.seed(231)
    X = np.random.randn(num_inputs, *input_dim)
    y = np.random.randint(num_classes, size=num_inputs)
    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=input_dim, hidden_dim=7,
                              dtype=np.float64)
    loss, grads = model.loss(xb.asarray(X), xb.asarray(y))
    for name in sorted(grads):
        def f(_):
            return model.loss(xb.asarray(X), xb.asarray(y))[0]
        num = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-6)
        print("%s max relative error: %e" % (name, rel_error(host(num), host(grads[name]))))
    notebook = [
        "W1 max relative error: 1.380104e-04", "W2 max relative error: 1.822723e-02",
        "W3 max relative error: 3.064049e-04", "b1 max relative error: 3.477652e-05",
        "b2 max relative error: 2.516375e-03", "b3 max relative error: 7.945660e-10"]
    printed = capsys.readouterr().out.splitlines()
    if xb.name in ("numpy", "array_api_strict"):   # NumPy's own sums: digit for digit
        assert printed == notebook
        return
    # torch's convolution sums in another order; these errors measure that
    # rounding (h=1e-6), so their digits differ but not their size
    assert [p.split(":")[0] for p in printed] == [n.split(":")[0] for n in notebook]
    for p, n in zip(printed, notebook):
        got, want = float(p.split(": ")[1]), float(n.split(": ")[1])
        assert want / 10 < got < want * 10, (p, n)
