"""The xpnn command line: help, one-line errors, a short run, resume."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xpnn.cli import main

from conftest import host


def _xpnn(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "xpnn.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, XPNN_BACKEND="numpy"))


def test_help_documents_every_option():
    out = _xpnn("train", "--help")
    assert out.returncode == 0
    for opt in ("--model", "--dataset", "--data-dir", "--epochs", "--batch-size", "--lr",
                "--update-rule", "--backend", "--checkpoint", "--resume", "--plot"):
        assert opt in out.stdout


@pytest.mark.parametrize("args, match", [
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["--lr", "fast"], "argument --lr: expected a number >= 0, got 'fast'"),
    (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    # looked for where get_CIFAR10_data() looks; the error says where to get it
    (["--dataset", "cifar10"], "looked for 'data_batch_1' in: "),
    (["--dataset", "cifar10"], "https://www.cs.toronto.edu/~kriz/cifar.html, e.g. in the "
                               "working directory: curl -L https://www.cs.toronto.edu/~kriz/"
                               "cifar-10-python.tar.gz | tar -xz"),
    (["--dataset", "cinic10"], "mkdir -p CINIC-10 && curl -L https://datashare.ed.ac.uk/"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "does not exist"),
    (["--resume", "/nonexistent.npz"], "checkpoint '/nonexistent.npz' does not exist"),
])
def test_bad_values_give_one_line_errors(args, match, tmp_path, monkeypatch):
    monkeypatch.delenv("XPNN_DATA", raising=False)   # nothing to find in an empty folder
    out = _xpnn("train", *args, cwd=tmp_path)
    assert out.returncode in (1, 2)
    assert match in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_short_run_checkpoint_and_resume(tmp_path, capsys):
    plot = tmp_path / "h.png"
    prefix = str(tmp_path / "ck")
    rc = main(["train", "--model", "fc", "--epochs", "1", "--plot", str(plot),
               "--checkpoint", prefix, "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "val accuracy:" in out and "test accuracy:" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.path.isfile(prefix + "_epoch_1.npz")
    rc = main(["train", "--resume", prefix + "_epoch_1.npz", "--epochs", "2", "--plot", "none"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "at epoch 1" in out and "(Epoch 2 / 2)" in out


def test_resume_says_what_it_takes_and_refuses_what_it_would_ignore(tmp_path, capsys):
    """--resume once ignored --model and --lr silently, and `--resume
    ck_epoch_2.npz --epochs 1` printed "1 epochs", trained nothing and
    exited 0."""
    prefix = str(tmp_path / "ck")
    assert main(["train", "--model", "fc", "--epochs", "2", "--lr", "0.005", "--plot", "none",
                 "--checkpoint", prefix, "--quiet"]) == 0
    ck = prefix + "_epoch_2.npz"
    capsys.readouterr()
    assert main(["train", "--resume", ck, "--lr", "0.1", "--model", "threelayer",
                 "--plot", "none"]) == 1
    err = capsys.readouterr().err
    assert "--model, --lr would be ignored" in err and "without --resume" in err
    for epochs in (["--epochs", "1"], ["--epochs", "2"], []):    # at or past the end
        assert main(["train", "--resume", ck, *epochs, "--plot", "none"]) == 1
        err = capsys.readouterr().err
        assert "nothing to train" in err and "at epoch 2" in err and "--epochs 5" in err
    assert main(["train", "--resume", ck, "--epochs", "3", "--plot", "none"]) == 0
    out = capsys.readouterr().out
    # the rate it goes on at: 0.005 decayed twice by 0.9
    assert "from the checkpoint: the model, adam at learning rate 0.00405, batch 50" in out
    assert "training to epoch 3" in out and "(Epoch 3 / 3)" in out


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path):
    """Kill a real training process after its 2nd epoch checkpoint, resume
    from that file, and end with the same parameters as a run never stopped."""
    import signal
    import time

    import numpy as np

    from xpnn.checkpoint import load_npz

    common = ["train", "--model", "threelayer", "--epochs", "5", "--plot", "none", "--quiet"]
    full = _xpnn(*common, "--checkpoint", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    prefix = str(tmp_path / "killed")
    # the same backend as _xpnn's runs (the suite may run with another default)
    proc = subprocess.Popen([sys.executable, "-m", "xpnn.cli", *common, "--checkpoint", prefix],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, XPNN_BACKEND="numpy"))
    deadline = time.time() + 120
    while not os.path.exists(prefix + "_epoch_2.npz") and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _xpnn("train", "--resume", prefix + "_epoch_2.npz", "--checkpoint", prefix,
                    "--plot", "none", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a = load_npz(str(tmp_path / "full_epoch_5.npz"))[1]
    b = load_npz(prefix + "_epoch_5.npz")[1]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_prune_command_tables_and_plot(tmp_path, capsys):
    prefix = str(tmp_path / "ck")
    assert main(["train", "--epochs", "3", "--plot", "none", "--checkpoint", prefix,
                 "--quiet"]) == 0
    capsys.readouterr()
    plot = tmp_path / "p.png"
    assert main(["prune", "--checkpoint", prefix + "_epoch_3.npz", "--amounts", "0.1,0.5",
                 "--plot", str(plot), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "amount sparsity  nonzero" in out and "  0.50    0.500" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["prune", "--checkpoint", prefix + "_epoch_3.npz", "--structured",
                 "--amounts", "0.25", "--plot", "none", "--repeat", "1", "--finetune", "1"]) == 0
    out = capsys.readouterr().out
    assert "shrunk ms" in out and "speedup" in out


@pytest.mark.parametrize("args, match", [
    (["--amounts", "0.1,1.2"], "amounts must be fractions in [0, 1]"),
    (["--amounts", "x"], "expected comma-separated fractions"),
])
def test_prune_bad_amounts(args, match):
    out = _xpnn("prune", "--checkpoint", "whatever.npz", *args)
    assert out.returncode == 2 and match in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, match", [
    (["--model", "fc", "--filters", "8"],
     "--filters does not apply to --model fc (it takes --hidden, --keep)"),
    (["--model", "twolayer", "--keep", "0.5"], "--keep does not apply to --model twolayer"),
    (["--model", "challenge", "--hidden", "8"], "--hidden does not apply to --model challenge"),
    (["--keep", "1.5"], "--keep is the probability of keeping a unit, in (0, 1]; got 1.5"),
])
def test_size_options_are_refused_where_the_model_has_none(args, match):
    out = _xpnn("train", "--epochs", "1", "--plot", "none", *args)
    assert out.returncode == 1 and match in out.stderr, out.stderr


@pytest.mark.parametrize("model, args, want", [
    ("convnet", ["--filters", "3", "--hidden", "5", "--keep", "0.5", "--weight-scale", "0.1"],
     {"W1": (3, 1, 3, 3), "W2": (6, 3, 3, 3), "W3": (6 * 2 * 2, 5), "W4": (5, 10)}),
    ("threelayer", ["--filters", "3", "--hidden", "5"],
     {"W1": (3, 1, 3, 3), "W2": (3 * 4 * 4, 5), "W3": (5, 10)}),
    ("fc", ["--hidden", "7"], {"W1": (64, 7), "W2": (7, 7), "W3": (7, 10)}),
    ("twolayer", ["--hidden", "7"], {"W1": (64, 7), "W2": (7, 10)}),
])
def test_size_options_shape_the_model(model, args, want):
    import argparse
    import numpy as np
    from xpnn.cli import build_parser
    from xpnn.data import get_digits_data
    from xpnn.recipes import Settings, build_model
    a = build_parser().parse_args(["train", "--model", model, *args])
    assert isinstance(a, argparse.Namespace)
    np.random.seed(0)
    m = build_model(Settings.from_options(a), get_digits_data())
    assert {k: tuple(v.shape) for k, v in m.params.items() if k.startswith("W")} == want
    if "--keep" in args:
        assert m.dropout_param["p"] == 0.5
    if "--weight-scale" in args:
        assert abs(float(np.std(host(m.params["W3"]))) - 0.1) < 0.02   # He's: sqrt(2/24)=0.29


def _train_until(args, line, tmp_path):
    """Start `xpnn train ARGS`, read its output until a line starting with
    ``line`` (training has reached that point, however fast the machine),
    send Ctrl-C (SIGINT); its (returncode, stdout, stderr)."""
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "xpnn.cli", "train", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, XPNN_BACKEND="numpy", PYTHONUNBUFFERED="1"))
    seen = []
    for ln in proc.stdout:
        seen.append(ln)
        if ln.startswith(line):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, "".join(seen) + out, err


def test_ctrl_c_says_where_the_last_epoch_is_and_how_to_go_on(tmp_path):
    """Ctrl-C once ended with "xpnn: interrupted" alone: now the message
    names the checkpoint of the last finished epoch and the command that
    continues, which works; the plot of what ran is written."""
    import re
    prefix = str(tmp_path / "run")
    rc, out, err = _train_until(
        ["--model", "fc", "--epochs", "400", "--checkpoint", prefix, "--plot", "p.png"],
        "(Epoch 3 / 400)", tmp_path)
    assert rc == 130, err
    m = re.search(r"the last finished epoch is in (\S+_epoch_(\d+)\.npz); continue with:\n"
                  r"  xpnn train --resume (\S+) --epochs 400 --checkpoint (\S+)\n", err)
    assert m and m.group(1) == m.group(3) and m.group(4) == prefix, err
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and "wrote" in err
    again = _xpnn("train", "--resume", m.group(3), "--epochs", str(int(m.group(2)) + 1),
                  "--checkpoint", prefix, "--plot", "none", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert os.path.exists(f"{prefix}_epoch_{int(m.group(2)) + 1}.npz")


def test_ctrl_c_without_checkpoints_keeps_the_plot_and_says_nothing_was_saved(tmp_path):
    rc, out, err = _train_until(["--model", "fc", "--epochs", "400", "--plot", "p.png"],
                                "(Iteration 1 /", tmp_path)
    assert rc == 130, err
    assert "nothing was saved (no --checkpoint)" in err and "--checkpoint PREFIX" in err
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("keep, left", [("all", [1, 2, 3, 4]), ("last", [4]),
                                        ("best", None)])
def test_keep_checkpoints(tmp_path, keep, left):
    """15 epochs once left 15 files: --keep-checkpoints last keeps the newest,
    best the newest and the best by validation accuracy."""
    import re
    from xpnn.checkpoint import load_npz
    prefix = str(tmp_path / "k")
    assert main(["train", "--model", "fc", "--epochs", "4", "--checkpoint", prefix,
                 "--keep-checkpoints", keep, "--plot", "none", "--quiet"]) == 0
    files = sorted(int(re.search(r"_epoch_(\d+)", f).group(1)) for f in os.listdir(tmp_path)
                   if f.endswith(".npz"))
    if left is None:   # val_acc_history[e] is epoch e's (entry 0: after the first step)
        val = load_npz(prefix + "_epoch_4.npz")[0]["val_acc_history"]
        best = max(range(1, 5), key=lambda e: val[e])   # the first best on ties
        left = sorted({best, 4})
    assert files == left


def test_prune_saves_its_models_and_starts_from_what_train_reported(tmp_path, capsys):
    """`xpnn prune` could not save what it pruned, and started from the last
    epoch's params where `xpnn train` had reported the best epoch's,
    without saying so."""
    import re
    import numpy as np
    from xpnn.checkpoint import load_model
    prefix = str(tmp_path / "ck")
    assert main(["train", "--model", "fc", "--epochs", "3", "--lr", "0.05", "--plot", "none",
                 "--checkpoint", prefix]) == 0
    reported = float(re.search(r"val accuracy: ([\d.]+)", capsys.readouterr().out).group(1))
    assert main(["prune", "--checkpoint", prefix + "_epoch_3.npz", "--amounts", "0.5",
                 "--plot", "none", "--repeat", "1", "--save", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "(pruned from the params of the best validation accuracy" in out
    # the same params (and batch-norm statistics) as train's last line; the
    # amounts are compared on the validation set, the test set left alone
    base = float(re.search(r"val accuracy ([\d.]+)", out).group(1))
    assert abs(base - reported) < 1e-4 and "test acc" not in out
    saved = load_model(str(tmp_path / "p_50.npz"))
    w = [host(v) for k, v in saved.params.items() if k.startswith("W")]
    assert abs(sum(int((x == 0).sum()) for x in w) / sum(x.size for x in w) - 0.5) < 0.01
    assert f"wrote {tmp_path / 'p_50.npz'}" in out
    assert main(["prune", "--checkpoint", prefix + "_epoch_3.npz", "--structured",
                 "--amounts", "0.25", "--plot", "none", "--repeat", "1",
                 "--save", str(tmp_path / "s")]) == 1      # fc has no conv filters
    assert main(["train", "--epochs", "1", "--plot", "none", "--quiet",
                 "--checkpoint", str(tmp_path / "cv")]) == 0
    assert main(["prune", "--checkpoint", str(tmp_path / "cv_epoch_1.npz"), "--structured",
                 "--amounts", "0.25", "--plot", "none", "--repeat", "1",
                 "--save", str(tmp_path / "s")]) == 0
    small = load_model(str(tmp_path / "s_25.npz"))
    full = load_model(str(tmp_path / "cv_epoch_1.npz"))
    assert np.prod(host(small.params["W1"]).shape) < np.prod(host(full.params["W1"]).shape)


def test_two_trainings_with_one_checkpoint_prefix_are_refused(tmp_path, capsys):
    """Two `xpnn train --checkpoint same/run` once both finished, one run's
    files silently replacing the other's: the second is refused while the
    first (here a real second process holding the prefix) trains, naming
    it; when it ends, the prefix is free again."""
    import subprocess
    import sys
    prefix = str(tmp_path / "same" / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from xpnn.checkpoint import PrefixLock\n"
                               f"with PrefixLock({prefix!r}):\n"
                               "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc = main(["train", "--model", "fc", "--epochs", "1", "--plot", "none",
                   "--checkpoint", prefix, "--quiet"])
        err = capsys.readouterr().err
        assert rc == 1 and f"checkpoint prefix {prefix!r} is in use: process {holder.pid} is " \
                           f"training with it" in err and "give this run another --checkpoint" in err
        assert not os.path.exists(prefix + "_epoch_1.npz")
    finally:
        holder.communicate("", timeout=60)
    assert main(["train", "--model", "fc", "--epochs", "1", "--plot", "none",
                 "--checkpoint", prefix, "--quiet"]) == 0
    assert os.path.isfile(prefix + "_epoch_1.npz")


@pytest.mark.parametrize("structured", [False, True])
def test_prune_takes_the_checkpoints_of_an_arch_run(tmp_path, structured):
    """`xpnn prune` refused every checkpoint of `xpnn train --arch`: 'X has
    shape (270, 64); this model takes (N, 1, 8, 8)' (the sweep flattened
    the images of any model without an input_dim)."""
    import json
    (tmp_path / "net.json").write_text(json.dumps([
        {"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": 3,
         "padding": 1}, {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"}, {"type": "Linear", "in_features": 96, "out_features": 10}]))
    out = _xpnn("train", "--arch", "net.json", "--epochs", "1", "--checkpoint", "r",
                "--plot", "none", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _xpnn("prune", "--checkpoint", "r_epoch_1.npz", "--amounts", "0.5", "--repeat", "1",
                "--plot", "none", *(["--structured"] if structured else []), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Sequential from r_epoch_1.npz" in out.stdout and "  0.50 " in out.stdout


def test_version():
    from xpnn import __version__
    out = _xpnn("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"xpnn {__version__}"


def test_a_divergence_says_which_option_to_lower_in_one_line(tmp_path):
    """The Solver's advice is Python (solver.optim_config[...]); the command
    line's says --lr, with NumPy's overflow warnings (a screen of source
    lines) left out."""
    out = _xpnn("train", "--model", "fc", "--lr", "1e6", "--update-rule", "sgd_momentum",
                "--epochs", "2", "--quiet", "--plot", "none", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("xpnn: error: training diverged: the loss is nan at "
                                 "iteration ") and "(learning rate 1e+06); train again with " \
                                 "a lower --lr, e.g. --lr 0.002" in out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr


def test_warnings_are_one_line_without_source(tmp_path):
    out = _xpnn("train", "--augment", "crop:4", "--epochs", "1", "--quiet", "--plot", "none",
                cwd=tmp_path)
    assert out.returncode == 0
    assert out.stderr.splitlines() == [l for l in out.stderr.splitlines()
                                       if l.startswith("xpnn: warning: augment crop_pad=4")]
    assert len(out.stderr.splitlines()) == 1


def test_a_resumed_run_goes_on_saving_as_it_did(tmp_path):
    """--resume without --checkpoint once saved nothing of the new epochs and
    said nothing, and --keep-checkpoints best was not carried over: now the
    run saves under its own prefix, keeping what it kept (the earlier run's
    files weighed too); a file not named PREFIX_epoch_<n>.npz is said to
    save nothing; a missing epoch file lists those that are there."""
    import re
    import shutil
    from xpnn.checkpoint import load_npz
    out = _xpnn("train", "--model", "fc", "--epochs", "3", "--checkpoint", "runs/d",
                "--keep-checkpoints", "best", "--plot", "none", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _xpnn("train", "--resume", "runs/d_epoch_1.npz", "--epochs", "5", "--plot", "none",
                cwd=tmp_path)
    npz = lambda d: sorted(f for f in os.listdir(tmp_path / d) if f.endswith(".npz"))  # noqa
    there = npz("runs")
    assert out.returncode == 1 and "checkpoint 'runs/d_epoch_1.npz' does not exist; there " \
        f"{'is' if len(there) == 1 else 'are'} " + ", ".join(
            f"runs/{f}" for f in sorted(there, key=lambda f: int(re.findall(r"\d+", f)[0]))) \
        in out.stderr, out.stderr
    out = _xpnn("train", "--resume", "runs/d_epoch_3.npz", "--epochs", "5", "--plot", "none",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "saving runs/d_epoch_<n>.npz, keeping the last and the best epoch's" in out.stdout
    val = load_npz(str(tmp_path / "runs" / "d_epoch_5.npz"))[0]["val_acc_history"]
    best = max(range(1, 6), key=lambda e: val[e])
    assert npz("runs") == sorted({f"d_epoch_{best}.npz",
                                                            "d_epoch_5.npz"})
    shutil.copy(tmp_path / "runs" / "d_epoch_5.npz", tmp_path / "mine.npz")
    out = _xpnn("train", "--resume", "mine.npz", "--epochs", "6", "--plot", "none", "--quiet",
                cwd=tmp_path)
    assert out.returncode == 0 and "xpnn: mine.npz is not named PREFIX_epoch_<n>.npz, so the " \
        "new epochs are not saved; give --checkpoint PREFIX to save them" in out.stderr
    out = _xpnn("train", "--resume", "mine.npz", "--epochs", "6", "--plot", "none", "--quiet",
                "--checkpoint", "other/m", "--keep-checkpoints", "last", cwd=tmp_path)
    assert out.returncode == 0 and npz("other") == ["m_epoch_6.npz"]


def test_a_file_that_is_not_a_checkpoint_says_what_it_is(tmp_path):
    from xpnn.checkpoint import load_model
    (tmp_path / "net.json").write_text('[{"type": "ReLU"}]')
    for args in (["train", "--resume", "net.json"], ["prune", "--checkpoint", "net.json"]):
        out = _xpnn(*args, cwd=tmp_path)
        assert out.returncode == 1 and "'net.json' is not an .npz checkpoint: it is a JSON or " \
            "text file (an architecture file is given to xpnn train --arch)" in out.stderr
        assert "pickle" not in out.stderr
    with pytest.raises(ValueError, match="is not an .npz checkpoint: it is empty"):
        (tmp_path / "e.npz").write_bytes(b"")
        load_model(str(tmp_path / "e.npz"))


@pytest.mark.parametrize("command, args, match", [
    ("train", ["--warmup-epochs", "2"], "--warmup-epochs does not apply without --lr-schedule"),
    ("tune", ["--warmup-epochs", "2"], "--warmup-epochs does not apply without --lr-schedule"),
    ("train", ["--lr-schedule", "cosine", "--lr-decay", "0.5"],
     "--lr-decay does not apply with --lr-schedule"),
    ("train", ["--arch", "net.json", "--model", "fc"], "--model does not apply with --arch"),
    ("tune", ["--arch", "net.json", "--model", "convnet"], "--model does not apply with --arch"),
    ("train", ["--keep-checkpoints", "best"], "--keep-checkpoints does not apply without "
                                              "--checkpoint"),
    ("train", ["--data-dir", "somewhere"], "--data-dir does not apply to --dataset digits"),
    ("prune", ["--checkpoint", "x.npz", "--data-dir", "d"],
     "--data-dir does not apply to --dataset digits"),
])
def test_options_that_would_change_nothing_are_refused(command, args, match, tmp_path):
    """--warmup-epochs without a schedule, --lr-decay with one and --model
    beside --arch were silently ignored; each is refused as --hidden with
    --arch is, in one line, before anything is loaded or trained."""
    out = _xpnn(command, *args, cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.startswith(f"xpnn: error: {match}"), out.stderr
    assert len(out.stderr.splitlines()) == 1 and not os.listdir(tmp_path)


def test_a_new_run_on_another_runs_prefix_is_refused(tmp_path):
    """A second fresh run on runs/digits once left its epochs 11 and 15 beside
    the first run's epoch 20, which the README's prune then took; and the
    resume line quoted the starting learning rate, not the decayed one it
    goes on at."""
    out = _xpnn("train", "--model", "fc", "--epochs", "2", "--checkpoint", "runs/d",
                "--plot", "none", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _xpnn("train", "--model", "fc", "--epochs", "1", "--checkpoint", "runs/d",
                "--plot", "none", "--quiet", cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.strip() == (
        "xpnn: error: --checkpoint runs/d already holds another run's epochs "
        "(runs/d_epoch_1.npz, runs/d_epoch_2.npz); continue that run with --resume "
        "runs/d_epoch_2.npz, give this run another --checkpoint, or delete those files")
    out = _xpnn("train", "--resume", "runs/d_epoch_2.npz", "--epochs", "3", "--plot", "none",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "adam at learning rate 0.00162, batch 50" in out.stdout   # 2e-3 * 0.9 ** 2


def test_another_runs_files_are_named_newest_epoch_last(tmp_path):
    """The refusal's --resume once named epoch 9 of epochs 1..12: the files
    were sorted as text (epoch_12 before epoch_9)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for e in (2, 9, 12):
        (runs / f"d_epoch_{e}.npz").write_bytes(b"")
    (runs / "dx_epoch_40.npz").write_bytes(b"")        # another prefix's
    out = _xpnn("train", "--model", "fc", "--epochs", "1", "--checkpoint", "runs/d",
                "--plot", "none", "--quiet", cwd=tmp_path)
    assert out.returncode == 1 and "(runs/d_epoch_2.npz, runs/d_epoch_9.npz, " \
        "runs/d_epoch_12.npz); continue that run with --resume runs/d_epoch_12.npz" in out.stderr
