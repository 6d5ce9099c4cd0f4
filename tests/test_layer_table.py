"""Every layer class from one table (``layer_cases.LAYERS``): gradients
through a small network on every backend, float32 staying float32, the JSON
spec round trip, and what shrink does around it. A new layer gets all of
these from its row."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xpnn import backend, nn, prune
from xpnn.gradient_check import eval_numerical_gradient
from xpnn.nn import (Conv2d, Flatten, Layer, Linear, ReLU, Sequential, TemporalAffine,
                     layer_from_spec)

from conftest import host
from layer_cases import LAYERS


def _net(row, dtype=np.float64, **kw):
    """A producer of the row's input channels (a 1x1 Conv2d or a Linear:
    its gradient runs through the layer's backward), the layer, and a head
    of 3 class scores."""
    case = LAYERS[row]
    shape = case["shape"]
    out = case["make"]().in_shape_out(shape)
    if case["vocab"]:          # it reads the word indices: nothing comes before it
        first = []
    elif len(shape) == 2:      # a sequence (T, D), made by a TemporalAffine
        first = [TemporalAffine(shape[1], shape[1])]
    else:
        first = [Conv2d(shape[0], shape[0], 1) if len(shape) == 3 else
                 Linear(shape[0], shape[0])]
    tail = [Flatten(), Linear(int(np.prod(out)), 3)] if len(out) >= 2 else \
        [Linear(out[0], 3)]
    return Sequential(*first, case["make"](), *tail, input_shape=shape, dtype=dtype, seed=0,
                      **kw)


def _inputs(row, model, r, n):
    """n samples of the row's input: word indices for an Embedding, else normal."""
    vocab = LAYERS[row]["vocab"]
    if vocab:
        return r.randint(vocab, size=(n, *model.input_shape))
    return r.randn(n, *model.input_shape)


def _loss(model, X, y=None):
    """Dropout draws from NumPy's global state: the same draws every call."""
    np.random.seed(3)
    return model.loss(X, y)


def test_every_layer_class_has_a_row():
    classes = {getattr(nn, n) for n in nn.__all__}
    layer_classes = {c for c in classes if isinstance(c, type) and issubclass(c, Layer)
                     and c is not Layer}
    assert layer_classes == {type(case["make"]()) for case in LAYERS.values()}


@pytest.mark.parametrize("row", sorted(LAYERS))
def test_every_param_gradient_through_the_layer(xb, row):
    model = _net(row, reg=0.1)
    r = np.random.RandomState(1)
    X = xb.asarray(_inputs(row, model, r, 4))
    y = xb.asarray(r.randint(3, size=4))
    model.to_device(xb.name)
    loss, grads = _loss(model, X, y)
    assert sorted(grads) == sorted(model.params)
    for name in sorted(model.params):
        num = eval_numerical_gradient(lambda _: _loss(model, X, y)[0], model.params[name],
                                      verbose=False, h=1e-6)
        np.testing.assert_allclose(host(grads[name]), num, rtol=1e-5, atol=1e-8, err_msg=name)
    assert backend.backend_of(_loss(model, X)) == xb.name


@pytest.mark.parametrize("row", sorted(LAYERS))
def test_float32_stays_float32(xb, row):
    model = _net(row, dtype=np.float32)
    r = np.random.RandomState(2)
    X = xb.asarray(_inputs(row, model, r, 4))   # float64 data (or indices), a float32 model
    model.to_device(xb.name)
    loss, grads = _loss(model, X, xb.asarray(r.randint(3, size=4)))
    assert str(loss.dtype).endswith("float32")
    for name, g in grads.items():
        assert str(g.dtype).endswith("float32"), name
    assert str(_loss(model, X).dtype).endswith("float32")


@pytest.mark.parametrize("row", sorted(LAYERS))
def test_the_spec_is_json_and_rebuilds_the_layer(row):
    layer = LAYERS[row]["make"]()
    spec = json.loads(json.dumps(layer.spec()))
    again = layer_from_spec(spec)
    assert type(again) is type(layer) and again.spec() == layer.spec()
    assert repr(again) == repr(layer)
    model = _net(row)
    twin = Sequential.from_config(**json.loads(json.dumps(model.init_kwargs)))
    twin.params = dict(model.params)
    for entry, mine in zip(twin.bn_params, model.bn_params):
        entry.update(mine)
    X = _inputs(row, model, np.random.RandomState(4), 3)
    np.testing.assert_array_equal(host(_loss(twin, X)), host(_loss(model, X)))


def _prune_one_channel(model):
    """Channel 1 pruned along the outputs of every layer that makes channels
    (but the class scores): its weights zeroed first, so that L1 pruning
    picks that channel in each, as the layers a residual add joins need."""
    for layer in _producers(model):
        name, dim = layer.param_names["W"], layer.out_dim
        w = host(model.params[name]).copy()
        index = [slice(None)] * w.ndim
        index[dim] = 1
        w[tuple(index)] = 0.0
        model.params[name] = backend.to_device(w)
        prune.ln_structured(model, name, 1, dim=dim)


def _producers(model):
    from xpnn.nn.network import _walk
    last = model.modules[-1]
    return [la for _, la in _walk(model.modules) if la.channels == "new" and la is not last]


@pytest.mark.parametrize("row", sorted(LAYERS))
def test_shrink_around_the_layer(row):
    """With channel 1 pruned wherever channels are made, shrink removes it
    through the layer and the smaller model computes the same scores, or it
    refuses, saying why."""
    model = _net(row)
    r = np.random.RandomState(5)
    X = _inputs(row, model, r, 6)
    _loss(model, X, r.randint(3, size=6))   # a training pass moves running statistics
    _prune_one_channel(model)
    before = host(_loss(model, X))
    expect = LAYERS[row]["shrink"]
    if expect != "equal":
        with pytest.raises(ValueError, match=expect):
            prune.shrink(model)
        return
    small = prune.shrink(model)
    assert small.shrink_report["params_after"] < small.shrink_report["params_before"]
    np.testing.assert_allclose(host(_loss(small, X)), before, rtol=1e-10, atol=1e-12)


class _Undeclared(Layer):
    """A user's layer that says nothing of its channels."""

    def forward(self, x, train):
        return x, None

    def backward(self, dout, cache):
        return dout, {}


def test_shrink_refuses_a_layer_that_declares_no_channel_rule():
    model = Sequential(Conv2d(2, 3, 3, padding=1), _Undeclared(), ReLU(), Flatten(),
                       Linear(3 * 4 * 4, 2), input_shape=(2, 4, 4), dtype=np.float64, seed=0)
    prune.ln_structured(model, "0.W", 1, dim=0)
    with pytest.raises(ValueError, match=r"^_Undeclared\(\) declares no channel rule"):
        prune.shrink(model)


def test_avgpool_padding_matches_pytorch():
    """Zeros counted in every mean, PyTorch's default."""
    torch = pytest.importorskip("torch")
    from xpnn.nn import AvgPool2d
    r = np.random.RandomState(6)
    x = r.randn(2, 3, 7, 6)
    for k, s, p in ((3, 2, 1), (2, 1, 1), ((3, 2), 2, 1)):
        layer = AvgPool2d(k, stride=s, padding=p)
        layer.in_shape_out(x.shape[1:])
        out, cache = layer.forward(x, True)
        t = torch.tensor(x, requires_grad=True)
        ref = torch.nn.functional.avg_pool2d(t, k, s, p)
        np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12, atol=1e-14)
        dout = r.randn(*out.shape)
        ref.backward(torch.tensor(dout))
        np.testing.assert_allclose(layer.backward(dout, cache)[0], t.grad.numpy(), rtol=1e-12,
                                   atol=1e-14)
    with pytest.raises(ValueError, match="padding 2 is more than half the 3x3 window"):
        AvgPool2d(3, padding=2)


@pytest.mark.parametrize("row", sorted(LAYERS))
def test_a_checkpoint_cannot_declare_the_layer_larger_than_it_stores(row, tmp_path):
    """Each size argument a layer class declares (``size_args``) is checked
    against the parameter values a checkpoint holds: a stored layer of this
    kind that asks for 10^7 in any of them is refused, naming the setting,
    before anything is allocated (before, an LSTM's hidden_size, a PReLU's
    num_parameters or a kernel_size went unchecked). A layer with
    parameters declares at least one."""
    import json
    from xpnn.checkpoint import load_model, save_model
    model = _net(row)
    path = str(tmp_path / "m.npz")
    save_model(model, path)
    layer = LAYERS[row]["make"]()
    layer.in_shape_out(LAYERS[row]["shape"])
    has_params = bool(layer.param_shapes)     # a Residual's are its body's layers'
    sized = type(layer).size_args
    assert sized or not has_params, f"{row} has parameters but declares no size_args"
    assert set(sized) <= set(layer.config()), (row, sized)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    at = 1 if not LAYERS[row]["vocab"] else 0        # the row's layer in the stored list
    stored = meta["model"]["init_kwargs"]["layers"][at]
    assert stored["type"] == type(layer).__name__, stored
    for key in sized:
        crafted = json.loads(json.dumps(meta))
        value = stored[key]
        crafted["model"]["init_kwargs"]["layers"][at][key] = \
            [10 ** 7] * len(value) if isinstance(value, list) else 10 ** 7
        arrays["__meta__"] = np.array(json.dumps(crafted))
        np.savez(tmp_path / "crafted.npz", **arrays)
        with pytest.raises(ValueError, match=r"model setting layers asks for a size of "
                                             r"10000000, more than the \d+ parameter values"):
            load_model(str(tmp_path / "crafted.npz"))
