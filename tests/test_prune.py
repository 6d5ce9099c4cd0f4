"""Pruning: exact amounts, masks that survive fine-tuning and save/load,
structured pruning whose shrunk model computes the same outputs."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from xpnn import backend, prune
from xpnn.checkpoint import load_model, save_model
from xpnn.data import get_digits_data
from xpnn.models import ConvNet, FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from xpnn.solver import Solver

from conftest import host


def _zeros(model, name):
    return int(np.count_nonzero(host(model.params[name]) == 0))


def _convnet(**kw):
    args = dict(input_dim=(1, 8, 8), conv_blocks=((6, 6), (8,)), hidden_dims=(12,),
                dtype=np.float64)
    args.update(kw)
    return ConvNet(**args)


@pytest.fixture(scope="module")
def trained():
    """A ConvNet trained briefly on the digits set (NumPy backend)."""
    np.random.seed(0)
    data = get_digits_data()
    model = _convnet(conv_blocks=((8, 8), (16,)), hidden_dims=(32,))
    Solver(model, data, update_rule="adam", optim_config={"learning_rate": 2e-3},
           batch_size=50, num_epochs=6, verbose=False).train()
    return model, data


def _acc(m, data):
    scores = host(m.loss(data["X_test"]))
    return float(np.mean(np.argmax(scores, axis=1) == data["y_test"]))


def test_l1_unstructured_exact_and_repruning(xb):
    np.random.seed(1)
    m = _convnet()
    n = int(np.prod(m.params["W3"].shape))
    prune.l1_unstructured(m, "W3", 0.5)
    assert _zeros(m, "W3") == round(0.5 * n)
    w = np.abs(host(m.params["W3"]))
    assert w[w > 0].min() >= 0  # survivors are the large ones:
    prune.l1_unstructured(m, "W3", 0.5)  # acts on what is left
    assert _zeros(m, "W3") == round(0.5 * n) + round(0.5 * (n - round(0.5 * n)))
    prune.l1_unstructured(m, "W3", 3)  # an integer count
    assert _zeros(m, "W3") == round(0.5 * n) + round(0.5 * (n - round(0.5 * n))) + 3
    assert backend.backend_of(m.masks["W3"]) == xb.name


def test_l1_prunes_the_smallest():
    np.random.seed(2)
    m = FullyConnectedNet([4], input_dim=3, num_classes=2, dtype=np.float64)
    w = np.abs(host(m.params["W1"])).ravel()
    prune.l1_unstructured(m, "W1", 4)
    zero = np.flatnonzero(host(m.params["W1"]).ravel() == 0)
    assert set(zero) == set(np.argsort(w)[:4])


def test_random_unstructured_is_seeded():
    np.random.seed(3)
    a, b = _convnet(), None
    b = copy.deepcopy(a)
    state = np.random.get_state()[1].copy()
    prune.random_unstructured(a, "W2", 0.3, seed=7)
    prune.random_unstructured(b, "W2", 0.3, seed=7)
    assert np.array_equal(host(a.masks["W2"]), host(b.masks["W2"]))
    assert _zeros(a, "W2") == round(0.3 * a.params["W2"].size)
    assert np.array_equal(np.random.get_state()[1], state)


def test_ln_structured_masks_filters_and_companions(xb):
    np.random.seed(4)
    m = _convnet()
    W = host(m.params["W1"])
    prune.ln_structured(m, "W1", 0.5, n=2, dim=0)
    dead = np.sort(np.argsort(np.sqrt((W ** 2).sum(axis=(1, 2, 3))))[:3])
    Wn = host(m.params["W1"])
    assert np.all(Wn[dead] == 0) and np.all(np.abs(Wn[np.setdiff1d(np.arange(6), dead)]) > 0)
    for comp in ("b1", "gamma1", "beta1"):
        assert np.all(host(m.params[comp])[dead] == 0)
    prune.ln_structured(m, "W1", 1, dim=0)  # one more of the 3 left
    assert int(np.all(host(m.params["W1"]) == 0, axis=(1, 2, 3)).sum()) == 4


def test_global_sweep_gives_exact_sparsity_and_accuracy_table(trained):
    model, data = trained
    names = prune.prunable_names(model)
    total = sum(model.params[n].size for n in names)
    accs = []
    for a in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]:
        m = copy.deepcopy(model)
        prune.global_unstructured(m, a)
        zeros = sum(_zeros(m, n) for n in names)
        assert zeros == round(a * total)
        assert prune.sparsity(m)["global"] == pytest.approx(round(a * total) / total, abs=0)
        accs.append(_acc(m, data))
    base = _acc(model, data)
    assert base > 0.93 and accs[0] >= base - 0.03 and accs[-1] < accs[0]


CASES = {
    "convnet": lambda: _convnet(),
    "convnet_global_pool": lambda: _convnet(global_pool=True),
    "three_layer_bn": lambda: ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=6,
                                                filter_size=3, hidden_dim=10, dtype=np.float64,
                                                use_batchnorm=True, weight_scale=0.3),
    "three_layer": lambda: ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=6, filter_size=3,
                                             hidden_dim=10, dtype=np.float64, weight_scale=0.3),
    "fc_bn": lambda: FullyConnectedNet([10, 8], input_dim=64, num_classes=10, dtype=np.float64,
                                       normalization="batchnorm", weight_scale=0.2),
    "two_layer": lambda: TwoLayerNet(input_dim=64, hidden_dim=10, weight_scale=0.2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shrink_equals_masked_model(xb, case):
    np.random.seed(5)
    m = CASES[case]()
    shape = m.init_kwargs["input_dim"]
    X = np.random.randn(6, *(shape if isinstance(shape, list) else [shape]))
    y = np.arange(6) % 10
    m.loss(X, y)  # one training pass moves the batch-norm running statistics
    for w in prune.prunable_names(m)[:-1]:
        prune.ln_structured(m, w, 0.4, dim=0 if m.params[w].ndim == 4 else 1)
    small = prune.shrink(m)
    assert type(small) is type(m)
    rep = small.shrink_report
    assert rep["params_after"] < rep["params_before"] and rep["flops_after"] < rep["flops_before"]
    for s, t in ((m.loss(X), small.loss(X)), (m.loss(X, y)[0], small.loss(X, y)[0])):
        s, t = host(s), host(t)
        assert np.max(np.abs(s - t)) <= 1e-12 * max(1.0, np.max(np.abs(s)))
    assert not prune.is_pruned(small)  # every mask was structural: nothing left


def test_shrink_refuses_what_it_cannot_remove():
    m = _convnet()
    with pytest.raises(ValueError, match="nothing to shrink"):
        prune.shrink(m)
    prune.l1_unstructured(m, "W2", 0.3)
    with pytest.raises(ValueError, match="W2 has an unstructured mask; shrink removes whole "
                                         "filters only"):
        prune.shrink(m)
    m = _convnet()
    prune.ln_structured(m, "W1", 0.5, dim=1)
    with pytest.raises(ValueError, match="W1 has a mask along dim 1"):
        prune.shrink(m)
    m = _convnet()
    prune.ln_structured(m, "W5", 0.3, dim=1)
    with pytest.raises(ValueError, match="output layer"):
        prune.shrink(m)
    m = FullyConnectedNet([6], input_dim=4, num_classes=3, normalization="layernorm")
    prune.ln_structured(m, "W1", 0.5, dim=1)
    with pytest.raises(ValueError, match="layer norm"):
        prune.shrink(m)


def test_bad_arguments():
    m = _convnet()
    for amount in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="amount"):
            prune.l1_unstructured(m, "W1", amount)
    with pytest.raises(ValueError, match=r"amount=1000 entries of W1 to prune, but only 54 "):
        prune.l1_unstructured(m, "W1", 1000)
    with pytest.raises(ValueError, match="unknown parameter 'W9'.*prunable weights: W1, W2"):
        prune.global_unstructured(m, 0.2, names=["W9"])
    with pytest.raises(ValueError, match=r"dim=4 does not exist for W1 of shape \(6, 1, 3, 3\)"):
        prune.ln_structured(m, "W1", 0.2, dim=4)
    with pytest.raises(ValueError, match="W3 is not pruned"):
        prune.remove(m, "W3")


def test_fine_tuning_keeps_zeros_and_remove_makes_permanent(trained):
    model, data = trained
    m = copy.deepcopy(model)
    prune.global_unstructured(m, 0.5)
    prune.ln_structured(m, "W2", 2, dim=0)
    zero_at = {k: host(m.params[k]) == 0 for k in m.masks}
    before = {k: host(m.params[k]) for k in m.masks}
    np.random.seed(1)
    Solver(m, data, update_rule="adam", optim_config={"learning_rate": 1e-3}, batch_size=50,
           num_epochs=1, verbose=False).train()
    for k, z in zip(zero_at, zero_at.values()):
        assert np.all(host(m.params[k])[z] == 0), k
        assert not np.array_equal(host(m.params[k]), before[k])  # the rest trained
    assert prune.is_pruned(m)
    prune.remove(m, "W2")
    assert "W2" not in m.masks and "b2" not in m.masks and "W1" in m.masks
    prune.remove(m)
    assert not prune.is_pruned(m)
    assert np.all(host(m.params["W1"])[zero_at["W1"]] == 0)


def test_save_load_keeps_masks_and_shapes(xb, tmp_path, trained):
    model, _ = trained
    m = copy.deepcopy(model).to_device(xb.name)
    prune.ln_structured(m, "W1", 0.5, dim=0)
    prune.global_unstructured(m, 0.3, names=["W4"])
    path = save_model(m, str(tmp_path / "pruned.npz"))
    back = load_model(path)
    assert set(back.masks) == set(m.masks) and back.prune_kinds == m.prune_kinds
    X = np.random.RandomState(0).randn(4, 1, 8, 8)
    np.testing.assert_allclose(host(back.loss(X)),
                               host(m.loss(X)), rtol=1e-12)
    small = prune.shrink(m)
    back = load_model(save_model(small, str(tmp_path / "small.npz")))
    assert {k: tuple(v.shape) for k, v in back.params.items()} == \
        {k: tuple(v.shape) for k, v in small.params.items()}
    assert set(back.masks) == {"W4"}  # the unstructured mask of an unshrunk layer survives
    np.testing.assert_allclose(host(back.loss(X)),
                               host(m.loss(X)), rtol=1e-10)


def test_masks_move_with_the_model():
    """Prune on NumPy, move the model, fine-tune: the masks must follow (they
    were left behind, and the Solver failed mixing two backends)."""
    np.random.seed(0)
    m = FullyConnectedNet([6], input_dim=4, num_classes=3)
    prune.l1_unstructured(m, "W1", 0.5)
    r = np.random.RandomState(0)
    data = {"X_train": r.randn(20, 4), "y_train": r.randint(3, size=20),
            "X_val": r.randn(5, 4), "y_val": r.randint(3, size=5)}
    with backend.use_backend("array_api_strict"):
        m.to_device("array_api_strict")
        assert backend.backend_of(m.masks["W1"]) == "array_api_strict"
        Solver(m, data, batch_size=10, num_epochs=1, verbose=False).train()
        assert np.count_nonzero(host(m.params["W1"]) == 0) >= 12


def test_unstructured_ties_counts_and_kinds():
    """l1 ties go to the lowest flat index (a stable order, so a repeated
    run prunes the same entries); a count beyond what is unpruned names the
    parameter; each pruning records its kind, and two kinds make 'mixed'."""
    model = FullyConnectedNet([10], input_dim=10, num_classes=3, dtype=np.float64)
    # magnitudes 0, 1, 2 repeating, signs alternating: 34 zeros and 33 ones tie
    w = (np.arange(100) % 3) * np.where(np.arange(100) % 2, -1.0, 1.0)
    model.params["W1"] = w.reshape(10, 10)
    prune.l1_unstructured(model, "W1", 40)
    pruned = np.flatnonzero(host(model.masks["W1"]).ravel() == 0)
    assert np.array_equal(pruned, np.sort(np.r_[np.arange(0, 100, 3), np.arange(1, 100, 3)[:6]]))
    assert model.prune_kinds["W1"] == "unstructured"
    prune.random_unstructured(model, "W1", 0.5, seed=1)
    assert _zeros(model, "W1") == 40 + 30 and model.prune_kinds["W1"] == "unstructured"
    with pytest.raises(ValueError, match="amount=31 entries of W1 to prune, but only 30"):
        prune.random_unstructured(model, "W1", 31)
    with pytest.raises(ValueError, match="amount=31 entries of W2 to prune, but only 30"):
        prune.l1_unstructured(model, "W2", 31)
    prune.random_unstructured(model, "W2", 3, seed=0)
    assert model.prune_kinds["W2"] == "unstructured"
    prune.ln_structured(model, "W2", 1, n=2, dim=1)
    assert model.prune_kinds["W2"] == "mixed"


def test_shrink_refuses_what_it_cannot_shrink_and_says_why():
    class Bare:  # params but no layer list (a course-written model)
        params = {"W1": np.ones((2, 2))}
    with pytest.raises(ValueError, match="shrink needs a model made of layers"):
        prune.shrink(Bare())
    fc = FullyConnectedNet([4, 3], input_dim=5, num_classes=2, dtype=np.float64)
    prune.ln_structured(fc, "W1", 1.0, dim=1)
    with pytest.raises(ValueError, match="every unit of W1 is pruned"):
        prune.shrink(fc)
    conv = _convnet()
    prune.ln_structured(conv, "W2", 1.0, dim=0)
    with pytest.raises(ValueError, match="every filter of W2 is pruned"):
        prune.shrink(conv)
    fc = FullyConnectedNet([4, 3], input_dim=5, num_classes=2, dtype=np.float64)
    prune.ln_structured(fc, "W2", 1, dim=0)             # along its inputs
    prune.l1_unstructured(fc, "W2", 2)
    assert fc.prune_kinds["W2"] == "mixed"
    with pytest.raises(ValueError, match=r"W2 has an unstructured mask; shrink removes whole "
                                         r"units only \(prune.ln_structured\(model, 'W2', "
                                         r"amount, dim=1\)\)"):
        prune.shrink(fc)


def test_model_stats_counts_params_and_multiply_adds_exactly():
    """Against hand counts, and against xpnn.nn's own per-layer count of the
    same network (two independent implementations)."""
    from xpnn.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
    m = ThreeLayerConvNet(input_dim=(3, 32, 30), num_filters=32, filter_size=7, hidden_dim=100)
    conv = 32 * 3 * 7 * 7 * 32 * 30                    # pad 3, stride 1: 32x30 outputs
    assert prune.model_stats(m) == {
        "params": 32 * 3 * 49 + 32 + 32 * 16 * 15 * 100 + 100 + 100 * 10 + 10,
        "flops": conv + 32 * 16 * 15 * 100 + 100 * 10}
    seq = Sequential(Conv2d(3, 32, 7, padding=3), ReLU(), MaxPool2d(2), Flatten(),
                     Linear(32 * 16 * 15, 100), ReLU(), Linear(100, 10), input_shape=(3, 32, 30))
    assert sum(la.macs() for la in seq) == prune.model_stats(m)["flops"]
    c = ConvNet(input_dim=(1, 9, 7), conv_blocks=((4, 6), (5,)), hidden_dims=(12, 7),
                num_classes=3)
    # block 1: two 3x3 pad-1 convs at 9x7, pool to 4x3; block 2: one conv at 4x3, pool to 2x1
    flops = 4 * 9 * 63 + 6 * 4 * 9 * 63 + 5 * 6 * 9 * 12 + 5 * 2 * 1 * 12 + 12 * 7 + 7 * 3
    assert prune.model_stats(c)["flops"] == flops

    class Bare:  # a course-written model: params only
        params = {"W1": np.zeros((4, 3)), "b1": np.zeros(3)}
    assert prune.model_stats(Bare()) == {"params": 15, "flops": 0}


def test_sparsity_counts_exact_zeros():
    m = FullyConnectedNet([4], input_dim=5, num_classes=3, dtype=np.float64)
    m.params["W1"] = np.array([[0, 1, 2, 0]] * 5, dtype=np.float64)   # 10 of 20 zero
    m.params["W2"] = np.ones((4, 3))
    m.params["W2"][0, 0] = 0.0                                         # 1 of 12
    m.params["b1"] = np.zeros(4)                                       # not a weight
    s = prune.sparsity(m)
    assert s["per_param"] == {"W1": 0.5, "W2": 1 / 12}
    assert s["global"] == 11 / 32
    assert prune.sparsity(m, ["b1"]) == {"per_param": {"b1": 1.0}, "global": 1.0}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shrunk_model_is_a_whole_model(xb, case, tmp_path):
    """What shrink builds keeps reg, dtype, backend and the unstructured
    masks that remain (their kind too), reports what it removed, and saves
    and loads as itself: its constructor arguments give its shapes."""
    np.random.seed(5)
    m = CASES[case]()
    m.reg = 0.25
    m.to_device(xb.name)
    shape = m.init_kwargs["input_dim"]
    X = np.random.randn(6, *(shape if isinstance(shape, list) else [shape]))
    y = np.arange(6) % 10
    m.loss(X, y)
    first, *_, last = prune.prunable_names(m)
    prune.ln_structured(m, first, 3, dim=0 if m.params[first].ndim == 4 else 1)
    prune.l1_unstructured(m, first, 0.2)          # mixed: structured + unstructured
    prune.l1_unstructured(m, last, 0.3)
    assert m.prune_kinds[first] == "mixed"
    small = prune.shrink(m)
    assert small.shrink_report["removed"] == {first: 3}
    assert small.reg == 0.25
    for k, v in small.params.items():
        assert v.dtype == m.params[k].dtype and backend.backend_of(v) == xb.name, k
    assert set(small.masks) == {first, last}
    assert small.prune_kinds == {first: "unstructured", last: "unstructured"}
    for k, mask in small.masks.items():
        assert tuple(mask.shape) == tuple(small.params[k].shape)
        assert backend.backend_of(mask) == xb.name
        assert np.all(host(small.params[k])[host(mask) == 0] == 0)
    back = load_model(save_model(small, str(tmp_path / "small.npz")))
    assert back.init_kwargs == small.init_kwargs
    for s, t in ((m.loss(X), small.loss(X)), (m.loss(X), back.loss(X))):
        np.testing.assert_allclose(host(t), host(s), rtol=1e-10, atol=1e-12)


def test_global_pruning_ties_kinds_counts_and_removal():
    """Among equal magnitudes global pruning takes the lowest (weight, flat
    index) first, as l1_unstructured does; its masks are 'unstructured';
    remove() forgets them and their kinds; the count error names weights."""
    m = FullyConnectedNet([40], input_dim=30, num_classes=10, dtype=np.float64)
    assert not prune.is_pruned(m)                       # a model never pruned has no masks
    r = np.random.RandomState(0)                       # magnitudes 1, 2, 3: many ties
    vals = r.randint(1, 4, size=1600) * r.choice([-1.0, 1.0], size=1600)
    m.params["W1"], m.params["W2"] = vals[:1200].reshape(30, 40), vals[1200:].reshape(40, 10)
    prune.global_unstructured(m, 700)
    flat = np.concatenate([host(m.params["W1"]).ravel(), host(m.params["W2"]).ravel()])
    want = vals.copy()
    want[np.argsort(np.abs(vals), kind="stable")[:700]] = 0
    np.testing.assert_array_equal(flat, want)
    assert m.prune_kinds == {"W1": "unstructured", "W2": "unstructured"}
    with pytest.raises(ValueError, match=r"amount=5000 weights to prune, but only 900 are "
                                         r"unpruned"):
        prune.global_unstructured(m, 5000)
    prune.remove(m, "W1")
    assert set(m.masks) == {"W2"} and m.prune_kinds == {"W2": "unstructured"}
    prune.remove(m)
    assert m.masks == {} and m.prune_kinds == {} and not prune.is_pruned(m)
    assert prune.sparsity(m, names=[]) == {"per_param": {}, "global": 0.0}


def test_ln_structured_norm_orders_dims_and_ties():
    """Columns whose L1, L2 and L-inf orders all differ: each n prunes its
    own smallest; n must be positive; negative dims count from the end;
    equal norms go lowest index first; a second pass ranks what is left."""
    W = np.array([[3.0, 2.0, 2.0, 0.0, 1.0],
                  [0.0, 2.0, 0.0, 2.5, 1.0],
                  [0.0, 0.0, 0.0, 0.0, 1.0]])
    # per column: L1 3, 4, 2, 2.5, 3; L2 3, 2.83, 2, 2.5, 1.73; Linf 3, 2, 2, 2.5, 1
    want = {1: [2, 3], 2: [4, 2], np.inf: [4, 1]}

    def model():
        m = FullyConnectedNet([5], input_dim=3, num_classes=2, dtype=np.float64)
        m.params["W1"] = W.copy()
        return m
    for n, cols in want.items():
        m = model()
        prune.ln_structured(m, "W1", 2, n=n, dim=-1)          # dim -1 is dim 1 here
        dead = np.flatnonzero(~host(m.masks["W1"]).any(axis=0))
        assert sorted(dead) == sorted(cols), n
    m = model()
    prune.ln_structured(m, "W1", 1, dim=-2)                   # rows: -2 is dim 0
    assert np.flatnonzero(~host(m.masks["W1"]).any(axis=1)).tolist() == [2]
    m = model()
    m.params["W1"] = np.ones((3, 5))                          # all equal: lowest first
    prune.ln_structured(m, "W1", 2, dim=1)
    prune.ln_structured(m, "W1", 1, dim=1)                    # ranks the 3 left
    assert host(m.masks["W1"]).any(axis=0).tolist() == [False, False, False, True, True]
    # the defaults are n=1 along dim 0: row 0 has the smaller L1 norm (2.5 < 3),
    # row 1 the smaller L2 norm (1.73 < 2.5); along dim 1 a column would go
    m = FullyConnectedNet([3], input_dim=2, num_classes=2, dtype=np.float64)
    m.params["W1"] = np.array([[2.5, 0.0, 0.0], [1.0, 1.0, 1.0]])
    prune.ln_structured(m, "W1", 1)
    assert host(m.masks["W1"]).tolist() == [[False] * 3, [True] * 3]
    # many ties among a few values (where an unstable sort reorders them):
    # equal norms still go lowest index first
    norms = np.random.RandomState(0).randint(0, 3, size=40).astype(float)
    m = FullyConnectedNet([40], input_dim=1, num_classes=2, dtype=np.float64)
    m.params["W1"] = norms[None, :].copy()
    prune.ln_structured(m, "W1", 10, dim=1)
    want = np.sort(np.argsort(norms, kind="stable")[:10])
    assert np.flatnonzero(~host(m.masks["W1"]).any(axis=0)).tolist() == want.tolist()
    # the norms are of the masked weight: row 0's 0.05 is already masked, so
    # its L1 norm is 1.0 < row 1's 1.2 (a norm of w / mask would be inf)
    m = FullyConnectedNet([2], input_dim=2, num_classes=2, dtype=np.float64)
    m.params["W1"] = np.array([[0.05, 1.0], [0.6, 0.6]])
    prune.l1_unstructured(m, "W1", 1)
    prune.ln_structured(m, "W1", 1, dim=0)
    assert host(m.masks["W1"]).tolist() == [[False, False], [True, True]]
    # norms are summed in float64 even for a float32 model: 1e8 + 1 + 1 and
    # 1e8 + 0 + 1 are one value in float32 (its spacing at 1e8 is 8)
    m = FullyConnectedNet([2], input_dim=3, num_classes=2, dtype=np.float32)
    m.params["W1"] = np.array([[1e8, 1e8], [1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    prune.ln_structured(m, "W1", 1, dim=1)
    assert host(m.masks["W1"]).any(axis=0).tolist() == [True, False]
    for bad in (0, -1, "2"):
        with pytest.raises(ValueError, match="n must be a positive number or inf"):
            prune.ln_structured(model(), "W1", 1, n=bad)
    with pytest.raises(ValueError, match=r"amount=9 slices of W1 along dim 1 to prune, but "
                                         r"only 5 are unpruned"):
        prune.ln_structured(model(), "W1", 9, dim=1)


def test_shrink_keeps_float32_everywhere():
    from xpnn.nn import BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential
    m = Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(), Flatten(),
                   Linear(4 * 16, 3), input_shape=(1, 4, 4), dtype=np.float32, seed=0)
    m.loss(np.random.RandomState(0).randn(3, 1, 4, 4), np.array([0, 1, 2]))
    prune.ln_structured(m, "0.W", 2, dim=0)
    prune.l1_unstructured(m, "4.W", 0.3)
    small = prune.shrink(m)
    for k, v in {**small.params, **small.masks}.items():
        assert v.dtype == np.float32, k
    assert all(v.dtype == np.float32 for bp in small.bn_params
               for key, v in bp.items() if key.startswith("running"))


def test_the_model_applies_its_masks_to_whatever_updates_it(xb):
    """Masks belong to the model: a notebook's own update loop (no Solver)
    keeps pruned entries at exactly zero, as does a restored value; remove()
    lets them change again."""
    m = _convnet()
    m.to_device(xb.name)
    prune.l1_unstructured(m, "W1", 0.5)
    dead = host(m.masks["W1"]) == 0
    ones = xb.asarray(np.ones(tuple(m.params["W1"].shape)))
    for _ in range(3):
        m.params["W1"] = m.params["W1"] - 0.1 * ones      # as a course notebook updates
    assert (host(m.params["W1"])[dead] == 0).all() and (host(m.params["W1"])[~dead] != 0).all()
    m.params = {**m.params, "W1": ones}                    # a whole new dict: masked too
    assert (host(m.params["W1"])[dead] == 0).all()
    prune.remove(m, "W1")
    m.params["W1"] = ones
    assert (host(m.params["W1"]) == 1).all()


def test_a_course_written_model_takes_the_masks_too():
    """A model that is not xpnn's (a params dict and loss) gets params that
    apply its masks once pruned."""
    class Mine:
        def __init__(self):
            self.params = {"W1": np.arange(1.0, 7.0).reshape(2, 3), "b1": np.zeros(3)}
    m = Mine()
    prune.l1_unstructured(m, "W1", 2)
    assert host(m.params["W1"]).ravel().tolist() == [0, 0, 3, 4, 5, 6]
    m.params["W1"] = np.full((2, 3), 9.0)
    assert host(m.params["W1"]).ravel().tolist() == [0, 0, 9, 9, 9, 9]


def test_pruning_nothing_is_allowed_and_changes_nothing():
    """An amount of 0 (a count or a fraction) is the sweep's own baseline:
    accepted, with no entry zeroed; a course-written model without masks is
    not pruned."""
    np.random.seed(0)
    m = FullyConnectedNet([5], input_dim=4, num_classes=3)
    before = host(m.params["W1"]).copy()
    for amount in (0, 0.0):
        prune.l1_unstructured(m, "W1", amount)
        np.testing.assert_array_equal(host(m.params["W1"]), before)
    prune.global_unstructured(m, 0.0)
    assert prune.sparsity(m)["global"] == 0.0

    class CourseModel:          # no masks attribute at all
        params = {"W1": np.ones((2, 2))}
    assert prune.is_pruned(CourseModel()) is False


def test_a_weight_pruned_both_ways_keeps_an_unstructured_mask_when_shrunk():
    """Filters removed by structured pruning go with shrink; the zeros an
    unstructured pruning left in the kept filters stay masked, and the
    shrunk model calls that mask what it now is: 'unstructured' (it was
    'mixed' before, 'structured...' for the filters alone)."""
    np.random.seed(0)
    m = _convnet()
    prune.l1_unstructured(m, "W1", 0.3)
    prune.ln_structured(m, "W1", 2, n=1, dim=0)
    assert m.prune_kinds["W1"] == "mixed"
    small = prune.shrink(m)
    assert host(small.params["W1"]).shape[0] == 4
    assert small.prune_kinds["W1"] == "unstructured"
    assert not host(small.masks["W1"]).all()
    m = _convnet()
    prune.ln_structured(m, "W1", 2, n=1, dim=0)
    small = prune.shrink(m)
    assert "W1" not in small.masks and "W1" not in small.prune_kinds


def test_a_structured_mask_that_shrink_keeps_is_called_unstructured_after():
    """Input channels pruned in a conv weight (dim=1) are not removed by
    shrink (only the outputs of a layer go, with the next layer's matching
    inputs); the mask stays on the smaller model and, no longer whole
    channels of anything shrink removes, is called 'unstructured'."""
    np.random.seed(0)
    m = _convnet()
    prune.ln_structured(m, "W1", 2, n=1, dim=0)         # something to shrink
    prune.ln_structured(m, "W2", 3, n=1, dim=1)         # 3 of W2's 6 input channels
    assert m.prune_kinds["W2"].startswith("structured")
    small = prune.shrink(m)
    assert small.prune_kinds["W2"] == "unstructured"
    assert not host(small.masks["W2"]).all()
