"""Solver: overfits a small set, resumes exactly, stops on NaN, writes
checkpoints atomically, refuses unknown arguments."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from xpnn import backend
from xpnn.checkpoint import load_npz
from xpnn.data import get_digits_data
from xpnn.models import ConvNet, FullyConnectedNet, ThreeLayerConvNet
from xpnn.solver import Solver

from conftest import host


@pytest.fixture(scope="module")
def digits():
    return get_digits_data()


def _small(digits, n=50):
    return {"X_train": digits["X_train"][:n], "y_train": digits["y_train"][:n],
            "X_val": digits["X_val"][:40], "y_val": digits["y_val"][:40]}


def test_overfits_50_samples(xb, digits):
    np.random.seed(0)
    model = ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=8, filter_size=3, hidden_dim=50,
                              weight_scale=1e-1, dtype=np.float64)
    solver = Solver(model, _small(digits), num_epochs=30, batch_size=25, update_rule="adam",
                    optim_config={"learning_rate": 1e-2}, verbose=False)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0
    assert len(solver.val_acc_history) == 31 and len(solver.loss_history) == 60
    assert solver.best_val_acc == max(solver.val_acc_history)
    # the model now holds the best-validation params, as in the course
    assert solver.check_accuracy(solver.X_val, solver.y_val) == solver.best_val_acc


def _run(digits, epochs, checkpoint_name=None, resume=None):
    np.random.seed(1)
    model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((4,),), hidden_dims=(16,),
                    dropout_keep_ratio=0.8, dtype=np.float64)
    solver = Solver(model, _small(digits, 200), num_epochs=epochs, batch_size=40,
                    update_rule="adam", optim_config={"learning_rate": 1e-2}, lr_decay=0.9,
                    num_train_samples=100, checkpoint_name=checkpoint_name, verbose=False)
    if resume:
        np.random.seed(12345)  # a fresh process: the checkpoint must restore the RNG
        solver.load_checkpoint(resume)
    solver.train()
    return solver


def test_killed_and_resumed_run_equals_uninterrupted(xb, digits, tmp_path):
    full = _run(digits, 4)
    prefix = str(tmp_path / "run")
    _run(digits, 2, checkpoint_name=prefix)  # "killed" after epoch 2
    assert os.path.isfile(prefix + "_epoch_2.npz")
    resumed = _run(digits, 4, resume=prefix + "_epoch_2.npz")
    for k in full.model.params:
        np.testing.assert_array_equal(xb.host(resumed.model.params[k]),
                                      xb.host(full.model.params[k]), err_msg=k)
    assert resumed.loss_history == full.loss_history
    assert resumed.val_acc_history == full.val_acc_history
    for a, b in zip(resumed.model.bn_params, full.model.bn_params):
        np.testing.assert_array_equal(xb.host(a["running_var"]), xb.host(b["running_var"]))


def test_checkpoint_is_pickle_free_data(tmp_path, digits):
    prefix = str(tmp_path / "c")
    _run(digits, 1, checkpoint_name=prefix)
    meta, arrays = load_npz(prefix + "_epoch_1.npz")  # allow_pickle=False inside
    assert meta["model"]["class"] == "ConvNet" and meta["epoch"] == 1
    assert all(a.dtype != object for a in arrays.values())
    with np.load(prefix + "_epoch_1.npz", allow_pickle=False) as z:
        assert "__meta__" in z.files


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, digits, monkeypatch):
    prefix = str(tmp_path / "c")
    solver = _run(digits, 1, checkpoint_name=prefix)
    path = prefix + "_epoch_1.npz"
    before = open(path, "rb").read()

    def torn_write(fh, **arrays):
        fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", torn_write)
    with pytest.raises(OSError, match="disk full"):
        solver.save_checkpoint(path)
    assert open(path, "rb").read() == before
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")] == []


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_nan_loss_stops_with_iteration_and_keeps_best(digits):
    np.random.seed(0)
    model = FullyConnectedNet([20], input_dim=64, num_classes=10, weight_scale=1e-2,
                              dtype=np.float64)
    data = _small(digits, 100)
    data = {k: (v.reshape(len(v), -1) if k.startswith("X") else v) for k, v in data.items()}
    solver = Solver(model, data, num_epochs=5, batch_size=50, update_rule="sgd",
                    optim_config={"learning_rate": 1e-2}, verbose=False)
    solver.train()
    best = host(solver.best_params)
    solver.num_epochs = 10
    for cfg in solver.optim_configs.values():
        cfg["learning_rate"] = 1e300  # blow up
    with pytest.raises(FloatingPointError, match=r"at iteration 1[1-9]"):
        solver.train()
    for k in best:
        np.testing.assert_array_equal(host(model.params[k]), best[k])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_lowering_the_rate_in_optim_config_after_a_divergence_goes_on(xb, digits):
    """`solver.optim_config['learning_rate'] = lower; solver.train()` once
    diverged again: each param's optim_configs entry kept the old rate. Now a
    change to optim_config reaches every param, and the error says so."""
    np.random.seed(0)
    model = FullyConnectedNet([20], input_dim=64, num_classes=10, weight_scale=1e-2,
                              dtype=np.float64)
    solver = Solver(model, _small(digits, 100), num_epochs=3, batch_size=50,
                    update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
                    lr_decay=0.5, verbose=False)
    solver.train()
    solver.num_epochs = 6
    solver.optim_config["learning_rate"] = 1e300
    # a tenth of the rate, at most the rule's default (1e300 / 10 would diverge again)
    with pytest.raises(FloatingPointError, match=r"at iteration 8;.*To go on from here with "
                                                 r"a lower rate: solver\.optim_config\["
                                                 r"'learning_rate'\] = 0\.01; solver\.train"):
        solver.train()
    stopped = solver.epoch     # off the host, the NaN is seen at a later check
    solver.optim_config["learning_rate"] = 1e-2
    solver.train()
    assert solver.iteration == 12 and np.isfinite(solver.loss_history[-3:]).all()
    # the new rate, then halved after each epoch it trained
    assert {cfg["learning_rate"] for cfg in solver.optim_configs.values()} == \
        {1e-2 * 0.5 ** (6 - stopped)}
    assert all(cfg["momentum"] == 0.9 for cfg in solver.optim_configs.values())
    solver.optim_config["learning_rte"] = 1e-3
    solver.num_epochs = 7
    with pytest.raises(ValueError, match="unknown config key 'learning_rte' \\(did you mean "
                                         "'learning_rate'"):
        solver.train()
    solver.optim_config = {"learning_rate": -1.0, "momentum": 0.9}
    with pytest.raises(ValueError, match=r"optim_config\['learning_rate'\]"):
        solver.train()


def test_unknown_kwargs_and_bad_data(digits):
    model = FullyConnectedNet([5], input_dim=64, num_classes=10)
    with pytest.raises(ValueError, match="Unrecognized arguments learning_rate: 'learning_rate' "
                                         r"\(an update rule's setting: optim_config="):
        Solver(model, _small(digits), learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"'num_epoch' \(did you mean 'num_epochs'\?\)"):
        Solver(model, _small(digits), num_epoch=3)
    with pytest.raises(ValueError, match="missing 'y_val'"):
        Solver(model, {"X_train": 1, "y_train": 1, "X_val": 1})
    with pytest.raises(ValueError, match="unknown update rule 'adamax'"):
        Solver(model, _small(digits), update_rule="adamax")


def test_loading_a_mismatched_checkpoint(tmp_path, digits):
    prefix = str(tmp_path / "c")
    _run(digits, 1, checkpoint_name=prefix)
    other = FullyConnectedNet([5], input_dim=64, num_classes=10)
    with pytest.raises(ValueError, match="written by a ConvNet, the model is a "
                                         "FullyConnectedNet"):
        Solver(other, _small(digits), verbose=False).load_checkpoint(prefix + "_epoch_1.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Solver(other, _small(digits), verbose=False).load_checkpoint(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz' is not an \.npz checkpoint: it is a file "
                                         r"starting with b'not '"):
        Solver(other, _small(digits), verbose=False).load_checkpoint(str(bad))


def test_verbose_prints_course_lines(capsys, digits):
    np.random.seed(0)
    model = FullyConnectedNet([10], input_dim=64, num_classes=10, dtype=np.float64)
    data = {k: (v.reshape(len(v), -1) if k.startswith("X") else v)
            for k, v in _small(digits, 100).items()}
    Solver(model, data, num_epochs=1, batch_size=50, print_every=1).train()
    out = capsys.readouterr().out
    assert "(Iteration 1 / 2) loss:" in out and "(Epoch 1 / 1) train acc:" in out


def test_lr_decay_is_applied_once_per_epoch(digits):
    model = FullyConnectedNet([5], input_dim=64, num_classes=10)
    small = {k: (v.reshape(len(v), -1) if k.startswith("X") else v)
             for k, v in _small(digits, 100).items()}
    s = Solver(model, small, update_rule="sgd", optim_config={"learning_rate": 0.1},
               lr_decay=0.5, batch_size=50, num_epochs=3, verbose=False)
    s.train()
    assert all(c["learning_rate"] == pytest.approx(0.1 * 0.5 ** 3)
               for c in s.optim_configs.values())


def _pruned_fc(seed=0):
    from xpnn import prune
    np.random.seed(seed)
    m = FullyConnectedNet([20], input_dim=64, num_classes=10, normalization="batchnorm",
                          reg=0.01, dtype=np.float64)
    prune.l1_unstructured(m, "W1", 0.3)
    return m


def test_checkpoint_restores_masks_statistics_optimizer_and_settings(digits, tmp_path):
    from xpnn.checkpoint import load_npz
    X = {k: (v.reshape(len(v), -1) if k.startswith("X") else v) for k, v in digits.items()}
    m = _pruned_fc()
    s = Solver(m, X, update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
               lr_decay=0.8, batch_size=40, num_epochs=2, num_train_samples=300,
               num_val_samples=200, print_every=7, verbose=False,
               checkpoint_name=str(tmp_path / "ck"))
    s.train()
    meta, _ = load_npz(s.last_checkpoint)
    assert meta["solver"] == {"update_rule": "sgd_momentum", "optim_config": {
        "learning_rate": 1e-2}, "lr_decay": 0.8, "lr_schedule": None, "augment": None,
        "batch_size": 40, "num_epochs": 2,
        "num_train_samples": 300, "num_val_samples": 200, "print_every": 7,
        "keep_checkpoints": "all"}
    fresh = FullyConnectedNet([20], input_dim=64, num_classes=10, normalization="batchnorm",
                              reg=0.01, dtype=np.float64)
    t = Solver(fresh, X, update_rule="sgd_momentum", verbose=False).load_checkpoint(
        s.last_checkpoint)
    assert fresh.prune_kinds == {"W1": "unstructured"}
    np.testing.assert_array_equal(host(fresh.masks["W1"]), host(m.masks["W1"]))
    np.testing.assert_array_equal(host(fresh.bn_params[0]["running_var"]),
                                  host(m.bn_params[0]["running_var"]))
    for k in m.params:
        np.testing.assert_array_equal(host(t.best_params[k]), host(s.best_params[k]))
        np.testing.assert_array_equal(host(t.optim_configs[k]["velocity"]),
                                      host(s.optim_configs[k]["velocity"]))
    assert (t.epoch, t.iteration, t.best_val_acc) == (s.epoch, s.iteration, s.best_val_acc)


class _CourseWritten:
    """A model as a student writes it: NumPy params and loss(), nothing else."""

    def __init__(self, like):
        self.params = {k: np.array(host(v)) for k, v in like.params.items()}
        self._like = like

    def loss(self, X, y=None):
        self._like.params = self.params
        return self._like.loss(X, y)


def test_course_written_model_stays_on_the_host_and_takes_any_checkpoint(digits, tmp_path):
    from xpnn import backend
    X = {k: (v.reshape(len(v), -1) if k.startswith("X") else v) for k, v in digits.items()}
    np.random.seed(1)
    fc = FullyConnectedNet([20], input_dim=64, num_classes=10, dtype=np.float64)
    Solver(fc, X, num_epochs=1, batch_size=50, verbose=False,
           checkpoint_name=str(tmp_path / "fc")).train()
    inner = FullyConnectedNet([20], input_dim=64, num_classes=10, dtype=np.float64)
    inner.to_device("numpy")
    student = _CourseWritten(inner)
    with backend.use_backend("array_api_strict"):   # a device backend is active
        s = Solver(student, X, update_rule="adam", verbose=False)
        s.load_checkpoint(str(tmp_path / "fc_epoch_1.npz"))   # written by an xpnn model
        for d in (student.params, s.best_params):
            assert all(backend.is_host(v) for v in d.values())
        assert all(backend.is_host(v) for c in s.optim_configs.values()
                   for v in c.values() if hasattr(v, "shape"))


def _fc_data(digits):
    return {k: (v.reshape(len(v), -1) if k.startswith("X") else v) for k, v in digits.items()}


def test_learning_rate_schedules(digits):
    """Cosine to min_factor at the last iteration, step decay every E epochs,
    linear warmup, values computed by hand; the per-parameter configs carry
    the scheduled rate of the last step."""
    data = _fc_data(digits)           # 1257 samples: 25 iterations per epoch of 50
    m = FullyConnectedNet([8], input_dim=64, num_classes=10)

    def solver(schedule, epochs=4):
        return Solver(m, data, optim_config={"learning_rate": 0.1}, batch_size=50,
                      num_epochs=epochs, lr_schedule=schedule, verbose=False)
    cos = solver({"kind": "cosine", "min_factor": 0.1})
    last = 4 * 25 - 1
    assert cos.learning_rate_at(0) == pytest.approx(0.1, rel=1e-15)
    assert cos.learning_rate_at(last) == pytest.approx(0.01, rel=1e-12)
    assert cos.learning_rate_at(last / 2) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5), rel=1e-12)
    assert cos.learning_rate_at(33) == pytest.approx(0.1 * (0.1 + 0.9 * 0.75), rel=1e-12)
    two = Solver(m, {**data, "X_train": data["X_train"][:100], "y_train": data["y_train"][:100]},
                 optim_config={"learning_rate": 0.1}, batch_size=50, num_epochs=1,
                 lr_schedule={"kind": "cosine"}, verbose=False)      # 2 iterations in all
    assert [two.learning_rate_at(i) for i in (0, 1)] == pytest.approx([0.1, 0.0], abs=1e-15)
    warm_cos = solver({"kind": "cosine", "warmup_epochs": 1})     # the ramp scales the cosine
    c12 = 0.5 * (1 + np.cos(np.pi * 12 / 99))
    assert warm_cos.learning_rate_at(12) == pytest.approx(0.1 * c12 * 13 / 26, rel=1e-12)
    no_rate = Solver(m, data, update_rule=lambda w, dw, c: (w, c), verbose=False)
    assert np.isnan(no_rate.learning_rate_at(0))   # a rule without a learning rate: none to give
    step = solver({"kind": "step", "step_epochs": 1.5, "gamma": 0.5})
    assert [step.learning_rate_at(i) for i in (0, 37, 38, 74, 75)] == \
        pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-15)
    warm = solver({"kind": "constant", "warmup_epochs": 1})
    assert [warm.learning_rate_at(i) for i in (0, 12, 24, 25, 99)] == \
        pytest.approx([0.1 / 26, 0.1 * 13 / 26, 0.1 * 25 / 26, 0.1, 0.1], rel=1e-15)
    course = Solver(m, data, optim_config={"learning_rate": 0.1}, lr_decay=0.5, batch_size=50,
                    verbose=False)
    assert [course.learning_rate_at(i) for i in (24, 25, 50)] == \
        pytest.approx([0.1, 0.05, 0.025], rel=1e-15)
    np.random.seed(0)
    s = solver({"kind": "cosine", "warmup_epochs": 0.5}, epochs=2)
    s.train()
    assert all(c["learning_rate"] == pytest.approx(s.learning_rate_at(49), rel=1e-15)
               for c in s.optim_configs.values())


@pytest.mark.parametrize("schedule, match", [
    ({"kind": "linear"}, 'lr_schedule must be a dict with "kind" one of constant, cosine'),
    ("cosine", "lr_schedule must be a dict"),
    ({"kind": "step"}, "'step' needs step_epochs"),
    ({"kind": "cosine", "gamma": 0.5}, "lr_schedule 'cosine' takes kind, min_factor, "
                                       "warmup_epochs; unknown: gamma"),
    ({"kind": "cosine", "warmup_epochs": -1}, r"lr_schedule\['warmup_epochs'\] must be"),
    ({"kind": "cosine", "min_factor": -0.1},
     r"lr_schedule\['min_factor'\] must be a finite number in \[0.0, 1.0\]"),
    ({"kind": "cosine", "min_factor": 1.5}, r"lr_schedule\['min_factor'\] must be"),
    ({"kind": "step", "step_epochs": 0},
     r"lr_schedule\['step_epochs'\] must be a finite number in \(0.0, inf\]"),
    ({"kind": "step", "step_epochs": 1, "gamma": -0.5}, r"lr_schedule\['gamma'\] must be"),
])
def test_bad_schedules_are_named(digits, schedule, match):
    m = FullyConnectedNet([8], input_dim=64, num_classes=10)
    with pytest.raises(ValueError, match=match):
        Solver(m, _fc_data(digits), optim_config={"learning_rate": 0.1}, lr_schedule=schedule)


def test_schedule_with_lr_decay_or_without_a_rate_is_refused(digits):
    m = FullyConnectedNet([8], input_dim=64, num_classes=10)
    with pytest.raises(ValueError, match="give lr_decay or lr_schedule, not both"):
        Solver(m, _fc_data(digits), optim_config={"learning_rate": 0.1}, lr_decay=0.9,
               lr_schedule={"kind": "cosine"})
    with pytest.raises(ValueError, match="lr_schedule scales optim_config\\['learning_rate'\\]"):
        Solver(m, _fc_data(digits), lr_schedule={"kind": "cosine"})


def _cli_resume_gives_the_same_run(tmp_path, capsys, epochs, options):
    """xpnn train run whole, and resumed from its first epoch's checkpoint
    with no options (the settings come back from the checkpoint): the same
    final accuracies."""
    from xpnn.cli import main
    common = ["--plot", "none", "--quiet", "--backend", "numpy", "--epochs", str(epochs),
              *options]
    assert main(["train", *common]) == 0
    whole = capsys.readouterr().out.split("(")[0]
    ck = str(tmp_path / "ck")
    assert main(["train", "--checkpoint", ck, *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", ck + "_epoch_1.npz", "--plot", "none", "--quiet"]) == 0
    assert capsys.readouterr().out.split("(")[0] == whole


def test_scheduled_run_resumes_exactly(tmp_path, capsys):
    _cli_resume_gives_the_same_run(tmp_path, capsys, 3, [
        "--model", "fc", "--lr-schedule", "cosine", "--warmup-epochs", "0.5", "--lr", "5e-3"])


def test_augmented_batches_are_padded_crops_and_mirrors(xb):
    """Each augmented image is the zero-padded original cropped at the drawn
    offsets, mirrored where drawn: replayed here from the same seed."""
    r = np.random.RandomState(0)
    X = r.randn(40, 2, 5, 6)
    data = {"X_train": xb.asarray(X), "y_train": xb.asarray(np.arange(40) % 3),
            "X_val": xb.asarray(X[:4]), "y_val": xb.asarray(np.arange(4) % 3)}
    s = Solver(FullyConnectedNet([4], input_dim=60, num_classes=3), data,
               augment={"crop_pad": 2, "flip": True}, verbose=False)
    np.random.seed(7)
    got = xb.host(s._augmented(xb.asarray(X)))
    np.random.seed(7)
    off = np.random.randint(0, 5, size=(40, 2))
    flip = np.random.rand(40) < 0.5
    padded = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i, (dy, dx) in enumerate(off):
        want = padded[i, :, dy:dy + 5, dx:dx + 6]
        np.testing.assert_array_equal(got[i], want[..., ::-1] if flip[i] else want)
    assert 0 < flip.sum() < 40 and len({tuple(o) for o in off}) > 10
    # on the batch's own backend, whatever the default is
    with backend.use_backend("numpy"):
        np.random.seed(7)
        again = s._augmented(xb.asarray(X))
    assert backend.backend_of(again) == xb.name
    np.testing.assert_array_equal(xb.host(again), got)


@pytest.mark.parametrize("augment, err, match", [
    ({"crop": 4}, ValueError, 'augment must be a dict with "crop_pad"'),
    ({"crop_pad": -1}, ValueError, r"augment\['crop_pad'\] must be an integer >= 0"),
    ({"flip": "yes"}, TypeError, r"augment\['flip'\] must be True or False"),
])
def test_bad_augment_is_named(digits, augment, err, match):
    with pytest.raises(err, match=match):
        Solver(FullyConnectedNet([4], input_dim=64, num_classes=10), digits, augment=augment)
    with pytest.raises(ValueError, match="augment crops and flips images"):
        Solver(FullyConnectedNet([4], input_dim=64, num_classes=10), _fc_data(digits),
               augment={"flip": True})


def test_a_crop_of_half_the_image_is_warned_about(digits):
    """crop:4,flip on the 8x8 digits took validation accuracy to 0.41,
    silently; a pad of a quarter of the side or more now warns, a smaller
    one does not."""
    import warnings
    model = FullyConnectedNet([4], input_dim=64, num_classes=10)
    with pytest.warns(RuntimeWarning, match=r"crop_pad=2 on 8x8 images moves each by up to 2 "
                                            r"pixels either way.*keep crop_pad below 2 here"):
        Solver(model, digits, augment={"crop_pad": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Solver(model, digits, augment={"crop_pad": 1, "flip": True})


def test_augmented_run_resumes_exactly(tmp_path, capsys):
    _cli_resume_gives_the_same_run(tmp_path, capsys, 2,
                                   ["--model", "convnet", "--augment", "crop:1,flip"])


def _tiny_solver(digits, **kw):
    np.random.seed(3)
    model = FullyConnectedNet([6], input_dim=64, num_classes=10, dtype=np.float64)
    return Solver(model, _small(digits, 40), **{"batch_size": 10, "verbose": False,
                                                "optim_config": {"learning_rate": 0.5}, **kw})


def test_solver_parts_alone(xb, digits):
    """Each job the training loop calls, on its own: the minibatch draw, the
    update (masks kept), the epoch end, the evaluation and its best-params
    rule."""
    s = _tiny_solver(digits, lr_decay=0.5)
    np.random.seed(9)
    Xb, yb = s._next_batch()
    np.random.seed(9)
    idx = np.random.choice(40, 10)          # the course's draw, in its order
    np.testing.assert_array_equal(host(Xb), digits["X_train"][:40][idx])
    np.testing.assert_array_equal(host(yb), digits["y_train"][:40][idx])
    # the update rule runs on every param, and masks re-zero what they prune
    s.model.masks = {"W1": s.model.params["W1"] * 0 + 1}
    s.model.masks["W1"][:, 0] = 0
    grads = {k: v * 0 + 1 for k, v in s.model.params.items()}
    before = {k: host(v).copy() for k, v in s.model.params.items()}
    s._update(grads)
    for k in before:
        want = before[k] - 0.5
        if k == "W1":
            want[:, 0] = 0
        np.testing.assert_allclose(host(s.model.params[k]), want, rtol=0, atol=1e-15)
    # the epoch end counts the epoch and decays every rate once
    s.optim_configs["b1"] = {}                # a rule without a rate is left alone
    s._end_epoch()
    assert s.epoch == 1 and s.optim_configs["W1"]["learning_rate"] == 0.25
    assert s.optim_configs["b1"] == {}
    # evaluation: histories grow; best params are a copy, replaced only on improvement
    s._evaluate()
    assert len(s.val_acc_history) == len(s.train_acc_history) == 1
    assert s.best_val_acc == s.val_acc_history[0] > 0
    kept = host(s.best_params["W2"]).copy()
    s.model.params["W2"] = s.model.params["W2"] * 0      # every score equal: worse accuracy
    s._evaluate()
    assert s.val_acc_history[1] < s.best_val_acc
    np.testing.assert_array_equal(host(s.best_params["W2"]), kept)


def test_non_finite_params_never_become_the_best(xb, digits):
    s = _tiny_solver(digits)
    s.model.params["b2"] = s.model.params["b2"] + np.inf   # every score infinite
    s.best_val_acc = -1.0
    s._evaluate()
    assert s.best_params == {} and s.best_val_acc == -1.0


def test_one_checkpoint_reader_refuses_the_same_files(digits, tmp_path):
    """A saved model and a Solver checkpoint go through one reader: a file
    missing a param is refused by both (loading it once kept that param's
    random initial values)."""
    from xpnn.checkpoint import load_model, save_model, save_npz_atomic
    s = _tiny_solver(digits, num_epochs=1, checkpoint_name=str(tmp_path / "run"))
    s.train()
    for path in (save_model(s.model, str(tmp_path / "m.npz")), str(tmp_path / "run_epoch_1.npz")):
        meta, arrays = load_npz(path)
        ref = meta["model"]["params"].pop("b2")["__array__"]
        arrays.pop(ref)
        bad = str(tmp_path / "bad.npz")
        save_npz_atomic(bad, meta, arrays)
        with pytest.raises(ValueError, match=r"holds params \['W1', 'W2', 'b1'\] but the model "
                                             r"has \['W1', 'W2', 'b1', 'b2'\]"):
            load_model(bad)
        fresh = _tiny_solver(digits)
        if meta["format"] == "xpnn-checkpoint-1":
            w = host(fresh.model.params["W1"]).copy()
            with pytest.raises(ValueError, match="holds params"):
                fresh.load_checkpoint(bad)
            np.testing.assert_array_equal(host(fresh.model.params["W1"]), w)  # untouched


def test_epoch_callback_sees_each_epoch_and_can_stop_training(digits):
    seen = []

    def cb(solver):
        seen.append((solver.epoch, len(solver.val_acc_history), solver.iteration))
        if solver.epoch == 2:
            raise KeyboardInterrupt  # what a pruner's exception does: training stops here

    s = _tiny_solver(digits, num_epochs=4, epoch_callback=cb)
    with pytest.raises(KeyboardInterrupt):
        s.train()
    assert seen == [(1, 2, 4), (2, 3, 8)]      # after each epoch's accuracy check
    with pytest.raises(TypeError, match="epoch_callback must be callable"):
        _tiny_solver(digits, epoch_callback=3)


def test_verbose_lines_outside_a_run_are_printed(digits, capsys):
    s = _tiny_solver(digits)
    s.verbose = True
    s._evaluate()                       # no progress bar: straight to stdout
    assert capsys.readouterr().out.startswith("(Epoch 0 / 10) train acc: ")


def test_resumed_progress_bar_starts_where_the_run_stopped(digits, tmp_path, monkeypatch,
                                                           capsys):
    """A run resumed after epoch 1 of 2 (5 iterations of 10 done) shows a
    bar of 10 that starts at 5, not at 0; it counts iterations ("it") and
    leaves nothing behind when training ends (leave=False)."""
    prefix = str(tmp_path / "bar")
    _run(digits, 2, checkpoint_name=prefix)
    bars, written = [], []

    class Recorder:
        def __init__(self, total, initial, **kw):
            bars.append((total, initial, kw.get("unit"), kw.get("leave")))
            self.n = initial

        def update(self, k=1):
            self.n += k

        def write(self, line):
            written.append(line)

        def close(self):
            pass
    import tqdm.auto
    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    np.random.seed(1)
    model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((4,),), hidden_dims=(16,),
                    dropout_keep_ratio=0.8, dtype=np.float64)
    solver = Solver(model, _small(digits, 200), num_epochs=2, batch_size=40,
                    update_rule="adam", optim_config={"learning_rate": 1e-2}, verbose=True,
                    print_every=1)
    solver.load_checkpoint(prefix + "_epoch_1.npz")
    capsys.readouterr()
    solver.train()
    assert bars == [(10, 5, "it", False)]
    # the loss lines go above the bar, through it, not around it to stdout
    assert written[0].startswith("(Iteration 6 / 10) loss:")
    assert any(w.startswith("(Epoch 2 / 2) train acc:") for w in written)
    assert capsys.readouterr().out == ""


def test_checkpoint_keeps_the_models_reg_and_best_needs_a_strict_gain(digits, tmp_path):
    """Loading a Solver checkpoint restores params, not the model's own reg
    (the model the user built decides it); a later epoch with merely equal
    validation accuracy does not replace the best params."""
    s = _tiny_solver(digits, num_epochs=1, checkpoint_name=str(tmp_path / "r"))
    s.model.reg = 0.5
    s.train()
    other = _tiny_solver(digits)
    other.model.reg = 0.0
    other.load_checkpoint(str(tmp_path / "r_epoch_1.npz"))
    assert other.model.reg == 0.0
    t = _tiny_solver(digits)
    t.check_accuracy = lambda *a, **k: 0.5            # every evaluation ties
    t._evaluate()
    first = {k: host(v).copy() for k, v in t.best_params.items()}
    for v in t.model.params.values():
        v += 1.0
    t._evaluate()
    for k in first:
        np.testing.assert_array_equal(host(t.best_params[k]), first[k], err_msg=k)


def test_loss_lines_are_the_courses_exactly(capsys, digits):
    """One '(Iteration t / T) loss: %f' line every print_every iterations,
    nothing around it (notebooks compare these lines)."""
    import re
    np.random.seed(0)
    model = FullyConnectedNet([10], input_dim=64, num_classes=10, dtype=np.float64)
    Solver(model, _small(digits, 100), num_epochs=1, batch_size=25, print_every=2).train()
    out = capsys.readouterr().out
    assert re.findall(r"^\(Iteration (\d+) / 4\) loss: \d+\.\d{6}$", out, re.M) == ["1", "3"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_off_the_host_a_nan_is_reported_at_the_next_check(digits):
    """Off the host the loss is read back every print_every iterations, so a
    divergence at iteration 3 stops training at the first check after it,
    not at the end of the epoch."""
    for print_every, stopped_after in ((1, 3), (4, 5)):
        with backend.use_backend("array_api_strict"):
            np.random.seed(3)
            model = FullyConnectedNet([6], input_dim=64, num_classes=10, dtype=np.float64)
            s = Solver(model, _small(digits, 200), batch_size=10, num_epochs=1,  # 20 steps
                       verbose=False, print_every=print_every)
            real, calls = s.model.loss, []

            def loss(X, y=None, real=real, calls=calls):
                out = real(X, y)
                if y is None:
                    return out
                calls.append(1)
                value, grads = out
                return (value * float("nan") if len(calls) >= 3 else value), grads
            s.model.loss = loss
            with pytest.raises(FloatingPointError, match="at iteration 3;"):
                s.train()
        assert len(s.loss_history) == stopped_after, print_every


class _CourseWrittenModel:
    """A model as the course's students write it: NumPy params, no
    to_device, a loss(X, y=None) of their own."""

    def __init__(self):
        r = np.random.RandomState(0)
        self.params = {"W": 0.01 * r.randn(64, 10), "b": np.zeros(10)}

    def loss(self, X, y=None):
        from xpnn.layers import softmax_loss
        X2 = np.asarray(X).reshape(len(X), -1)
        scores = X2 @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        value, d = softmax_loss(scores, y)
        return value, {"W": X2.T @ d, "b": d.sum(axis=0)}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_course_written_model_trains_on_numpy_whatever_the_default(digits, tmp_path):
    with backend.use_backend("array_api_strict"):
        model = _CourseWrittenModel()
        s = Solver(model, _small(digits, 100), num_epochs=2, batch_size=25, verbose=False,
                   optim_config={"learning_rate": 1e-2}, update_rule="adam")
        s.train()
    assert all(type(v) is np.ndarray for v in model.params.values())
    assert len(s.loss_history) == 8 and s.val_acc_history[-1] > 0.1
    # resumed from a checkpoint (optimizer state stays with the model, on the
    # host), and with crops and flips drawn for host batches
    s = Solver(model, _small(digits, 100), num_epochs=1, batch_size=25, verbose=False,
               update_rule="adam", checkpoint_name=str(tmp_path / "course"))
    s.train()
    with backend.use_backend("array_api_strict"):
        again = Solver(_CourseWrittenModel(), _small(digits, 100), num_epochs=2, batch_size=25,
                       verbose=False, update_rule="adam", augment={"crop_pad": 1, "flip": True})
        again.load_checkpoint(str(tmp_path / "course_epoch_1.npz"))
        again.train()
    assert len(again.loss_history) == 8
    assert all(type(v) is np.ndarray for v in again.model.params.values())
    # on the host the NaN check comes before the update, as for any NumPy model
    bad = dict(_small(digits, 100))
    bad["X_train"] = np.full_like(bad["X_train"], np.nan)
    with backend.use_backend("array_api_strict"):
        s = Solver(_CourseWrittenModel(), bad, num_epochs=1, batch_size=25, verbose=False,
                   print_every=100)
        with pytest.raises(FloatingPointError, match="at iteration 1;.*before that step"):
            s.train()


def test_last_checkpoint_is_none_until_one_is_written(digits, tmp_path):
    s = _tiny_solver(digits, num_epochs=1)
    assert s.last_checkpoint is None
    s.checkpoint_name = str(tmp_path / "c")
    s.train()
    assert s.last_checkpoint == str(tmp_path / "c_epoch_1.npz")


def test_a_malformed_model_section_names_the_file(digits, tmp_path):
    from xpnn.checkpoint import save_npz_atomic
    s = _tiny_solver(digits, num_epochs=1, checkpoint_name=str(tmp_path / "c"))
    s.train()
    meta, arrays = load_npz(s.last_checkpoint)
    bad = str(tmp_path / "bad.npz")
    save_npz_atomic(bad, {**meta, "model": {"class": "FullyConnectedNet"}}, arrays)
    with pytest.raises(ValueError, match="bad.npz.*model section is incomplete"):
        _tiny_solver(digits).load_checkpoint(bad)


# ---------------------------------------------------------------- settings and their edges
@pytest.mark.parametrize("key, value, message", [
    ("lr_decay", -0.5, "lr_decay must be a finite number in [0.0, inf], got -0.5"),
    ("num_epochs", -1, "num_epochs must be an integer >= 0, got -1"),
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("num_train_samples", 0, "num_train_samples must be an integer >= 1, got 0"),
    ("num_val_samples", 0, "num_val_samples must be an integer >= 1, got 0"),
    ("print_every", 0, "print_every must be an integer >= 1, got 0"),
])
def test_each_setting_is_named_with_its_bound(digits, key, value, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        _tiny_solver(digits, **{key: value})


def test_the_smallest_settings_are_accepted(digits):
    """lr_decay 0, batch_size 1, one sample per accuracy check, print_every
    1; and num_epochs 0: train() takes no step and leaves the model as it was."""
    s = _tiny_solver(digits, lr_decay=0.0, batch_size=1, num_train_samples=1,
                     num_val_samples=1, print_every=1, num_epochs=1)
    s.train()
    assert len(s.loss_history) == 40 and len(s.val_acc_history) == 2
    assert all(c["learning_rate"] == 0.0 for c in s.optim_configs.values())
    z = _tiny_solver(digits, num_epochs=0)
    before = {k: host(v).copy() for k, v in z.model.params.items()}
    z.train()
    assert z.loss_history == [] and z.val_acc_history == [] and z.iteration == 0
    for k in before:
        np.testing.assert_array_equal(host(z.model.params[k]), before[k])


def test_an_epoch_has_at_least_one_iteration(digits):
    s = _tiny_solver(digits, batch_size=64, num_epochs=3)      # 40 samples, batches of 64
    s.train()
    assert len(s.loss_history) == 3 and s.epoch == 3
    assert len(s.val_acc_history) == 3           # each iteration ends an epoch


def test_a_custom_rule_is_named_in_the_checkpoint(digits, tmp_path):
    import functools

    from xpnn.optim import sgd

    def halved_sgd(w, dw, config=None):
        return sgd(w, dw / 2, config)
    for rule, name in ((halved_sgd, "halved_sgd"), (functools.partial(sgd), "custom"),
                       ("sgd", "sgd")):
        s = _tiny_solver(digits, update_rule=rule, num_epochs=1)
        s.train()
        path = s.save_checkpoint(str(tmp_path / "c.npz"))
        assert load_npz(path)[0]["solver"]["update_rule"] == name


def test_augment_defaults(digits):
    data = _small(digits, 40)
    assert data["X_train"].ndim == 4
    s = _tiny_solver(digits, augment={"flip": True})
    assert s.augment == {"crop_pad": 0, "flip": True}
    s = _tiny_solver(digits, augment={"crop_pad": 1})
    assert s.augment == {"crop_pad": 1, "flip": False}


# ---------------------------------------------------------------- accuracy checks
def test_check_accuracy_subsamples_only_a_larger_set(digits):
    """num_samples < N: the rows np.random.choice draws (the course's
    draw); num_samples >= N: every row once, no draw; any batch size gives
    the same count; an empty set is 0.0."""
    s = _tiny_solver(digits)
    X, y = digits["X_val"][:60].reshape(60, -1), digits["y_val"][:60]
    pred = np.argmax(host(s.model.loss(X)), axis=1)
    full = float(np.mean(pred == y))
    assert 0 < full < 1
    state = np.random.get_state()
    for n in (None, 60, 100):
        for bs in (7, 100):
            assert s.check_accuracy(X, y, num_samples=n, batch_size=bs) == full
    assert np.random.get_state()[2] == state[2]          # nothing drawn
    np.random.seed(5)
    idx = np.random.choice(60, 25)
    np.random.seed(5)
    assert s.check_accuracy(X, y, num_samples=25, batch_size=10) == np.mean(pred[idx] == y[idx])
    assert s.check_accuracy(X[:0], y[:0]) == 0.0


def test_evaluation_uses_the_subsample_sizes(digits, monkeypatch):
    s = _tiny_solver(digits, num_train_samples=13, num_val_samples=17)
    calls = []
    real = s.check_accuracy

    def spy(X, y, num_samples=None, **kw):
        calls.append((X.shape[0], num_samples))
        return real(X, y, num_samples=num_samples, **kw)
    monkeypatch.setattr(s, "check_accuracy", spy)
    s._evaluate()
    assert calls == [(40, 13), (40, 17)]


def test_an_empty_validation_set_trains_with_accuracy_zero(digits):
    np.random.seed(3)
    model = FullyConnectedNet([6], input_dim=64, num_classes=10, dtype=np.float64)
    data = {**_small(digits, 40), "X_val": digits["X_val"][:0], "y_val": digits["y_val"][:0]}
    s = Solver(model, data, batch_size=10, num_epochs=1, verbose=False)
    s.train()
    assert s.val_acc_history == [0.0, 0.0] and s.best_params == {}


# ---------------------------------------------------------------- labels
def test_labels_are_checked_once_and_a_single_sample_is_enough(digits, monkeypatch):
    calls = []
    real = backend.label_range
    monkeypatch.setattr(backend, "label_range", lambda y: calls.append(len(y)) or real(y))
    s = _tiny_solver(digits, num_epochs=1)
    s.train()
    s.num_epochs = 2
    s.train()
    # y_train and y_val, once (the losses check each host batch's 10 themselves)
    assert [n for n in calls if n != 10] == [40, 40]
    np.random.seed(0)
    model = FullyConnectedNet([6], input_dim=64, num_classes=10, dtype=np.float64)
    one = {"X_train": digits["X_train"][:1], "y_train": np.array([12]),
           "X_val": digits["X_val"][:5], "y_val": digits["y_val"][:5]}
    with pytest.raises(ValueError, match=re.escape(
            "y_train holds labels in [12, 12] but the model scores 10 classes; labels must "
            "lie in [0, 9]")):
        Solver(model, one, batch_size=1, verbose=False).train()


def test_the_label_check_does_not_run_the_model(xb, digits):
    """A course-written model whose batch norm refuses test mode before any
    training (as xpnn's does; the course's starts from zeros) once died in
    train(): the label check ran a one-sample test-mode pass. A wrong
    input size now shows the minibatch's shape, not that one sample's. A
    course-written model declares no num_classes: negative labels are still
    refused up front, the rest is its loss's per-batch check."""
    from xpnn.layers import affine_forward, affine_backward, batchnorm_forward, \
        batchnorm_backward, softmax_loss

    class CourseNet:
        def __init__(self):
            r = np.random.RandomState(0)
            self.params = {"W": xb.asarray(r.randn(64, 10) * 0.01), "b": xb.asarray(np.zeros(10)),
                           "gamma": xb.asarray(np.ones(10)), "beta": xb.asarray(np.zeros(10))}
            self.bn_param = {}
            self.reg = 0.0

        def loss(self, X, y=None):
            p = self.params
            self.bn_param["mode"] = "test" if y is None else "train"
            h, c1 = affine_forward(backend.to_device(X, xb.name), p["W"], p["b"])
            scores, c2 = batchnorm_forward(h, p["gamma"], p["beta"], self.bn_param)
            if y is None:
                return scores
            loss, d = softmax_loss(scores, backend.to_device(y, xb.name))
            d, dgamma, dbeta = batchnorm_backward(d, c2)
            _, dW, db = affine_backward(d, c1)
            return loss, {"W": dW, "b": db, "gamma": dgamma, "beta": dbeta}

    data = _small(digits, 100)
    s = Solver(CourseNet(), data, batch_size=20, num_epochs=1, verbose=False)
    s.train()
    assert len(s.loss_history) == 5 and s.val_acc_history
    bad = dict(data, y_train=data["y_train"] - 1)        # a -1 among them
    with pytest.raises(ValueError, match=r"y_train holds labels in \[-1, .*class labels are "
                                         r">= 0"):
        Solver(CourseNet(), bad, verbose=False).train()
    model = FullyConnectedNet([6], input_dim=60, num_classes=10)
    with pytest.raises(ValueError, match=r"X has shape \(20, 1, 8, 8\); this model takes "
                                         r"\(N, 60\)"):
        Solver(model, data, batch_size=20, verbose=False).train()


# ---------------------------------------------------------------- backends and data moves
def test_an_xpnn_model_follows_the_active_backend_and_data_moves_once(digits, monkeypatch):
    """A model built on NumPy trains where the active backend computes; the
    training set moves there once and minibatches are taken there (only
    index arrays move per step); a set that does not fit stays on the host
    and each minibatch moves."""
    from xpnn import solver as solver_mod
    for fits in (True, False):
        moved = []
        real = backend.to_device

        def spy(obj, name=None, real=real, moved=moved):
            if isinstance(obj, np.ndarray) and obj.ndim == 2:   # host images (W: 64, 6 rows)
                moved.append(obj.shape[0])
            return real(obj, name)
        monkeypatch.setattr(solver_mod.backend, "to_device", spy)
        monkeypatch.setattr(solver_mod.backend, "fits_on_device", lambda nbytes: fits)
        np.random.seed(3)
        model = FullyConnectedNet([6], input_dim=64, num_classes=10, dtype=np.float64)
        data = {k: (v.reshape(len(v), -1) if k.startswith("X") else v)
                for k, v in _small(digits, 40).items()}
        with backend.use_backend("array_api_strict"):
            s = Solver(model, data, batch_size=10, num_epochs=2, verbose=False,
                       num_train_samples=None)
            s.train()
        assert all(backend.backend_of(v) == "array_api_strict" for v in model.params.values())
        monkeypatch.undo()
        big = [n for n in moved if n == 40]
        if fits:
            assert big == [40, 40] and 10 not in moved, moved      # X_train and X_val
        else:
            # each of the 8 minibatches, and each accuracy check's one batch
            # of 40 (3 evaluations x train and val)
            assert big == [40] * 6 and moved.count(10) == 8, moved


# ---------------------------------------------------------------- divergence, bar, one param
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_after_a_divergence_train_goes_on(xb, digits):
    """The error is reported once: a train() after it (the rate lowered, or
    the cause gone) continues from the iteration reached; the loss history
    keeps one entry per iteration counted."""
    np.random.seed(3)
    model = FullyConnectedNet([6], input_dim=64, num_classes=10, dtype=np.float64)
    s = Solver(model, _small(digits, 200), batch_size=10, num_epochs=1, verbose=False,
               print_every=2, update_rule="sgd", optim_config={"learning_rate": 0.1})
    real, calls = s.model.loss, []

    def loss(X, y=None):
        out = real(X, y)
        if y is None:
            return out
        calls.append(1)
        return (out[0] * float("nan") if len(calls) == 3 else out[0]), out[1]
    s.model.loss = loss
    with pytest.raises(FloatingPointError, match="at iteration 3;"):
        s.train()
    assert len(s.loss_history) == s.iteration
    s.train()
    assert s.iteration == 20 and len(s.loss_history) == 20
    assert all(np.isfinite(s.loss_history[3:]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_a_run_that_diverges_at_once_keeps_nothing_non_finite(xb, digits, rule):
    """float32 at learning rate 1e40: the first update overflows, the next
    loss is NaN. Neither the best params (none yet) nor the model may hold
    a non-finite value afterwards; the model is back at its initial params
    and the message says so."""
    np.random.seed(0)
    model = FullyConnectedNet([20], input_dim=64, num_classes=10, dtype=np.float32)
    start = {k: host(v).copy() for k, v in model.params.items()}
    s = Solver(model, _small(digits, 200), batch_size=50, num_epochs=2, verbose=False,
               update_rule=rule, optim_config={"learning_rate": 1e40})
    with pytest.raises(FloatingPointError, match="back at its parameters from the start"):
        s.train()
    for params in (s.best_params, model.params):
        assert all(np.isfinite(host(v)).all() for v in params.values())
    for k, v in model.params.items():
        np.testing.assert_array_equal(host(v), start[k], err_msg=k)


def test_progress_bar_counts_every_iteration_on_terminals_only(digits, monkeypatch):
    """The bar (a terminal's, disable=None: none in logs and pipes, redrawn
    at most twice a second) ends at the total."""
    bars = []

    class Recorder:
        def __init__(self, total, initial, **kw):
            self.n, self.total, self.kw = initial, total, kw
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def write(self, line):
            pass

        def close(self):
            pass
    import tqdm.auto
    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    s = _tiny_solver(digits, num_epochs=2)
    s.verbose = True
    s.train()
    (bar,) = bars
    assert bar.n == bar.total == 8
    assert bar.kw["disable"] is None and bar.kw["mininterval"] == 0.5


class _OneParamModel:
    """A linear softmax classifier with its one weight matrix (no bias)."""

    def __init__(self):
        self.params = {"W": 0.01 * np.random.RandomState(0).randn(64, 10)}

    def loss(self, X, y=None):
        from xpnn.layers import softmax_loss
        X2 = np.asarray(X).reshape(len(X), -1)
        scores = X2 @ self.params["W"]
        if y is None:
            return scores
        value, d = softmax_loss(scores, y)
        return value, {"W": X2.T @ d}


def test_a_model_with_one_parameter_trains(digits):
    model = _OneParamModel()
    s = Solver(model, _small(digits, 200), batch_size=20, num_epochs=2, verbose=False,
               update_rule="sgd", optim_config={"learning_rate": 0.1})
    s.train()
    assert s.best_val_acc > 0.5 and set(s.best_params) == {"W"}


class _FloatLossModel(_CourseWrittenModel):
    """A course-written model whose loss is a Python float."""

    def loss(self, X, y=None):
        out = super().loss(X, y)
        return out if y is None else (float(out[0]), out[1])


def test_a_python_float_loss_is_recorded_as_is(digits):
    np.random.seed(0)
    s = Solver(_FloatLossModel(), _small(digits, 100), batch_size=20, num_epochs=1,
               verbose=False, update_rule="sgd", print_every=2)
    s.train()
    assert len(s.loss_history) == 5 and all(type(v) is float for v in s.loss_history)


def test_a_course_written_model_gets_host_batches_when_data_does_not_fit(digits, monkeypatch):
    """Under a device default backend, with a data set too big for the
    device, a course-written model's minibatches are still NumPy arrays."""
    from xpnn import solver as solver_mod
    monkeypatch.setattr(solver_mod.backend, "fits_on_device", lambda nbytes: False)
    model = _CourseWrittenModel()
    seen = []
    real = model.loss
    model.loss = lambda X, y=None: seen.append(type(X)) or real(X, y)
    with backend.use_backend("array_api_strict"):
        np.random.seed(0)
        Solver(model, _small(digits, 40), batch_size=10, num_epochs=1, verbose=False).train()
    assert seen and set(seen) == {np.ndarray}


def test_a_solver_inside_another_with_the_same_checkpoint_name_is_refused(digits, tmp_path):
    """In one process too: a second Solver writing the same checkpoint
    files while the first trains (say, from its epoch callback) is refused,
    and the name is free once the first has finished."""
    from xpnn.models import FullyConnectedNet
    prefix = str(tmp_path / "ck")

    def make(callback=None):
        np.random.seed(0)
        model = FullyConnectedNet([8], input_dim=64, num_classes=10)
        return Solver(model, digits, num_epochs=1, batch_size=100, verbose=False,
                      checkpoint_name=prefix, epoch_callback=callback)
    seen = []

    def nested(_):
        with pytest.raises(RuntimeError, match=r"checkpoint prefix .* is in use: another Solver "
                                               r"of this process is training with it"):
            make().train()
        seen.append(True)
    make(nested).train()
    assert seen == [True]
    make().train()


def test_a_file_system_without_locks_trains_unlocked(digits, tmp_path, monkeypatch):
    """Where the OS cannot lock (some network file systems: ENOLCK), the
    training goes on without the lock rather than being refused, and says
    so."""
    import errno

    from xpnn import checkpoint
    from xpnn.models import FullyConnectedNet

    def no_locks(fh):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(checkpoint, "_lock_file", no_locks)
    np.random.seed(0)
    s = Solver(FullyConnectedNet([8], input_dim=64, num_classes=10), digits, num_epochs=1,
               batch_size=200, verbose=False, checkpoint_name=str(tmp_path / "ck"))
    with pytest.warns(RuntimeWarning, match=r"this file system cannot lock .*\(No locks "
                                            r"available\); another run with the same prefix "
                                            r"would not be stopped"):
        s.train()
    assert os.path.isfile(str(tmp_path / "ck") + "_epoch_1.npz")


def _bn_run(digits, solver_class=Solver, **kwargs):
    """A batch-norm ConvNet whose best validation epoch (2) is not its last
    (4), and whose last epoch's running statistics score other than the
    best epoch's with the best params."""
    np.random.seed(7)
    model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((8,), (16,)), hidden_dims=(32,),
                    num_classes=10, dtype=np.float64)
    solver = solver_class(model, digits, update_rule="adam", optim_config={"learning_rate": 2e-2},
                          num_epochs=4, batch_size=50, verbose=False, **kwargs)
    solver.train()
    return solver


def test_the_best_params_come_with_their_batch_norm_statistics(xb, digits, tmp_path):
    """best_val_acc 0.94 but check_accuracy 0.885 once: the model took the
    best epoch's params with the last epoch's running statistics. Now it
    scores what best_val_acc says, after train(), from a checkpoint (load_model
    best=True, what xpnn prune starts from) and after resuming."""
    from xpnn.checkpoint import load_model
    solver = _bn_run(digits, checkpoint_name=str(tmp_path / "bn"))
    val = solver.val_acc_history
    assert val.index(max(val)) == 2 < len(val) - 1       # epoch 2 is the best, not 4
    assert solver.check_accuracy(digits["X_val"], digits["y_val"]) == solver.best_val_acc
    best = load_model(str(tmp_path / "bn_epoch_4.npz"), best=True)
    assert Solver(best, digits, verbose=False).check_accuracy(
        digits["X_val"], digits["y_val"]) == solver.best_val_acc
    last = load_model(str(tmp_path / "bn_epoch_4.npz"))
    assert Solver(last, digits, verbose=False).check_accuracy(
        digits["X_val"], digits["y_val"]) == val[-1]
    np.random.seed(7)
    model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((8,), (16,)), hidden_dims=(32,),
                    num_classes=10, dtype=np.float64)
    again = Solver(model, digits, update_rule="adam", optim_config={"learning_rate": 2e-2},
                   num_epochs=5, batch_size=50, verbose=False)
    again.load_checkpoint(str(tmp_path / "bn_epoch_4.npz"))
    again.train()
    assert again.check_accuracy(digits["X_val"], digits["y_val"]) == again.best_val_acc


def test_the_course_solver_keeps_the_last_epochs_statistics(xb, digits):
    """The course's Solver swaps in the best params only; a notebook's printed
    accuracy after train() depends on it, so the course editions keep it."""
    import importlib
    solver = _bn_run(digits, importlib.import_module("xpnn.compat.cs231n_2019.solver").Solver)
    assert solver.check_accuracy(digits["X_val"], digits["y_val"]) < solver.best_val_acc - 0.03


def test_a_checkpoints_best_statistics_are_checked(digits, tmp_path):
    from xpnn.checkpoint import load_model, save_npz_atomic
    solver = _bn_run(digits, checkpoint_name=str(tmp_path / "bn"))
    meta, arrays = load_npz(str(tmp_path / "bn_epoch_4.npz"))
    ref = meta["best_bn_stats"][0]["running_mean"]["__array__"]
    arrays[ref] = arrays[ref][:3]
    save_npz_atomic(str(tmp_path / "cut.npz"), meta, arrays)
    with pytest.raises(ValueError, match=r"cut\.npz'?: best_bn_stats\[0\]\['running_mean'\] "
                                         r"has shape \(3,\)"):
        load_model(str(tmp_path / "cut.npz"), best=True)
    with pytest.raises(ValueError, match=r"best_bn_stats\[0\]"):
        solver.load_checkpoint(str(tmp_path / "cut.npz"))
    del meta["best_bn_stats"]     # an older checkpoint: the best params alone
    save_npz_atomic(str(tmp_path / "old.npz"), meta, arrays)
    assert load_model(str(tmp_path / "old.npz"), best=True) is not None
