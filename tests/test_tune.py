"""xpnn tune: search spaces, a search on the digits set that survives a kill
and continues, failed and pruned trials, and workers sharing one study on a
real PostgreSQL server."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

from xpnn.tune import parse_distribution, parse_space  # noqa: E402

import pg_server  # noqa: E402

D = optuna.distributions


def _tune(*args, cwd, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "xpnn.cli", "tune", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _trial_lines(stdout):
    return [ln for ln in stdout.splitlines() if re.match(r"trial +\d+ ", ln)]


def _study(url, name):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url)


def test_search_space_text_and_json(tmp_path):
    assert parse_distribution("lr", "log:1e-4:1e-1") == D.FloatDistribution(1e-4, 0.1, log=True)
    assert parse_distribution("keep", "float:0.5:1") == D.FloatDistribution(0.5, 1.0)
    assert parse_distribution("hidden", "int:16:256:log") == D.IntDistribution(16, 256, log=True)
    assert parse_distribution("batch_size", "cat:25,50") == D.CategoricalDistribution([25, 50])
    assert parse_distribution("update_rule", "cat:adam,sgd") == \
        D.CategoricalDistribution(["adam", "sgd"])
    assert parse_distribution("reg", {"type": "log", "low": 1e-6, "high": 1e-2}) == \
        D.FloatDistribution(1e-6, 1e-2, log=True)
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"lr": "log:1e-3:1e-2", "hidden": {"type": "cat",
                                                                  "choices": [8, 16]}}))
    space = parse_space(["lr=float:0.1:0.2"], str(path))       # the command line wins
    assert space == {"lr": D.FloatDistribution(0.1, 0.2),
                     "hidden": D.CategoricalDistribution([8, 16])}
    assert set(parse_space()) == {"lr", "reg", "hidden"}       # the default coarse space


@pytest.mark.parametrize("name, spec, match", [
    ("learning_rate", "log:1e-4:1e-1", "unknown setting 'learning_rate'.*known: lr, reg"),
    ("lr", "log:0:1", "lr=.*a log scale needs LOW > 0"),
    ("lr", "log:a:1", "lr=.*'a' is not a number"),
    ("lr", "log:1:0.1", "lr=.*needs LOW <= HIGH"),
    ("lr", "uniform:1:2", "lr=.*expected log:LOW:HIGH"),
    ("hidden", "float:1:2", "hidden is an integer; write int:LOW:HIGH"),
    ("hidden", "int:0:8", "hidden must be >= 1"),
    ("update_rule", "log:1:2", "update_rule takes named choices"),
    ("keep", "float:0.5:1.5", "keep is a probability of keeping"),
    ("batch_size", "cat:", "cat needs at least one choice"),
    ("batch_size", "cat:a,b", "'a' is not an integer"),
    ("lr", 3, "expected text such as"),
])
def test_bad_search_space_is_one_line_naming_the_setting(name, spec, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_distribution(name, spec)
    assert "\n" not in str(info.value)


def test_bad_search_space_on_the_command_line(tmp_path):
    out = _tune("--param", "lr=log:0:1", "--trials", "1", cwd=tmp_path)
    assert out.returncode == 2 or out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "a log scale needs LOW > 0" in out.stderr
    out = _tune("--param", "lr", cwd=tmp_path)
    assert "expected NAME=SPEC" in out.stderr and out.returncode == 1


def test_search_on_digits_reports_saves_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'search.db'}"
    common = ["--storage", url, "--study", "s", "--epochs", "2", "--seed", "3",
              "--param", "lr=log:1e-4:3e-1", "--param", "hidden=int:8:64",
              "--model", "fc", "--out", str(tmp_path)]
    out = _tune(*common, "--trials", "7", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = _trial_lines(out.stdout)
    assert len(lines) == 7 and all("lr=" in ln and "hidden=" in ln for ln in lines)
    study = _study(url, "s")
    assert len(study.trials) == 7
    best = json.loads((tmp_path / "s-best.json").read_text())
    assert best["trial"] == study.best_trial.number and best["val_acc"] == study.best_value
    assert 0 < best["test_acc"] <= 1
    assert best["command"].startswith("xpnn train --dataset digits --model fc --lr ")
    assert "--hidden" in best["command"] and best["command"].endswith(
        f"--epochs 2 --seed {3 + best['trial']}")
    for name in ("history", "importance", "lr"):
        png = tmp_path / f"s-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # the best command repeats the trial: same seed, same run, same validation accuracy
    again = subprocess.run([sys.executable, "-m", "xpnn.cli", *best["command"].split()[1:],
                            "--plot", "none", "--quiet"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"val accuracy: {best['val_acc']:.4f}" in again.stdout
    # continuing the study runs only the trials it lacks
    out = _tune(*common, "--trials", "9", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(_trial_lines(out.stdout)) == 2
    trials = _study(url, "s").trials
    assert len(trials) == 9
    # with new settings: a seeded sampler once started over, trials 7-8 repeating 0-1
    assert all(t.params != u.params for t in trials[7:] for u in trials[:7])


def test_a_diverging_trial_is_recorded_failed_and_the_search_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path / 'nan.db'}"
    out = _tune("--storage", url, "--study", "nan", "--trials", "3", "--epochs", "1",
                "--model", "fc", "--param", "lr=cat:1e8,1e-3", "--param", "update_rule=cat:sgd",
                "--out", str(tmp_path), "--no-plots", cwd=tmp_path)
    study = _study(url, "nan")
    states = [t.state.name for t in study.trials]
    assert len(states) == 3, out.stdout + out.stderr
    for t in study.trials:
        if t.params["lr"] == 1e8:
            assert t.state.name == "FAIL" and "training diverged" in t.user_attrs["stopped"]
        else:
            assert t.state.name == "COMPLETE"
    assert ("COMPLETE" in states) == (out.returncode == 0)


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_a_killed_workers_trial_is_failed_and_run_again(storage, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'kill.db'}" if storage == "sqlite" else \
        request.getfixturevalue("postgres")
    common = ["--storage", url, "--study", "k", "--model", "fc", "--param", "hidden=int:8:16",
              "--heartbeat", "1", "--out", str(tmp_path), "--no-plots"]
    proc = subprocess.Popen([sys.executable, "-m", "xpnn.cli", "tune", *common, "--trials", "1",
                             "--epochs", "400"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                trials = _study(url, "k").trials
            except (KeyError, Exception):
                trials = []
            if trials and trials[0].state.name == "RUNNING":
                break
            time.sleep(0.3)
        else:
            pytest.fail("the first worker never started a trial")
        time.sleep(1.5)  # a heartbeat or two recorded
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _study(url, "k").trials[0].state.name == "RUNNING"  # nobody marked it yet
    time.sleep(3.5)  # past the grace period (3 heartbeats)
    out = _tune(*common, "--trials", "2", "--epochs", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trials = _study(url, "k").trials
    assert trials[0].state.name == "FAIL"
    assert "no heartbeat" in out.stdout or "failed" in out.stdout
    retried = [t for t in trials[1:] if t.system_attrs.get("failed_trial") == 0 or
               t.system_attrs.get("stale_trial") == 0 or
               t.params == trials[0].params]
    assert retried and retried[0].state.name == "COMPLETE"


@pytest.fixture(scope="module")
def postgres_server():
    reason = pg_server.missing_reason()
    if reason:
        pytest.skip(reason)
    server = pg_server.Server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres(postgres_server):
    return postgres_server.url


def test_two_workers_share_one_postgres_study(postgres, tmp_path):
    """Two ``xpnn tune`` processes on one study in a real PostgreSQL: the
    study ends with the trials asked for, the workers' counts add up to it,
    no trial number is given twice."""
    common = ["--storage", postgres, "--study", "shared", "--trials", "8", "--epochs", "1",
              "--model", "fc", "--param", "hidden=int:8:32", "--out", str(tmp_path),
              "--no-plots", "--no-report"]
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "xpnn.cli", "tune", *common,
                               "--seed", str(s)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
             for s in (0, 100)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ran = [int(re.search(r"this worker ran (\d+) trials", o).group(1)) for o, _ in outs]
    study = _study(postgres, "shared")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == sum(ran) and sorted(numbers) == list(range(len(numbers)))
    assert 8 <= len(numbers) <= 9 and all(r >= 1 for r in ran)   # both worked


# `xpnn tune ARGS` that opens its study at the instant argv[1] (the data
# loaded and the model checked before it, as each worker of a job array
# does at about the same time)
_AT_ONCE = """
import sys, time
import xpnn.tune
from xpnn.cli import main
opened = xpnn.tune.open_study
def at_the_instant(*args, **kwargs):
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    return opened(*args, **kwargs)
xpnn.tune.open_study = at_the_instant
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("round_", [1, 2])
def test_workers_started_together_on_a_new_database(postgres_server, tmp_path, round_):
    """A cluster job array: six workers start at one instant on a database
    that has no Optuna tables yet (created for this test). Every worker
    must run, and the study holds the trials asked. Before the tables were
    created under a lock, two of three such starts had a worker die of a
    unique violation while all created the tables (two rounds, two fresh
    databases)."""
    url = postgres_server.new_database(f"fresh_{round_}_" + os.urandom(4).hex())
    common = ["tune", "--storage", url, "--study", "s", "--trials", "6", "--epochs", "1",
              "--model", "fc", "--param", "hidden=int:8:16", "--out", str(tmp_path),
              "--no-plots", "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    start = time.time() + 15  # every process has imported by then, even on a busy machine
    procs = [subprocess.Popen([sys.executable, "-c", _AT_ONCE, repr(start), *common,
                               "--seed", str(100 * w)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for w in range(6)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-2000:] for _, err in outs]
    assert 6 <= len(_study(url, "s").trials) <= 11


def test_readme_tune_section_runs_as_written(tmp_path):
    """The README's commands, verbatim: the first meets its promise (30
    trials, >= 97% validation accuracy, at least a third pruned early), the
    second continues the same study to 40."""
    import shlex
    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md"),
                encoding="utf-8").read()
    body = text.split("## `xpnn tune`", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", body, re.S)[0]
    commands = [shlex.split(ln) for ln in block.strip().splitlines()]
    assert [c[:2] for c in commands] == [["xpnn", "tune"]] * 2
    for cmd in commands:
        out = subprocess.run([sys.executable, "-m", "xpnn.cli", *cmd[1:]], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
    study = _study(f"sqlite:///{tmp_path / 'xpnn_tune.db'}", "xpnn-digits-convnet")
    first = study.trials[:30]
    assert len(study.trials) == 40
    assert max(t.value for t in first if t.value is not None) >= 0.97
    assert sum(t.state.name == "PRUNED" for t in first) >= 10
    assert {"update_rule"} <= set(study.trials[-1].params)


def test_search_from_python(tmp_path, monkeypatch, capsys):
    from xpnn import tune
    monkeypatch.chdir(tmp_path)
    best = tune.search(trials=4, epochs=1, params={"hidden": "int:8:16"}, model="fc",
                       storage=f"sqlite:///{tmp_path / 'py.db'}", study="py", no_plots=True,
                       out=str(tmp_path))
    assert best["trials"] == 4 and set(best["params"]) == {"hidden"} and 0 < best["val_acc"] <= 1
    assert json.loads((tmp_path / "py-best.json").read_text()) == best
    assert "trial   3 " in capsys.readouterr().out
    with pytest.raises(ValueError, match="--model must be one of convnet, .*; got 'resnet'"):
        tune.search(trials=1, model="resnet")
    with pytest.raises(ValueError, match="unknown option depth; xpnn.tune.search takes "):
        tune.search(trials=1, depth=3)
    with pytest.raises(ValueError, match="--workers must be an integer >= 1, got 0"):
        tune.search(trials=1, workers=0)
    with pytest.raises(ValueError, match="unknown setting 'depth'"):
        tune.search(trials=1, params={"depth": "int:1:3"})


def test_workers_option_runs_local_processes_on_the_default_file(tmp_path):
    out = _tune("--trials", "6", "--epochs", "1", "--model", "fc", "--workers", "2",
                "--param", "hidden=int:8:16", "--no-plots", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    threads = max(1, (os.cpu_count() or 1) // 2)
    m = re.search(rf"2 workers \({threads} BLAS threads? each\) ran (\d+) trials", out.stdout)
    study = _study(f"sqlite:///{tmp_path / 'xpnn_tune.db'}", "xpnn-digits-fc")
    assert m and int(m.group(1)) == len(study.trials) >= 6
    assert len(_trial_lines(out.stdout)) == len(study.trials)   # every worker's lines shown
    assert "best: trial" in out.stdout


def test_the_clock_stops_a_search(tmp_path):
    """--timeout ends a search that asked for more trials than it can run.
    What is asserted holds on any machine, however busy: the study holds
    fewer trials than asked, every one finished, and the worker reports at
    least the timeout's seconds (a search that ignored the clock would run
    100000 trials, far past the subprocess limit). No count of trials per
    second is asserted."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    out = _tune("--storage", url, "--study", "t", "--trials", "100000", "--epochs", "1",
                "--model", "fc", "--timeout", "2", "--no-plots", "--out", str(tmp_path),
                cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    trials = _study(url, "t").trials
    assert 1 <= len(trials) < 100000
    assert all(tr.state.name == "COMPLETE" for tr in trials)
    took = float(re.search(r"this worker ran \d+ trials in ([\d.]+) s", out.stdout).group(1))
    assert took >= 2.0


def test_the_halving_pruner_stops_trials(tmp_path):
    """--pruner halving: of 9 seeded trials, those below the best third at
    epoch 1 stop there (a fixed trial count, so the verdict does not depend
    on the machine's speed)."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    out = _tune("--storage", url, "--study", "t", "--trials", "9", "--epochs", "3",
                "--model", "fc", "--pruner", "halving", "--no-plots", "--out", str(tmp_path),
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trials = _study(url, "t").trials
    assert len(trials) == 9
    pruned = [tr for tr in trials if tr.state.name == "PRUNED"]
    assert pruned and all(max(tr.intermediate_values) < 3 for tr in pruned)
    assert any(tr.state.name == "COMPLETE" for tr in trials)


def test_unreadable_space_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read search space '.*nope.json': No such file"):
        parse_space(path=str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{lr: 1")
    with pytest.raises(ValueError, match=r"search space '.*bad.json' is not JSON"):
        parse_space(path=str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected an object of setting: spec"):
        parse_space(path=str(bad))


def test_storage_errors_never_show_the_password():
    from xpnn.tune import open_study
    with pytest.raises(RuntimeError) as info:
        open_study("postgresql://xpnn:s3cret@127.0.0.1:1/db", "x")   # nothing listens on port 1
    assert "s3cret" not in str(info.value) and "cannot open storage" in str(info.value)
    assert "'postgresql://xpnn:***@127.0.0.1:1/db'" in str(info.value)   # as given


def test_a_study_continued_with_other_epochs_is_refused(tmp_path):
    """`--trials 6 --epochs 1`, then `--trials 13 --epochs 3` once ranked
    1- and 3-epoch trials together and printed --epochs 3 as the repeat of
    a 1-epoch trial."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    common = ["--storage", url, "--study", "e", "--model", "fc", "--param", "lr=log:1e-3:1e-2",
              "--out", str(tmp_path), "--no-plots"]
    assert _tune(*common, "--trials", "2", "--epochs", "1", cwd=tmp_path).returncode == 0
    out = _tune(*common, "--trials", "4", "--epochs", "3", cwd=tmp_path)
    assert out.returncode == 1
    assert "study 'e' was run with other fixed settings (--epochs 1 then, 3 now)" in out.stderr
    out = _tune(*common, "--trials", "4", "--epochs", "1", "--hidden", "12", cwd=tmp_path)
    assert out.returncode == 1 and "--hidden None then, 12 now" in out.stderr
    out = _tune(*common, "--trials", "3", "--epochs", "1", "--param", "hidden=int:8:16",
                cwd=tmp_path)       # a setting searched now may have been fixed before
    assert out.returncode == 0, out.stderr
    best = json.loads((tmp_path / "e-best.json").read_text())
    assert best["epochs"] == 1 and "--epochs 1 " in best["command"]


def test_the_table_shows_settings_added_later_and_losers_files_go(tmp_path):
    """A continued study that searches one more setting once printed the
    first run's columns only; each trial's model file stayed (one .npz per
    trial)."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    common = ["--storage", url, "--study", "t", "--model", "fc", "--epochs", "1",
              "--param", "lr=log:1e-3:1e-2", "--out", str(tmp_path), "--no-plots"]
    assert _tune(*common, "--trials", "3", cwd=tmp_path).returncode == 0
    out = _tune(*common, "--param", "hidden=int:8:16", "--trials", "5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header = next(ln for ln in out.stdout.splitlines() if ln.split()[:3] == ["trial", "val",
                                                                                "acc"])
    assert header.split() == ["trial", "val", "acc", "lr", "hidden"]
    left = sorted(p.name for p in tmp_path.glob("t-trial-*.npz"))
    best = json.loads((tmp_path / "t-best.json").read_text())
    assert left == [f"t-trial-{best['trial']}.npz"]


def test_the_repeat_command_of_a_two_worker_search_reproduces_its_trial(tmp_path):
    """With --workers 2 each worker computes with half the BLAS threads, and
    float32 results depend on that: the printed command once gave 0.9111 for
    a trial recorded at 0.9037. It now carries the trial's thread count
    where that differs from a plain run's, and repeats the trial exactly."""
    out = _tune("--storage", f"sqlite:///{tmp_path / 'w.db'}", "--study", "w", "--model", "fc",
                "--trials", "4", "--epochs", "2", "--workers", "2", "--param",
                "lr=log:1e-3:1e-2", "--out", str(tmp_path), "--no-plots", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    best = json.loads((tmp_path / "w-best.json").read_text())
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // 2)
    assert best["blas_threads"] == threads
    prefix = f"OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} " \
        if threads != cores else ""
    assert best["command"].startswith(prefix + "xpnn train ")
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    again = subprocess.run(["bash", "-c", best["command"] + " --plot none --quiet"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PATH": path})
    assert again.returncode == 0, again.stderr
    assert f"val accuracy: {best['val_acc']:.4f}" in again.stdout


def test_the_study_plots_say_what_they_show(tmp_path):
    """The plots kept Optuna's default titles and axis names, and the first
    trial's marker was invisible: each now names the study and its axes,
    and shows every complete trial."""
    import matplotlib.image
    from xpnn.tune import plot_study
    url = f"sqlite:///{tmp_path / 'p.db'}"
    out = _tune("--storage", url, "--study", "p", "--trials", "6", "--epochs", "2",
                "--model", "fc", "--param", "lr=log:1e-3:1e-1", "--param", "hidden=int:8:32",
                "--out", str(tmp_path), "--no-plots", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import matplotlib.pyplot as plt
    figures = []
    real_close = plt.close
    plt.close = lambda fig=None: figures.append(fig)   # keep them to look at
    try:
        paths = plot_study(_study(url, "p"), str(tmp_path))
    finally:
        plt.close = real_close
    assert [os.path.basename(p) for p in paths] == ["p-history.png", "p-lr.png",
                                                    "p-importance.png"]
    history, lr, importance = (f.axes[0] for f in figures)
    assert history.get_title() == "p: validation accuracy of each trial"
    assert (history.get_xlabel(), history.get_ylabel()) == ("trial", "validation accuracy")
    complete = [t for t in _study(url, "p").trials if t.state.name == "COMPLETE"]
    dots = history.lines[0]
    assert list(dots.get_xdata()) == [t.number for t in complete]
    assert dots.get_markersize() >= 5 and dots.get_alpha() in (None, 1.0)
    assert lr.get_xlabel() == "learning rate (lr)" and lr.get_xscale() == "log"
    # xpnn's own bars, in the style of the others: one title (Optuna's once sat
    # under it), no "Objective Value" legend, a bar per searched setting
    assert importance.get_title() == "p: how much each setting mattered"
    assert importance.figure._suptitle is None and importance.get_legend() is None
    assert sorted(t.get_text() for t in importance.get_yticklabels()) == ["hidden", "lr"]
    widths = [b.get_width() for b in importance.patches]
    assert len(widths) == 2 and abs(sum(widths) - 1) < 1e-6 and widths == sorted(widths)
    for p in paths:
        assert matplotlib.image.imread(p).shape[1] >= 500


def test_ctrl_c_says_how_to_continue_and_the_cut_trial_does_not_count(tmp_path):
    """Ctrl-C in a search once dumped Optuna's 30-line traceback of the trial
    it cut short, with no word of how to go on; that trial then counted
    towards --trials. Now one line says where the study is and that the same
    command continues it, which runs exactly the trials it lacks."""
    import signal
    from optuna.trial import TrialState
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["--storage", url, "--study", "c", "--epochs", "6", "--model", "fc", "--out",
            str(tmp_path), "--no-plots"]
    proc = subprocess.Popen([sys.executable, "-m", "xpnn.cli", "tune", *args, "--trials", "40"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for ln in proc.stdout:
        if ln.startswith("trial   0 "):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert re.fullmatch(r"xpnn: interrupted; study 'c' in sqlite:///\S+c\.db keeps its \d+ "
                        r"finished trials? \(one cut short does not count\); the same xpnn "
                        r"tune command continues it, running only the trials it lacks\n",
                        err), err
    out = _tune(*args, "--trials", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trials = _study(url, "c").trials
    # what counts towards --trials: every trial but the one cut short, a
    # diverged one too (failed with its reason: which settings are drawn,
    # and so whether one diverges, depends on where the Ctrl-C landed)
    cut = [t for t in trials if t.user_attrs.get("stopped") == "interrupted (Ctrl-C)"]
    counted = [t for t in trials if t not in cut]
    assert len(counted) == 3 and len(cut) <= 1 and len(trials) == len(counted) + len(cut)
    for t in counted:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED) or \
            str(t.user_attrs.get("stopped", "")).startswith("failed: "), (t.state, t.user_attrs)
