"""xpnn.nn: layer objects composed with Sequential, on every backend.

Every parametrised layer's gradient through a whole model against a
numerical one (float64); PyTorch's floor rule for strided convs and pools
checked against PyTorch itself; shape mismatches named; attributes that stay
the model's params; training through the Solver."""
from __future__ import annotations

import re

import numpy as np
import pytest

from xpnn import backend
from xpnn.data import get_digits_data
from xpnn.gradient_check import eval_numerical_gradient
from xpnn.nn import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, ELU, Flatten,
                     GlobalAvgPool2d, GroupNorm, LayerNorm, LeakyReLU, Linear, MaxPool2d, PReLU,
                     ReLU, Residual, Sequential)
from xpnn.solver import Solver

from conftest import host

NETS = {  # name: (layers, input shape); together they hold every layer class
    "conv_bn_relu_maxpool": (lambda: [Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), ReLU(),
                                      MaxPool2d(2), Flatten(), Linear(27, 4)], (2, 6, 6)),
    "strided_conv_floor": (lambda: [Conv2d(2, 3, (3, 2), stride=2, padding=1), LeakyReLU(0.1),
                                    Flatten(), Linear(3 * 3 * 3, 3)], (2, 6, 5)),
    "groupnorm_elu_avgpool": (lambda: [Conv2d(2, 4, 3), GroupNorm(2, 4), ELU(0.7),
                                       AvgPool2d(3, stride=2), GlobalAvgPool2d(), Linear(4, 3)],
                              (2, 8, 7)),
    "residual_shortcut_prelu": (lambda: [
        Residual([Conv2d(2, 4, 3, stride=2, padding=1), PReLU(4), Conv2d(4, 4, 3, padding=1)],
                 Conv2d(2, 4, 1, stride=2)),
        Residual([BatchNorm2d(4), PReLU()]), GlobalAvgPool2d(), Linear(4, 3)], (2, 5, 5)),
    "mlp_bn1d_layernorm": (lambda: [Flatten(), Linear(12, 6), BatchNorm1d(6), ReLU(),
                                    Linear(6, 5), LayerNorm(5), ELU(), Linear(5, 3)], (3, 2, 2)),
}


def _model(name, **kw):
    layers, shape = NETS[name]
    return Sequential(*layers(), input_shape=shape, dtype=np.float64, seed=0, **kw)


@pytest.mark.parametrize("name", sorted(NETS))
def test_every_param_gradient_through_the_model(xb, name):
    model = _model(name, reg=0.1)
    r = np.random.RandomState(1)
    X = xb.asarray(r.randn(4, *model.input_shape))
    y = xb.asarray(r.randint(model.num_classes, size=4))
    model.to_device(xb.name)
    loss, grads = model.loss(X, y)
    assert sorted(grads) == sorted(model.params)
    for pname in sorted(model.params):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[pname],
                                      verbose=False, h=1e-6)
        # (a bias before a batch norm has gradient 0: atol)
        np.testing.assert_allclose(host(grads[pname]), num, rtol=1e-5, atol=1e-8,
                                   err_msg=pname)
    scores = model.loss(X)
    assert tuple(scores.shape) == (4, model.num_classes)
    assert backend.backend_of(scores) == xb.name


def test_floor_rule_matches_pytorch():
    """A strided conv and pool whose windows do not reach the last rows and
    columns: output size and values (forward and input gradient) as
    PyTorch's, which drops those rows; the course functions would refuse."""
    torch = pytest.importorskip("torch")
    r = np.random.RandomState(0)
    x = r.randn(2, 3, 16, 15)
    model = Sequential(Conv2d(3, 4, 3, stride=2, padding=1), MaxPool2d(3, stride=2),
                       Flatten(), Linear(4 * 3 * 3, 2), input_shape=(3, 16, 15),
                       dtype=np.float64, seed=0).to_device("numpy")  # layers called directly
    assert model[0].out_shape == (4, 8, 8) and model[1].out_shape == (4, 3, 3)
    conv, pool = model[0], model[1]
    h, c1 = conv.forward(x, True)
    out, c2 = pool.forward(h, True)
    tx = torch.tensor(x, requires_grad=True)
    th = torch.nn.functional.conv2d(tx, torch.tensor(conv.W), torch.tensor(conv.b), stride=2,
                                    padding=1)
    tout = torch.nn.functional.max_pool2d(th, 3, stride=2)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = r.randn(*out.shape)
    tout.backward(torch.tensor(dout))
    dh, _ = pool.backward(dout, c2)
    dx, g = conv.backward(dh, c1)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert dx.shape == x.shape


def test_mismatches_are_named():
    with pytest.raises(ValueError, match=r"layer 2: Linear\(10, 3\): expects 10 input "
                                         r"features, got input \(4, 3, 3\) \(36 features\)"):
        Sequential(Conv2d(1, 4, 3), MaxPool2d(2), Linear(10, 3), input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"layer 0: Conv2d\(3, 4, 3\): expects input "
                                         r"\(C=3, H, W\), got \(1, 8, 8\)"):
        Sequential(Conv2d(3, 4, 3), input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"body gives \(4, 4, 4\) but the shortcut gives "
                                         r"\(1, 8, 8\)"):
        Sequential(Residual(Conv2d(1, 4, 3, stride=2, padding=1)), GlobalAvgPool2d(),
                   Linear(4, 2), input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="num_classes=10 but the last layer Linear\\(4, 6\\) "
                                         "outputs 6 scores"):
        Sequential(Flatten(), Linear(4, 6), input_shape=(4,), num_classes=10)
    with pytest.raises(ValueError, match="class scores must be 1-D"):
        Sequential(Conv2d(1, 2, 3), input_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="layer 1 is 'relu', not an xpnn.nn layer"):
        Sequential(Flatten(), "relu", input_shape=(4,))
    model = Sequential(Flatten(), Linear(4, 2), input_shape=(1, 2, 2))
    with pytest.raises(ValueError, match=r"X has shape \(3, 4\); this model takes "
                                         r"\(N, 1, 2, 2\)"):
        model.loss(np.zeros((3, 4)))


def test_dropout_says_which_probability_it_takes():
    for bad in ((0.2,), ()):
        with pytest.raises(TypeError, match="exactly one of drop= .*DROPPING.* or keep= "
                                            ".*KEEPING"):
            Dropout(*bad)
    with pytest.raises(TypeError, match="exactly one"):
        Dropout(drop=0.2, keep=0.8)
    with pytest.raises(ValueError, match="Dropout: drop must be a finite number in \\[0.0, 1.0\\)"):
        Dropout(drop=1.0)
    assert Dropout(drop=0.2).keep == pytest.approx(0.8) and Dropout(keep=0.3).keep == 0.3
    np.random.seed(0)
    x = np.ones((200, 50))
    out, cache = Dropout(drop=0.2).forward(x, True)
    assert set(np.unique(out)) == {0.0, 1.25} and abs((out > 0).mean() - 0.8) < 0.01
    assert Dropout(drop=0.2).forward(x, False)[0] is x


def test_layer_attributes_are_the_models_params(xb):
    np.random.seed(0)
    data = get_digits_data()
    model = Sequential(Conv2d(1, 6, 3, padding=1), BatchNorm2d(6), ReLU(), MaxPool2d(2),
                       Dropout(drop=0.1), Flatten(), Linear(96, 10), input_shape=(1, 8, 8),
                       dtype=np.float64)
    model.to_device(xb.name)
    solver = Solver(model, data, num_epochs=3, batch_size=50, update_rule="adam",
                    optim_config={"learning_rate": 1e-2}, verbose=False)
    solver.train()
    assert solver.best_val_acc > 0.9
    # after the Solver replaced the arrays, the layers still show the model's
    assert model[0].W is model.params["0.W"] and model[6].b is model.params["6.b"]
    assert model[1].running_mean is model.bn_params[0]["running_mean"]
    assert float(np.abs(host(model[1].running_var)).sum()) > 0
    new = xb.asarray(np.zeros((10,)))
    model[6].b = new
    assert model.params["6.b"] is new
    assert backend.backend_of(model.params["0.W"]) == xb.name


def test_to_device_moves_params_and_running_statistics():
    model = _model("residual_shortcut_prelu")
    model.to_device("array_api_strict")
    for v in model.params.values():
        assert backend.backend_of(v) == "array_api_strict"
    for p in model.bn_params:
        assert backend.backend_of(p["running_mean"]) == "array_api_strict"
    model.to_device("numpy")
    assert all(backend.is_host(v) for v in model.params.values())


def test_summary_table_counts_params_and_multiply_adds():
    model = Sequential(Conv2d(3, 8, 3, padding=1), ReLU(), MaxPool2d(2),
                       Residual([Conv2d(8, 16, 3, stride=2, padding=1)],
                                Conv2d(8, 16, 1, stride=2)),
                       GlobalAvgPool2d(), Linear(16, 10), input_shape=(3, 16, 16))
    text = repr(model)
    assert "Conv2d(3, 8, 3, padding=1)" in text and "8x16x16" in text
    assert f"{8 * 16 * 16 * 3 * 9:,}" in text               # conv 0: F*Ho*Wo*C*kh*kw
    assert f"{16 * 4 * 4 * 8 * 9:,}" in text and f"{16 * 4 * 4 * 8:,}" in text
    total = sum(int(np.prod(v.shape)) for v in model.params.values())
    assert total == 3 * 8 * 9 + 8 + 8 * 16 * 9 + 16 + 8 * 16 + 16 + 16 * 10 + 10
    assert f"{total:,}" in text.splitlines()[-1]
    assert "6.shortcut" not in text and "3.shortcut.0 Conv2d(8, 16, 1, stride=2)" in text


def test_seeded_models_repeat_and_course_order_draws_from_numpy():
    a, b = _model("conv_bn_relu_maxpool"), _model("conv_bn_relu_maxpool")
    for k in a.params:
        np.testing.assert_array_equal(host(a.params[k]), host(b.params[k]))
    np.random.seed(3)
    m = Sequential(Flatten(), Linear(4, 2), input_shape=(4,), dtype=np.float64)
    np.random.seed(3)
    np.testing.assert_array_equal(host(m.params["1.W"]), np.sqrt(2 / 4) * np.random.randn(4, 2))


def test_architecture_is_json_and_survives_save_and_load(tmp_path):
    import json
    from xpnn.checkpoint import load_model, save_model
    from xpnn.nn import load_arch
    model = _model("residual_shortcut_prelu")
    r = np.random.RandomState(0)
    X, y = r.randn(6, 2, 5, 5), r.randint(3, size=6)
    model.loss(X, y)                                  # running statistics move
    arch = json.loads(json.dumps(model.init_kwargs))  # data, never code
    path = str(tmp_path / "m.npz")
    save_model(model, path)
    back = load_model(path)
    assert type(back).__name__ == "Sequential" and repr(back) == repr(model)
    for k in model.params:
        np.testing.assert_array_equal(host(back.params[k]), host(model.params[k]))
    np.testing.assert_array_equal(host(back.loss(X)), host(model.loss(X)))  # test mode
    f = tmp_path / "arch.json"
    f.write_text(json.dumps({"layers": arch["layers"]}))
    again = load_arch(str(f), input_shape=(2, 5, 5), num_classes=3, dtype=np.float64)
    assert repr(again) == repr(model)


@pytest.mark.parametrize("text, match", [
    ('[{"type": "Conv3d"}]', "layer 0: unknown layer type 'Conv3d'; known: Conv2d"),
    ('[{"kind": "ReLU"}]', 'layer 0: expected an object with a "type"'),
    ('[{"type": "Linear", "in_features": 4}]', "layer 0: Linear: .*missing 1 required"),
    ('[{"type": "Flatten"}, {"type": "Linear", "in_features": 5, "out_features": 2}]',
     r"layer 1: Linear\(5, 2\): expects 5 input features, got input \(4,\)"),
    ('[{"type": "Residual", "body": {"type": "ReLU"}}]', 'a Residual needs "body": \\[layers\\]'),
    ('[{"type": "Residual", "body": [{"type": "Relu"}]}]', "layer 0.body.0: unknown layer type"),
    ('{"layers": [], "extra": 1}', 'expected a list of layers or an object with "layers"'),
    ('{"layers": []}', 'an architecture needs "layers": a non-empty list'),
    ("[{", "is not JSON"),
])
def test_bad_architecture_files_name_the_layer(tmp_path, text, match):
    from xpnn.nn import load_arch
    f = tmp_path / "a.json"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_arch(str(f), input_shape=(1, 2, 2))


def test_the_seed_challenge_net():
    from xpnn.nn import challenge_net
    model = challenge_net((3, 32, 32), 6)
    kinds = [type(la).__name__ for la in model]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Dropout"] * 3 + \
        ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert model[0].W.shape == (64, 3, 5, 5) and model[5].W.shape == (128, 64, 3, 3)
    assert model[16].W.shape == (4096, 512) and model[19].W.shape == (512, 6)
    assert [model[i].keep for i in (4, 9, 14, 18)] == pytest.approx([0.8, 0.7, 0.6, 0.5])


def test_cli_trains_an_architecture_file_and_the_challenge_net(tmp_path):
    import json
    import subprocess
    import sys
    arch = [{"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3,
             "padding": 1}, {"type": "BatchNorm2d", "num_features": 8}, {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Flatten"},
            {"type": "Linear", "in_features": 128, "out_features": 10}]
    f = tmp_path / "arch.json"
    f.write_text(json.dumps(arch))
    env = dict(__import__("os").environ, XPNN_BACKEND="numpy")
    for extra in (["--arch", str(f), "--epochs", "3"], ["--model", "challenge", "--epochs", "1"]):
        out = subprocess.run([sys.executable, "-m", "xpnn.cli", "train", *extra, "--plot", "none",
                              "--lr", "5e-3"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "0 Conv2d(1, " in out.stdout and "val accuracy:" in out.stdout
        acc = float(out.stdout.split("val accuracy:")[1].split()[0])
        assert acc > (0.85 if "--arch" in extra else 0.5), out.stdout


def test_resumed_sequential_run_equals_the_uninterrupted_one(tmp_path, capsys):
    """Dropout and batch norm included: the checkpoint holds the architecture,
    params, running statistics, optimizer state and RNG."""
    import json
    from xpnn.cli import main
    arch = [{"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3,
             "padding": 1}, {"type": "BatchNorm2d", "num_features": 4}, {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Dropout", "drop": 0.2},
            {"type": "Flatten"}, {"type": "Linear", "in_features": 64, "out_features": 10}]
    f = tmp_path / "arch.json"
    f.write_text(json.dumps(arch))
    common = ["--plot", "none", "--quiet", "--backend", "numpy"]
    assert main(["train", "--arch", str(f), "--epochs", "2", *common]) == 0
    whole = capsys.readouterr().out.splitlines()[0]
    ck = str(tmp_path / "ck")
    assert main(["train", "--arch", str(f), "--epochs", "1", "--checkpoint", ck, *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", ck + "_epoch_1.npz", "--epochs", "2", *common]) == 0
    resumed = capsys.readouterr().out.splitlines()[0]
    assert resumed.split("(")[0] == whole.split("(")[0]   # the same accuracies


def _readme_section(section):
    import os
    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    return " ".join(text.split(f"## {section}", 1)[1].split("\n## ", 1)[0].split())


def _readme_blocks(section, lang):
    import os
    import re
    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", body, re.S)


def test_readme_section_runs_as_written(tmp_path, monkeypatch, capsys):
    (code,), (arch,) = _readme_blocks("Composing networks", "python"), \
        _readme_blocks("Composing networks", "json")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    np.random.seed(0)    # the Solver's batches: one fixed draw of what a reader may get
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "multiply-adds" in out
    # what the README says it prints: a first loss between 5 and 6 (He init,
    # not the course's 2.30) and 0.8 or so validation accuracy after 3 epochs
    first = float(re.search(r"\(Iteration 1 / \d+\) loss: ([\d.]+)", out).group(1))
    last = float(re.findall(r"val_acc: ([\d.]+)", out)[-1])
    assert 5 < first < 6 and 0.7 < last, out
    said = _readme_section("Composing networks")
    assert "the loss starts between 5 and 6" in said and "reaches 0.8 or so" in said
    assert namespace["model"][0].W is namespace["model"].params["0.W"]
    from xpnn.nn import load_arch
    (tmp_path / "net.json").write_text(arch)
    assert len(load_arch("net.json", input_shape=(1, 8, 8), num_classes=10)) == 8


def _resnet():
    return [Conv2d(1, 8, 3, padding=1), BatchNorm2d(8), ReLU(),
            Residual([Conv2d(8, 8, 3, padding=1), BatchNorm2d(8), ReLU(),
                      Conv2d(8, 8, 3, padding=1), BatchNorm2d(8)]), ReLU(),
            Residual([Conv2d(8, 16, 3, stride=2, padding=1), BatchNorm2d(16), ReLU(),
                      Conv2d(16, 16, 3, padding=1), BatchNorm2d(16)],
                     [Conv2d(8, 16, 1, stride=2), BatchNorm2d(16)]), ReLU(),
            GlobalAvgPool2d(), Linear(16, 10)]


def _torch_forward(torch, layers, x, P):
    """The same network written with torch.nn.functional, reading the
    xpnn model's params (a dict of torch tensors keyed like model.params)."""
    F = torch.nn.functional
    for layer in layers:
        n = layer.param_names
        if isinstance(layer, Conv2d):
            x = F.conv2d(x, P[n["W"]], P[n["b"]], stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, BatchNorm2d):
            x = F.batch_norm(x, None, None, P[n["gamma"]], P[n["beta"]], training=True,
                             eps=layer.eps)
        elif isinstance(layer, Linear):
            x = x.reshape(x.shape[0], -1) @ P[n["W"]] + P[n["b"]]
        elif isinstance(layer, ReLU):
            x = F.relu(x)
        elif isinstance(layer, MaxPool2d):
            x = F.max_pool2d(x, layer.kernel_size, stride=layer.stride)
        elif isinstance(layer, GlobalAvgPool2d):
            x = x.mean(dim=(2, 3))
        elif isinstance(layer, Flatten):
            x = x.reshape(x.shape[0], -1)
        elif isinstance(layer, Dropout):
            assert layer.keep == 1.0
        elif isinstance(layer, Residual):
            x = _torch_forward(torch, layer.body, x, P) + \
                (_torch_forward(torch, layer.shortcut, x, P) if layer.shortcut else x)
        else:
            raise AssertionError(layer)
    return x


@pytest.mark.parametrize("net", ["challenge", "resnet"])
def test_loss_and_every_gradient_match_pytorch(net):
    """The seed's challenge net (dropout off: keep=1) and a small ResNet with
    a strided 1x1 shortcut, from the same float64 weights."""
    torch = pytest.importorskip("torch")
    from xpnn.nn import challenge_net
    if net == "challenge":
        model = challenge_net((3, 32, 32), 6, dtype=np.float64, seed=0)
        for layer in model:
            if isinstance(layer, Dropout):
                layer.keep = 1.0
    else:
        model = Sequential(*_resnet(), input_shape=(1, 8, 8), dtype=np.float64, seed=0)
    r = np.random.RandomState(0)
    X = r.randn(3, *model.input_shape)
    y = r.randint(model.num_classes, size=3)
    loss, grads = model.loss(X, y)
    P = {k: torch.tensor(host(v), requires_grad=True) for k, v in model.params.items()}
    tloss = torch.nn.functional.cross_entropy(
        _torch_forward(torch, model.modules, torch.tensor(X), P), torch.tensor(y))
    tloss.backward()
    assert abs(float(host(loss)) - tloss.item()) <= 1e-10 * abs(tloss.item())
    for k, t in P.items():
        g, tg = host(grads[k]), t.grad.numpy()
        err = np.abs(g - tg).max() / max(np.abs(tg).max(), 1e-300)
        assert err < 1e-10 or np.abs(g - tg).max() < 1e-14, f"{k}: {err:.1e}"


def test_pruning_a_sequential(tmp_path):
    """Unstructured pruning over every weight, kept through training; along
    a conv's outputs the bias and the next batch norm's entries go too, so
    those channels output exactly zero; masks survive save and load."""
    from xpnn import prune
    from xpnn.checkpoint import load_model, save_model
    np.random.seed(0)
    model = Sequential(*_resnet(), input_shape=(1, 8, 8), dtype=np.float64, seed=0)
    names = prune.prunable_names(model)
    assert names == ["0.W", "3.body.0.W", "3.body.3.W", "5.body.0.W", "5.body.3.W",
                     "5.shortcut.0.W", "8.W"]
    prune.global_unstructured(model, 0.5)
    assert prune.sparsity(model)["global"] == pytest.approx(0.5, abs=1e-3)
    prune.ln_structured(model, "5.body.0.W", 4, dim=0)
    assert {k for k, v in model.prune_kinds.items() if v == "companion:5.body.0.W"} == \
        {"5.body.0.b", "5.body.1.gamma", "5.body.1.beta"}
    data = {k: v[:200] for k, v in get_digits_data().items()}
    Solver(model, data, num_epochs=1, batch_size=50, verbose=False).train()
    for k, m in model.masks.items():
        assert np.all(host(model.params[k])[host(m) == 0] == 0), k
    dead = np.flatnonzero(host(model.masks["5.body.0.b"]) == 0)
    h = backend.to_device(np.asarray(data["X_val"][:5], dtype=np.float64),
                          backend.backend_of(model.params["0.W"]))
    for layer in model.modules[:5] + model[5].body[:3]:  # up to the ReLU after 5.body.1
        h, _ = layer.forward(h, False)
    h = host(h)
    assert dead.size == 4 and np.all(h[:, dead] == 0) and np.any(h != 0)
    back = load_model(save_model(model, str(tmp_path / "p.npz")))
    assert back.prune_kinds == model.prune_kinds
    np.testing.assert_array_equal(host(back.loss(data["X_val"])), host(model.loss(data["X_val"])))



def _pruned_resnet():
    from xpnn import prune
    model = Sequential(*_resnet(), input_shape=(1, 8, 8), dtype=np.float64, seed=0)
    r = np.random.RandomState(2)
    X, y = r.randn(8, 1, 8, 8), r.randint(10, size=8)
    model.loss(X, y)                                    # running statistics move
    return model, X, prune


def test_shrink_follows_the_graph_and_keeps_the_outputs(tmp_path):
    """Inside a residual body channels go freely; across an add only those
    pruned in both branches; the class scores and input stay whole."""
    from xpnn.checkpoint import load_model, save_model
    model, X, prune = _pruned_resnet()
    prune.ln_structured(model, "3.body.0.W", 3, dim=0)    # inside the first body: free
    prune.ln_structured(model, "5.body.3.W", 6, dim=0)    # tied by the add to the shortcut
    dead_body = sorted(np.flatnonzero(host(model.masks["5.body.3.b"]) == 0))
    # the shortcut prunes 4 of those 6 and 2 others: make them its smallest
    chosen = dead_body[:4] + [i for i in range(16) if i not in dead_body][:2]
    w = host(model.params["5.shortcut.0.W"]).copy()
    w[chosen] *= 1e-3
    model.params["5.shortcut.0.W"] = w
    prune.ln_structured(model, "5.shortcut.0.W", 6, dim=0)
    assert sorted(np.flatnonzero(host(model.masks["5.shortcut.1.gamma"]) == 0)) == \
        sorted(chosen)
    prune.l1_unstructured(model, "8.W", 0.3)             # an unstructured mask that stays
    small = prune.shrink(model)
    assert small.shrink_report["removed"] == {"3.body.0.W": 3, "5.body.3.W": 4,
                                              "5.shortcut.0.W": 4}
    assert small[3].body[0].out_channels == 5 and small[3].body[3].in_channels == 5
    assert small[5].body[3].out_channels == 12 and small[5].shortcut[0].out_channels == 12
    assert small[8].W.shape == (12, 10) and small[5].body[4].num_features == 12
    for s, t in ((model.loss(X), small.loss(X)),):
        np.testing.assert_allclose(host(t), host(s), rtol=1e-11, atol=1e-12)
    assert small.prune_kinds["8.W"] == "unstructured"
    stats = prune.model_stats(small)
    assert stats["flops"] < prune.model_stats(model)["flops"]
    back = load_model(save_model(small, str(tmp_path / "s.npz")))
    np.testing.assert_allclose(host(back.loss(X)), host(model.loss(X)), rtol=1e-11, atol=1e-12)


def test_shrink_of_a_flattened_conv_and_what_it_refuses():
    from xpnn import prune
    model = Sequential(Conv2d(1, 6, 3, padding=1), BatchNorm2d(6), PReLU(6), MaxPool2d(2),
                       Flatten(), Linear(6 * 4 * 4, 7), ReLU(), Linear(7, 3),
                       input_shape=(1, 8, 8), dtype=np.float64, seed=1)
    r = np.random.RandomState(0)
    X = r.randn(5, 1, 8, 8)
    model.loss(X, r.randint(3, size=5))
    prune.ln_structured(model, "0.W", 2, dim=0)
    prune.ln_structured(model, "5.W", 3, dim=1)
    small = prune.shrink(model)
    assert small[5].W.shape == (4 * 16, 4) and small[2].a.shape == (4,)
    np.testing.assert_allclose(host(small.loss(X)), host(model.loss(X)), rtol=1e-11,
                               atol=1e-12)
    m2 = Sequential(Flatten(), Linear(4, 3), input_shape=(4,), seed=0)
    with pytest.raises(ValueError, match="nothing to shrink"):
        prune.shrink(m2)
    m3, _, _ = _pruned_resnet()
    prune.ln_structured(m3, "5.body.3.W", 5, dim=0)      # the shortcut keeps them: tied
    with pytest.raises(ValueError, match="pruned in both branches"):
        prune.shrink(m3)
    m7 = Sequential(Conv2d(1, 4, 3, padding=1),
                    Residual([Conv2d(4, 4, 3, padding=1)], Conv2d(4, 4, 1)),
                    Flatten(), Linear(4 * 16, 3), input_shape=(1, 4, 4), seed=0)
    prune.ln_structured(m7, "1.shortcut.0.W", 2, dim=0)  # the shortcut alone: tied too
    with pytest.raises(ValueError, match="pruned in both branches"):
        prune.shrink(m7)
    # an identity shortcut from the input ties the body's filters to the input
    # channels, which stay whole
    m6 = Sequential(Residual([Conv2d(2, 2, 3, padding=1)]), Flatten(), Linear(2 * 4 * 4, 3),
                    input_shape=(2, 4, 4), seed=0)
    prune.ln_structured(m6, "0.body.0.W", 1, dim=0)
    with pytest.raises(ValueError, match="0.body.0.W reads the network's input"):
        prune.shrink(m6)
    m4 = Sequential(Flatten(), Linear(4, 3), LayerNorm(3), Linear(3, 2), input_shape=(4,))
    prune.ln_structured(m4, "1.W", 1, dim=1)
    with pytest.raises(ValueError, match="1.W feeds a layer norm"):
        prune.shrink(m4)                                  # a layer norm spans its units
    prune.remove(m4)
    prune.ln_structured(m4, "3.W", 1, dim=1)
    with pytest.raises(ValueError, match="3.W is the output layer"):
        prune.shrink(m4)
    m5 = Sequential(Flatten(), Linear(4, 3), ReLU(), Linear(3, 2), input_shape=(4,))
    prune.ln_structured(m5, "1.W", 3, dim=1)
    with pytest.raises(ValueError, match="every unit of 1.W is pruned"):
        prune.shrink(m5)


def test_challenge_net_prunes_and_shrinks_with_outputs_unchanged():
    from xpnn import prune
    from xpnn.nn import challenge_net
    model = challenge_net((1, 8, 8), 10, dtype=np.float64, seed=0)
    r = np.random.RandomState(0)
    X = r.randn(6, 1, 8, 8)
    model.loss(X, r.randint(10, size=6))
    for name, amount, dim in (("0.W", 16, 0), ("5.W", 32, 0), ("10.W", 64, 0), ("16.W", 128, 1)):
        prune.ln_structured(model, name, amount, dim=dim)
    small = prune.shrink(model)
    assert small.shrink_report["removed"] == {"0.W": 16, "5.W": 32, "10.W": 64, "16.W": 128}
    assert [small[i].W.shape for i in (0, 5, 10, 16, 19)] == [
        (48, 1, 5, 5), (96, 48, 3, 3), (192, 96, 3, 3), (192, 384), (384, 10)]
    assert small.shrink_report["flops_after"] < 0.6 * small.shrink_report["flops_before"]
    np.testing.assert_allclose(host(small.loss(X)), host(model.loss(X)), rtol=1e-10,
                               atol=1e-11)


def test_shrink_names_a_group_norm_that_spans_pruned_channels():
    from xpnn import prune
    m = Sequential(Conv2d(1, 4, 3, padding=1), GroupNorm(2, 4), ReLU(), Flatten(),
                   Linear(4 * 4 * 4, 3), input_shape=(1, 4, 4), seed=0)
    prune.ln_structured(m, "0.W", 1, dim=0)
    with pytest.raises(ValueError, match="0.W feeds a group norm, whose statistics span all "
                                         "its channels"):
        prune.shrink(m)


def test_shrink_prelu_sizes_batchnorm_after_relu_and_the_device():
    """A per-channel PReLU shrinks with its channels, a shared one stays one
    parameter; a batch norm after the ReLU turns a zeroed channel into its
    beta, so those filters cannot go; a shrunk model stays on the model's
    backend, whatever the default."""
    from xpnn import prune
    r = np.random.RandomState(0)
    X = r.randn(5, 1, 4, 4)
    m = Sequential(Conv2d(1, 2, 3, padding=1), PReLU(2), Conv2d(2, 3, 3, padding=1), PReLU(),
                   Flatten(), Linear(48, 3), input_shape=(1, 4, 4), dtype=np.float64, seed=0)
    m.params["1.a"] = np.array([0.1, 0.3])
    prune.ln_structured(m, "0.W", 1, dim=0)
    prune.ln_structured(m, "2.W", 1, dim=0)
    small = prune.shrink(m)
    assert small[1].num_parameters == 1 and small[3].num_parameters == 1
    assert small.params["1.a"].shape == (1,) and small.params["3.a"].shape == (1,)
    np.testing.assert_allclose(host(small.loss(X)), host(m.loss(X)), rtol=1e-12, atol=1e-13)

    bn = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), BatchNorm2d(4), Flatten(),
                    Linear(64, 3), input_shape=(1, 4, 4), dtype=np.float64, seed=0)
    bn.loss(X, r.randint(3, size=5))
    prune.ln_structured(bn, "0.W", 1, dim=0)               # the norm's gamma/beta stay
    with pytest.raises(ValueError, match="nothing to shrink"):
        prune.shrink(bn)
    # its gamma masked too, but not its beta: the channel still carries beta
    dead = int(np.flatnonzero(host(bn.masks["0.b"]) == 0)[0])
    gamma = np.ones(4)
    gamma[dead] = 0.01
    bn.params["2.gamma"], bn.params["2.beta"] = gamma, np.full(4, 0.5)
    prune.l1_unstructured(bn, "2.gamma", 1)
    assert host(bn.masks["2.gamma"]).tolist().count(0) == 1
    assert host(bn.params["2.gamma"])[dead] == 0
    with pytest.raises(ValueError, match="nothing to shrink"):
        prune.shrink(bn)

    dev = Sequential(Conv2d(1, 2, 3, padding=1), ReLU(), Flatten(), Linear(32, 3),
                     input_shape=(1, 4, 4), dtype=np.float64, seed=0)
    dev.to_device("array_api_strict")
    prune.ln_structured(dev, "0.W", 1, dim=0)
    with backend.use_backend("numpy"):
        small = prune.shrink(dev)
    assert {backend.backend_of(v) for v in small.params.values()} == {"array_api_strict"}


def test_readme_gradient_check_prints_what_the_readme_shows(capsys):
    """The README's gradient check, run as written, prints its expected
    output (the errors compared by order of magnitude: BLAS may move the
    last digits)."""
    import os
    import re
    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md"),
                encoding="utf-8").read()
    body = text.split("## A gradient check", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", body, re.S)
    (shown,) = re.findall(r"```\n(loss .*?)```", body, re.S)
    with backend.use_backend("numpy"):
        exec(compile(code, "README.md", "exec"), {})
    got = capsys.readouterr().out.split()
    want = shown.split()
    assert len(got) == len(want) and got[:2] == want[:2]
    assert abs(float(got[1]) - float(want[1])) < 1e-6
    for g, w in zip(got[2:], want[2:]):
        if re.fullmatch(r"[\d.]+e-\d+", w):
            assert abs(np.log10(float(g)) - np.log10(float(w))) < 0.5, (g, w)
        else:
            assert g == w


def test_a_window_that_leaves_rows_unused_says_so():
    """Sequential(Conv2d(1, 8, 3, stride=2), ...) on 8x8 follows PyTorch's
    floor rule (the last row and column are not used) where the course's
    layer functions refuse; the model's table says so instead of nothing."""
    from xpnn.nn import Conv2d, Flatten, Linear, MaxPool2d, Sequential
    m = Sequential(Conv2d(1, 8, 3, stride=2), MaxPool2d(2), Flatten(), Linear(8, 10),
                   input_shape=(1, 8, 8))
    rows = repr(m).splitlines()
    assert "Conv2d(1, 8, 3, stride=2) (floor: last 1 row, 1 column unused)" in rows[2]
    assert "MaxPool2d(2) (floor: last 1 row, 1 column unused)" in rows[3]
    # the usual stride-2 pad-1 conv leaves only padding unused; a 1x1 stride-2
    # shortcut skips rows by design
    fits = Sequential(Conv2d(1, 8, 3, stride=2, padding=1), Conv2d(8, 8, 1, stride=2),
                      MaxPool2d(2), Flatten(), Linear(8, 10), input_shape=(1, 8, 8))
    assert "unused" not in repr(fits)
