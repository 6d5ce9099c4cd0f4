"""Update rules: the seed notebooks' expected values, on every backend,
and state that stays on the device."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn import backend
from xpnn.gradient_check import rel_error
from xpnn.optim import UPDATE_RULES, adagrad, adam, adamw, get_update_rule, nadam, rmsprop, sgd, \
    sgd_momentum, sgd_nesterov_momentum

N, D = 4, 5


def _lin(a, b):
    return np.linspace(a, b, num=N * D).reshape(N, D)


def test_sgd_momentum(xb):
    config = {"learning_rate": 1e-3, "velocity": xb.asarray(_lin(0.6, 0.9))}
    next_w, config = sgd_momentum(xb.asarray(_lin(-0.4, 0.6)), xb.asarray(_lin(-0.6, 0.4)), config)
    expected_w = [[0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
                  [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
                  [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
                  [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]]
    expected_v = [[0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
                  [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
                  [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
                  [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]]
    assert rel_error(next_w, np.array(expected_w)) < 1e-8
    assert rel_error(config["velocity"], np.array(expected_v)) < 1e-8
    assert backend.backend_of(next_w) == backend.backend_of(config["velocity"]) == xb.name


def test_rmsprop(xb):
    config = {"learning_rate": 1e-2, "cache": xb.asarray(_lin(0.6, 0.9))}
    next_w, config = rmsprop(xb.asarray(_lin(-0.4, 0.6)), xb.asarray(_lin(-0.6, 0.4)), config)
    expected_w = [[-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
                  [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
                  [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
                  [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]]
    expected_cache = [[0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
                      [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
                      [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
                      [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]]
    assert rel_error(next_w, np.array(expected_w)) < 1e-7
    assert rel_error(config["cache"], np.array(expected_cache)) < 1e-8


def test_adam(xb):
    config = {"learning_rate": 1e-2, "m": xb.asarray(_lin(0.6, 0.9)),
              "v": xb.asarray(_lin(0.7, 0.5)), "t": 5}
    next_w, config = adam(xb.asarray(_lin(-0.4, 0.6)), xb.asarray(_lin(-0.6, 0.4)), config)
    expected_w = [[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
                  [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
                  [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
                  [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]]
    expected_v = [[0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
                  [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
                  [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
                  [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]]
    expected_m = [[0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
                  [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
                  [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
                  [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]]
    assert rel_error(next_w, np.array(expected_w)) < 1e-6
    assert rel_error(config["v"], np.array(expected_v)) < 1e-8
    assert rel_error(config["m"], np.array(expected_m)) < 1e-8
    assert config["t"] == 6


@pytest.mark.parametrize("rule", UPDATE_RULES.values(), ids=list(UPDATE_RULES))
def test_rules_minimise_a_quadratic_with_defaults(xb, rule):
    """Each rule, from its default config, decreases f(w) = 0.5 ||w - 3||^2."""
    w = xb.asarray(np.zeros(6))
    config = {"learning_rate": 0.5 if rule is adagrad else 0.05}  # adagrad steps shrink as 1/sqrt(t)
    for _ in range(300):
        w, config = rule(w, w - 3.0, config)
    assert np.abs(xb.host(w) - 3.0).max() < 0.5
    for v in config.values():
        b = backend.backend_of(v)
        assert b in (None, xb.name)


def test_nesterov_first_step_matches_formula():
    w, dw = np.ones(3), np.full(3, 2.0)
    next_w, cfg = sgd_nesterov_momentum(w, dw, {"learning_rate": 0.1, "momentum": 0.9})
    v = -0.1 * dw
    np.testing.assert_allclose(next_w, w + 1.9 * v)
    np.testing.assert_allclose(cfg["velocity"], v)


def test_bad_rule_and_shapes():
    with pytest.raises(ValueError, match="unknown update rule 'sgdd'; valid rules are sgd"):
        get_update_rule("sgdd")
    with pytest.raises(ValueError, match=r"dw has shape \(2,\) but w has \(3,\)"):
        sgd(np.ones(3), np.ones(2))


@pytest.mark.parametrize("rule", UPDATE_RULES.values(), ids=list(UPDATE_RULES))
def test_rules_name_the_bad_argument(rule):
    w = np.ones(3)
    strict = backend.to_device(w, "array_api_strict")
    with pytest.raises(TypeError, match="argument 'dw' is a array_api_strict array but 'w' "
                                        "is a numpy array"):
        rule(w, strict)
    with pytest.raises(TypeError, match="argument 'w' must be an array .* got list"):
        rule([1.0, 1.0, 1.0], w)
    with pytest.raises(TypeError, match="argument 'dw' must be an array .* got list"):
        rule(w, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"config\['learning_rate'\] must be a finite number "
                                         r"in \[0.0, inf\], got -0.1"):
        rule(w, w, {"learning_rate": -0.1})


@pytest.mark.parametrize("rule", UPDATE_RULES.values(), ids=list(UPDATE_RULES))
def test_a_config_key_the_rule_does_not_read_is_refused(rule):
    """A typo such as learning_rte once left the default rate in force,
    silently; the rule's own state keys stay accepted (the course passes
    them in)."""
    w = np.ones(3)
    with pytest.raises(ValueError, match=f"update rule {rule.name}: unknown config key "
                                         r"'learning_rte' \(did you mean 'learning_rate'\?\); "
                                         "it reads .*learning_rate"):
        rule(w, w, {"learning_rte": 0.1})
    with pytest.raises(ValueError, match=f"update rule {rule.name}: unknown config key 'zzz'; "
                                         "it reads "):
        rule(w, w, {"zzz": 0.1})
    config = {"learning_rate": 0.1}
    rule(w, w, config)
    rule(w, w, dict(config))   # a config holding every state key the rule wrote


def test_the_solver_refuses_a_mistyped_optim_config_before_training():
    from xpnn.models import FullyConnectedNet
    from xpnn.solver import Solver
    data = {k: np.zeros((4, 3)) if k.startswith("X") else np.zeros(4, dtype=int)
            for k in ("X_train", "y_train", "X_val", "y_val")}
    model = FullyConnectedNet([2], input_dim=3, num_classes=2)
    with pytest.raises(ValueError, match=r"update rule adam: unknown config key 'beta_1' "
                                         r"\(did you mean 'beta1'\?\)"):
        Solver(model, data, update_rule="adam", optim_config={"beta_1": 0.8})


def test_sgd_reference_values(xb):
    next_w, _ = sgd(xb.asarray(np.array([1.0, -2.0])), xb.asarray(np.array([0.5, 4.0])),
                    {"learning_rate": 0.1})
    np.testing.assert_allclose(xb.host(next_w), [0.95, -2.4], rtol=1e-15)


def test_adagrad_accumulates_its_whole_history(xb):
    w, cfg = xb.asarray(np.array([1.0, 1.0])), {"learning_rate": 0.5, "epsilon": 0.0}
    w, cfg = adagrad(w, xb.asarray(np.array([3.0, 4.0])), cfg)
    np.testing.assert_allclose(xb.host(w), [0.5, 0.5], rtol=1e-15)      # 1 - 0.5 * g/|g|
    w, cfg = adagrad(w, xb.asarray(np.array([4.0, 3.0])), cfg)
    np.testing.assert_allclose(xb.host(cfg["cache"]), [25.0, 25.0])
    np.testing.assert_allclose(xb.host(w), [0.5 - 0.5 * 4 / 5, 0.5 - 0.5 * 3 / 5], rtol=1e-15)


def test_nesterov_tracks_the_look_ahead_point_of_classic_nesterov(xb):
    """On f(w) = a w^2 / 2, classic Nesterov (gradient at w + mu v) and the
    look-ahead-free form must give phi = w + mu v at every step."""
    a, lr, mu = 3.0, 0.05, 0.9
    w_c, v_c = 2.0, 0.0
    phi, cfg = xb.asarray(np.array([w_c])), {"learning_rate": lr, "momentum": mu}
    for _ in range(6):
        v_c = mu * v_c - lr * a * (w_c + mu * v_c)
        w_c = w_c + v_c
        phi, cfg = sgd_nesterov_momentum(phi, a * phi, cfg)
        np.testing.assert_allclose(xb.host(phi)[0], w_c + mu * v_c, rtol=1e-12)


@pytest.mark.parametrize("rule, defaults", [
    (sgd, {"learning_rate": 1e-2}),
    (sgd_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
    (sgd_nesterov_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
    (rmsprop, {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
    (adagrad, {"learning_rate": 1e-2, "epsilon": 1e-8}),
    (adam, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 1}),
    (adamw, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
             "weight_decay": 1e-2, "t": 1}),
    (nadam, {"learning_rate": 2e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
             "momentum_decay": 4e-3, "t": 1}),
])
def test_documented_defaults_and_the_first_step(rule, defaults):
    """The course defaults, and a first step from them computed by hand."""
    w, g = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    next_w, cfg = rule(w.copy(), g.copy(), None)
    for k, v in defaults.items():
        assert cfg[k] == v, k
    lr = defaults["learning_rate"]
    expected = {
        sgd: w - lr * g,
        sgd_momentum: w - lr * g,                                   # v = -lr g
        sgd_nesterov_momentum: w - (1 + 0.9) * lr * g,              # -mu*0 + (1+mu) v
        rmsprop: w - lr * g / (np.sqrt(0.01 * g * g) + 1e-8),
        adagrad: w - lr * g / (np.abs(g) + 1e-8),
        adam: w - lr * g / (np.abs(g) + 1e-8),                      # bias-corrected: m=g, v=g^2
        adamw: w * (1 - lr * 1e-2) - lr * g / (np.abs(g) + 1e-8),
        # mu_1, mu_2 = 0.9 (1 - 0.5 * 0.96^(t * 0.004)); m = 0.1 g; v / (1 - 0.999) = g^2
        nadam: w - lr * ((1 - _mu(1)) / (1 - _mu(1)) * g
                         + _mu(2) / (1 - _mu(1) * _mu(2)) * 0.1 * g) / (np.abs(g) + 1e-8),
    }[rule]
    np.testing.assert_allclose(next_w, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown update rule"):
        get_update_rule("nope")
    assert get_update_rule(rule) is rule and get_update_rule(rule.__name__) is rule


def _mu(t):
    return 0.9 * (1 - 0.5 * 0.96 ** (t * 4e-3))


def test_nadam_matches_pytorch(xb):
    """Nesterov-momentum Adam, step by step, against torch.optim.NAdam
    (non-default betas, eps and momentum decay, so each one counts)."""
    torch = pytest.importorskip("torch")
    r = np.random.RandomState(7)
    w0 = r.randn(3, 4)
    grads = [r.randn(3, 4) for _ in range(6)]
    tw = torch.tensor(w0, requires_grad=True)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)   # else torch keeps mu_product in float32
    try:
        opt = torch.optim.NAdam([tw], lr=0.05, betas=(0.8, 0.95), eps=1e-6, momentum_decay=0.3)
        w, cfg = xb.asarray(w0), {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95,
                                   "epsilon": 1e-6, "momentum_decay": 0.3}
        for g in grads:
            tw.grad = torch.tensor(g)
            opt.step()
            w, cfg = nadam(w, xb.asarray(g), cfg)
            np.testing.assert_allclose(xb.host(w), tw.detach().numpy(), rtol=1e-12, atol=1e-14)
    finally:
        torch.set_default_dtype(default)
    state = opt.state[tw]
    assert cfg["t"] == 6
    np.testing.assert_allclose(cfg["mu_product"], float(state["mu_product"]), rtol=1e-14)
    np.testing.assert_allclose(xb.host(cfg["m"]), state["exp_avg"].numpy(), rtol=1e-12)
    np.testing.assert_allclose(xb.host(cfg["v"]), state["exp_avg_sq"].numpy(), rtol=1e-12)


def test_adamw_matches_pytorch(xb):
    """Decoupled weight decay, step by step, against torch.optim.AdamW."""
    torch = pytest.importorskip("torch")
    r = np.random.RandomState(4)
    w0 = r.randn(3, 4)
    grads = [r.randn(3, 4) for _ in range(5)]
    tw = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.AdamW([tw], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3)
    w, cfg = xb.asarray(w0), {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95,
                               "epsilon": 1e-6, "weight_decay": 0.3}
    for g in grads:
        tw.grad = torch.tensor(g)
        opt.step()
        w, cfg = adamw(w, xb.asarray(g), cfg)
        np.testing.assert_allclose(xb.host(w), tw.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert cfg["t"] == 5
    # with no decay it is Adam
    a, _ = adam(xb.asarray(w0), xb.asarray(grads[0]), {"learning_rate": 0.1})
    b, _ = adamw(xb.asarray(w0), xb.asarray(grads[0]), {"learning_rate": 0.1,
                                                        "weight_decay": 0.0})
    np.testing.assert_array_equal(xb.host(a), xb.host(b))


@pytest.mark.parametrize("name", sorted(UPDATE_RULES))
def test_update_all_equals_each_rule_alone(xb, name, monkeypatch):
    """update_all (the Solver's update) on every backend gives NumPy's
    per-parameter numbers; on CuPy it is one fused launch per step."""
    from xpnn import optim

    from conftest import record_calls
    launches = []
    record_calls(monkeypatch, backend.get("cupy").kernels, "update_all", launches)
    r = np.random.RandomState(0)
    shapes = {"W": (6, 4), "b": (4,), "gamma": (1,)}
    ref = {k: r.randn(*s) for k, s in shapes.items()}
    got = xb.put({k: v.copy() for k, v in ref.items()})
    ref_c = {k: {"learning_rate": 1e-2} for k in shapes}
    got_c = {k: {"learning_rate": 1e-2} for k in shapes}
    rule = UPDATE_RULES[name]
    for _ in range(3):
        grads = {k: r.randn(*s) for k, s in shapes.items()}
        for k in shapes:
            ref[k], ref_c[k] = rule(ref[k], grads[k], ref_c[k])
        optim.update_all(rule, got, xb.put(grads), got_c)
    for k in shapes:
        np.testing.assert_allclose(backend.to_numpy(got[k]), ref[k], rtol=1e-13, atol=1e-15)
    assert launches == (["update_all"] * 3 if xb.name == "cupy" else [])
