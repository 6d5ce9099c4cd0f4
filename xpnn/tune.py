"""Hyperparameter search over ``xpnn train``'s settings, with Optuna.

Optuna samples the settings (TPE), stops hopeless trials early (a median or
successive-halving pruner fed each epoch's validation accuracy) and keeps the
study in a storage that any number of processes share: a local SQLite file
by default, a PostgreSQL URL for many machines. xpnn only turns a trial into
a Solver run.

A search space maps setting names (the long options of ``xpnn train``:
``lr``, ``reg``, ``weight_scale``, ``batch_size``, ``lr_decay``,
``update_rule``, ``hidden``, ``filters``, ``keep``, ``arch``) to a
distribution, written ``KIND:ARGS``:

    log:LOW:HIGH        log-uniform float        lr=log:1e-4:1e-1
    float:LOW:HIGH      uniform float            keep=float:0.5:1
    int:LOW:HIGH[:log]  integer (log-scaled)     hidden=int:16:256:log
    cat:A,B,...         one of the choices       update_rule=cat:adam,sgd_momentum

(in a JSON file: ``{"lr": "log:1e-4:1e-1", ...}`` or
``{"lr": {"type": "log", "low": 1e-4, "high": 0.1}, ...}``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

from . import backend
from .recipes import DEFAULTS, Settings, build_model, load_data, make_solver

__all__ = ["search", "Search", "run_search", "parse_space", "parse_distribution", "SETTINGS",
           "open_study", "run_worker", "report", "train_command"]

#: setting -> (type its values take, what it is); the names are xpnn train's options
SETTINGS = {
    "lr": (float, "learning rate"),
    "reg": (float, "L2 regularisation strength"),
    "weight_scale": (float, "std of the initial weights"),
    "batch_size": (int, "minibatch size"),
    "lr_decay": (float, "learning-rate factor per epoch"),
    "update_rule": (str, "update rule"),
    "hidden": (int, "width of each hidden affine layer"),
    "filters": (int, "filters of the first conv layer (ConvNet: the second has twice)"),
    "keep": (float, "dropout keep probability"),
    "arch": (str, "an architecture JSON file (xpnn train --arch)"),
}

DEFAULT_SPACE = {"lr": "log:1e-4:3e-1", "reg": "log:1e-7:1e-1", "hidden": "int:16:256:log"}


@dataclasses.dataclass(frozen=True)
class Search:
    """What a search is, apart from the training settings it starts from
    (each field is one of ``xpnn tune``'s own options)."""

    trials: int = 30
    epochs: int = 3
    param: tuple = ()
    space: str | None = None
    timeout: float | None = None
    seed: int = 0
    study: str | None = None
    storage: str = "sqlite:///xpnn_tune.db"
    workers: int = 1
    pruner: str = "median"
    heartbeat: int = 10
    out: str = "."
    no_plots: bool = False
    no_report: bool = False

    def __post_init__(self):
        from .layers._util import check_int, check_number
        for name in ("trials", "epochs", "workers", "heartbeat"):
            check_int(f"--{name}", getattr(self, name), 1)
        if self.timeout is not None:
            check_number("--timeout", self.timeout, 0.0, low_inclusive=False)
        check_int("--seed", self.seed, -2 ** 63, 2 ** 63)
        if self.pruner not in ("median", "halving", "none"):
            raise ValueError(f"--pruner must be one of median, halving, none; got "
                             f"{self.pruner!r}")
        object.__setattr__(self, "param", tuple(self.param or ()))

    @classmethod
    def from_options(cls, options):
        """The search options among ``options`` (a dict or an argparse
        namespace); the rest default."""
        options = options if isinstance(options, dict) else vars(options)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


def search(trials=30, epochs=3, params=None, **options):
    """``xpnn tune`` from Python: ``params`` maps settings to specs
    (``{"lr": "log:1e-4:1e-1"}``); ``options`` are the command's long options
    with underscores (``model="fc"``, ``storage="sqlite:///s.db"``,
    ``study="s"``, ``no_plots=True``, ``batch_size=100``). Returns the best
    trial's summary (what ``<study>-best.json`` holds) or None. A bad option
    or search space is a ValueError."""
    known = {f.name for f in dataclasses.fields(Search)} | \
        {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(options) - known - {"param"})
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)}; xpnn.tune.search takes "
                         f"{', '.join(sorted(known - {'param'}))}")
    specs = [f"{name}={spec}" for name, spec in (params or {}).items()]
    run = Search.from_options({**options, "trials": trials, "epochs": epochs,
                               "param": tuple(options.get("param", ())) + tuple(specs)})
    return run_search(run, Settings.from_options(options))


def run_search(run: Search, settings: Settings):
    """A search from its options and the settings it starts from (``xpnn
    tune``): trials by this process and ``run.workers - 1`` more, then the
    report. The best trial's summary (None when no trial completed or this
    is a ``no_report`` worker)."""
    from .optim import UPDATE_RULES
    space = parse_space(run.param, run.space)
    for name, dist in space.items():  # choices checked now, not as failed trials
        for c in getattr(dist, "choices", ()):
            if name == "update_rule" and c not in UPDATE_RULES:
                raise ValueError(f"search space update_rule: unknown rule {c!r}; known: "
                                 f"{', '.join(sorted(UPDATE_RULES))}")
            if name == "arch" and not os.path.isfile(c):
                raise ValueError(f"search space arch: no architecture file {c!r}")
    if settings.backend:
        backend.set_backend(settings.backend)
    backend.get_backend()
    name = run.study or f"xpnn-{settings.dataset}-{'arch' if settings.arch else settings.model}"
    os.makedirs(run.out, exist_ok=True)
    data = load_data(settings)
    build_model(settings, data)  # a setting that does not fit the model fails now, once
    study = open_study(run.storage, name, sampler_seed=run.seed, pruner=run.pruner,
                       heartbeat=run.heartbeat)
    _check_fixed_settings(study, run, settings, space)
    t0 = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // run.workers)
    others = _start_workers(run, settings, threads) if run.workers > 1 else None

    def line(trial):
        print(trial_line(trial), flush=True)
    try:
        # this process is one of the workers, its BLAS threads limited like theirs
        from contextlib import nullcontext
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads) if run.workers > 1 else nullcontext():
            ran = run_worker(study, space, settings, data, run.trials, run.epochs,
                             timeout=run.timeout, seed=run.seed, out_dir=run.out, on_trial=line)
        if others:
            ran_others = _join_workers(*others)
    except (KeyboardInterrupt, SearchInterrupted):
        if others:
            _stop_workers(*others)
        raise SearchInterrupted(_how_to_continue(study, run)) from None
    if others:
        print(f"{run.workers} workers ({threads} BLAS thread{'s' * (threads > 1)} each) ran "
              f"{ran + ran_others} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    else:
        print(f"this worker ran {ran} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    if run.no_report:
        return None
    return report(study, settings, data, run.epochs, out_dir=run.out, plots=not run.no_plots)


#: settings that may differ between the runs of one study (where the data
#: is, which device computes, what is kept on disk)
_FREE_SETTINGS = ("data_dir", "backend", "checkpoint", "keep_checkpoints")


def _check_fixed_settings(study, run, settings, space):
    """The first run of a study records what it holds fixed (the epochs per
    trial and every setting not searched); a later run that changes one of
    them, once some trial has a result, would rank trials of different runs
    together, so it is refused, naming the settings. A setting searched now
    may have been fixed before (coarse to fine)."""
    fixed = {"epochs": run.epochs, **{k: v for k, v in dataclasses.asdict(settings).items()
                                      if k not in space and k not in _FREE_SETTINGS}}
    fixed = json.loads(json.dumps(fixed, default=str))
    before = study.user_attrs.get("fixed")
    if before is None:
        study.set_user_attr("fixed", fixed)
        return
    differ = sorted(k for k in fixed if k in before and fixed[k] != before[k])
    if not differ:
        return
    from optuna.trial import TrialState
    if not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               for t in study.get_trials(deepcopy=False)):
        study.set_user_attr("fixed", fixed)  # nothing to rank yet (a killed first trial)
    else:
        said = ", ".join(f"--{k.replace('_', '-')} {before[k]!r} then, {fixed[k]!r} now"
                         for k in differ)
        raise ValueError(
            f"study {study.study_name!r} was run with other fixed settings ({said}); its "
            f"trials would be ranked with these. Continue it with the same settings, search "
            f"the setting (--param), or start a new study (--study NAME)")


def _blas_threads():
    """The BLAS threads this process computes with (what a float32 result
    depends on), or None when no BLAS is seen."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _default_threads():
    """The BLAS threads a plain ``xpnn train`` gets here (one per usable core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------- local workers
def _start_workers(run, settings, threads):
    """Start ``run.workers - 1`` more processes on the same study (``python
    -m xpnn.tune`` with this search as JSON), each with ``threads`` BLAS
    threads and its own sampler seed; their trial lines pass through."""
    import subprocess
    import threading
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    procs = []
    for w in range(run.workers - 1):
        mine = dataclasses.replace(run, workers=1, no_report=True, seed=run.seed + 1000 * (w + 1))
        job = json.dumps({"search": dataclasses.asdict(mine),
                          "settings": dataclasses.asdict(settings)})
        procs.append(subprocess.Popen([sys.executable, "-m", "xpnn.tune", job], env=env,
                                      stdout=subprocess.PIPE, text=True))
    counts = [0] * len(procs)

    def relay(i, proc):
        for ln in proc.stdout:
            if ln.startswith("this worker ran "):
                counts[i] = int(ln.split()[3])
            else:
                print(ln, end="", flush=True)
    relays = [threading.Thread(target=relay, args=(i, p), daemon=True)
              for i, p in enumerate(procs)]
    for r in relays:
        r.start()
    return procs, relays, counts


class SearchInterrupted(Exception):
    """Ctrl-C in a search; the message says how to continue it."""


def _how_to_continue(study, run):
    """What an interrupted search says: what the study holds, where, and that
    the same command continues it."""
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    return (f"interrupted; study {study.study_name!r} in {_without_password(run.storage)} keeps "
            f"its {done} finished trial{'s' * (done != 1)} (one cut short does not count); "
            f"the same xpnn tune command continues it, running only the trials it lacks")


def _stop_workers(procs, relays, counts):
    """Stop the other workers (this one was interrupted)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        p.wait()


def _join_workers(procs, relays, counts):
    """Wait for the workers (stop them if this one is interrupted); the
    number of trials they ran."""
    try:
        for p in procs:
            p.wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
    for r in relays:
        r.join(timeout=10)
    if any(p.returncode in (130, -2) for p in procs):   # Ctrl-C reached them
        raise SearchInterrupted()
    bad = [p.returncode for p in procs if p.returncode]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(procs)} other tune workers failed (exit codes "
                           f"{bad}); the study keeps every trial they finished")
    return sum(counts)


def _worker_main(argv):
    """``python -m xpnn.tune JOB``: one worker of a search, JOB the JSON that
    :func:`_start_workers` writes."""
    job = json.loads(argv[0])
    try:
        run_search(Search(**job["search"]), Settings(**job["settings"]))
    except (KeyboardInterrupt, SearchInterrupted):
        return 130
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"xpnn tune worker: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _num(text, what):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def parse_distribution(name, spec):
    """An Optuna distribution for setting ``name`` from ``KIND:ARGS`` text
    or a JSON object; a ValueError naming the setting otherwise."""
    import optuna.distributions as D
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r} in the search space; known: "
                         f"{', '.join(SETTINGS)}")
    kind_of = SETTINGS[name][0]
    where = f"search space {name}={spec!r}"
    if isinstance(spec, dict):
        kind = spec.get("type")
        if kind == "cat":
            parts = [str(c) for c in spec.get("choices", [])]
        else:
            parts = [str(spec.get("low", "")), str(spec.get("high", ""))] + \
                (["log"] if spec.get("log") else [])
    elif isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        parts = rest.split(",") if kind == "cat" else rest.split(":")
    else:
        raise ValueError(f"{where}: expected text such as 'log:1e-4:1e-1' or an object with "
                         "\"type\"")
    if kind == "cat":
        choices = [p.strip() for p in parts if p.strip()]
        if not choices:
            raise ValueError(f"{where}: cat needs at least one choice, as cat:A,B")
        if kind_of is not str:
            choices = [_num(c, where) if kind_of is float else _int(c, where)
                       for c in choices]
        return D.CategoricalDistribution(choices)
    if kind_of is str:
        raise ValueError(f"{where}: {name} takes named choices; write cat:A,B,...")
    if kind not in ("log", "float", "int") or len(parts) not in (2, 3) or \
            (len(parts) == 3 and (kind != "int" or parts[2] != "log")):
        raise ValueError(f"{where}: expected log:LOW:HIGH, float:LOW:HIGH, int:LOW:HIGH[:log] "
                         "or cat:A,B,...")
    if kind == "int" or kind_of is int:
        if kind != "int":
            raise ValueError(f"{where}: {name} is an integer; write int:LOW:HIGH[:log]")
        low, high = _int(parts[0], where), _int(parts[1], where)
    else:
        low, high = _num(parts[0], where), _num(parts[1], where)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{where}: needs LOW <= HIGH, both finite")
    log = kind == "log" or len(parts) == 3
    if log and low <= 0:
        raise ValueError(f"{where}: a log scale needs LOW > 0")
    if low < 0 or (kind_of is int and low < 1):  # sizes: batch_size, hidden, filters
        raise ValueError(f"{where}: {name} must be {'>= 1' if kind == 'int' else '>= 0'}")
    if name == "keep" and not (0 < low and high <= 1):
        raise ValueError(f"{where}: keep is a probability of keeping a unit, in (0, 1]")
    if kind == "int":
        return D.IntDistribution(low, high, log=log)
    return D.FloatDistribution(low, high, log=log)


def _int(text, where):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an integer") from None


def parse_space(items=None, path=None):
    """{setting: distribution} from ``NAME=SPEC`` strings and/or a JSON file
    (the strings win); :data:`DEFAULT_SPACE` when both are empty."""
    raw = {}
    if path:
        from ._json import read_json
        loaded = read_json(path, "search space")
        if not isinstance(loaded, dict):
            raise ValueError(f"search space {path!r}: expected an object of setting: spec")
        raw.update(loaded)
    for item in items or []:
        name, eq, spec = item.partition("=")
        if not eq:
            raise ValueError(f"--param {item!r}: expected NAME=SPEC, as lr=log:1e-4:1e-1")
        raw[name.strip()] = spec.strip()
    return {k: parse_distribution(k, v) for k, v in (raw or DEFAULT_SPACE).items()}


# ----------------------------------------------------------------- the study
def open_study(storage, study_name, direction="maximize", sampler_seed=None, pruner="median",
               heartbeat=10):
    """Create or load ``study_name`` in ``storage`` (a URL; ``sqlite:///``
    files are created). Trials of a killed worker are failed once their
    heartbeat is ``3 * heartbeat`` seconds old, and run again."""
    import warnings
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import logging
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _QuietInterrupts) for f in handler.filters):
            handler.addFilter(_QuietInterrupts())
    # the heartbeat and the retry of a killed worker's trial are marked experimental
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    kwargs = {"heartbeat_interval": int(heartbeat), "grace_period": 3 * int(heartbeat)}
    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
        kwargs["heartbeat_stale_trial_callback"] = \
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    else:  # Optuna 4
        kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=1)
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    shown = _without_password(storage)  # what messages quote: the URL as given, no password
    if storage.startswith("postgresql://"):  # name the driver xpnn[postgres] installs
        storage = "postgresql+psycopg://" + storage[len("postgresql://"):]
    try:
        with _schema_lock(storage):  # workers started together create the tables once
            store = optuna.storages.RDBStorage(storage, engine_kwargs=engine, **kwargs)
    except ImportError as exc:
        raise RuntimeError(f"storage {shown!r} needs a database driver that is not "
                           f"installed ({exc}); for PostgreSQL: pip install 'xpnn[postgres]'"
                           ) from None
    except Exception as exc:  # SQLAlchemy's connection and URL errors
        detail = str(exc).splitlines()[0] if str(exc) else ""
        for secret in {storage, storage.replace("postgresql+psycopg://", "postgresql://")}:
            detail = detail.replace(secret, shown)  # a driver may quote the URL back
        raise RuntimeError(f"cannot open storage {shown!r}: {type(exc).__name__}: "
                           f"{detail}") from None
    if pruner == "median":
        p = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    elif pruner == "halving":
        p = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    elif pruner == "none":
        p = optuna.pruners.NopPruner()
    else:
        raise ValueError(f"pruner must be median, halving or none, got {pruner!r}")
    study = optuna.create_study(storage=store, study_name=study_name, direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                                pruner=p, load_if_exists=True)
    held = len(study.trials)
    if held and sampler_seed is not None:
        # a seeded sampler starts its random draws over in every process: a
        # continued study would repeat the settings of its first trials, so
        # it draws from a seed of its own, fixed by how many trials it holds
        study.sampler = optuna.samplers.TPESampler(
            seed=(int(sampler_seed) + 7919 * held) % 2 ** 32)
    return study


#: the PostgreSQL advisory lock that serialises creating Optuna's tables
_SCHEMA_LOCK = 0x78706E6E  # "xpnn"


@contextlib.contextmanager
def _schema_lock(url):
    """Hold a PostgreSQL session-level advisory lock while Optuna creates or
    checks its tables: two workers that start at the same moment on a new
    database would both run CREATE TABLE and the second would die of a
    unique violation in PostgreSQL's catalog. SQLite serialises writers on
    its own; other databases pass through."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                             {"k": _SCHEMA_LOCK})
    finally:
        engine.dispose()


def _without_password(url):
    """``url`` with any password replaced by ***, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: nothing to hide in it
        return url


def _counted(study):
    """Trials that count towards --trials: running and finished ones (not a
    killed worker's trial queued to run again)."""
    from optuna.trial import TrialState
    return sum(t.state != TrialState.WAITING and not _cut_short(t)
               for t in study.get_trials(deepcopy=False))


def _cut_short(trial):
    """A trial stopped by Ctrl-C (failed, but not for its settings): it does
    not count towards --trials, so a continued search runs one more."""
    return trial.user_attrs.get("stopped") == _CUT_SHORT


_CUT_SHORT = "interrupted (Ctrl-C)"


class _QuietInterrupts:
    """A logging filter for Optuna's handler: a trial failed by Ctrl-C is not
    logged with its traceback (the search says how to continue instead)."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt) or "KeyboardInterrupt()" in str(record.msg):
            self.dropping = True
            return False
        if getattr(self, "dropping", False) and "failed with value None" in str(record.msg):
            self.dropping = False
            return False
        return True


def run_worker(study, space, settings, data, n_trials, epochs, timeout=None, seed=0,
               out_dir=".", on_trial=None):
    """Run trials until the study holds ``n_trials`` (a killed or resumed
    search continues where it stopped) or ``timeout`` seconds pass. Each trial
    trains ``epochs`` epochs through the Solver with the sampled settings in
    place of those of ``settings`` (:class:`xpnn.recipes.Settings`), reports
    validation accuracy per epoch, and is pruned when hopeless; one that
    diverges is recorded as failed with its reason. Returns the number of
    trials this worker ran."""
    import optuna
    from .checkpoint import save_model
    ran = [0]
    threads = _blas_threads()

    started = []

    def objective(trial):
        started.append(trial.number)
        mine = settings.replace(**{k: _suggest(trial, k, d) for k, d in space.items()})
        trial_seed = (seed + trial.number) % 2**32
        trial.set_user_attr("seed", trial_seed)
        trial.set_user_attr("epochs", epochs)
        if threads is not None:
            trial.set_user_attr("blas_threads", threads)
        np.random.seed(trial_seed)
        model = build_model(mine, data)

        def after_epoch(solver):
            acc = solver.val_acc_history[-1]
            trial.report(acc, solver.epoch)
            if solver.epoch < epochs and trial.should_prune():
                trial.set_user_attr("stopped", f"pruned at epoch {solver.epoch}")
                raise optuna.TrialPruned(f"val acc {acc:.4f} at epoch {solver.epoch}")

        solver = make_solver(mine, data, model, epochs, verbose=False,
                             epoch_callback=after_epoch)
        try:
            solver.train()
        except FloatingPointError as exc:
            trial.set_user_attr("stopped", f"failed: {exc}")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("stopped", _CUT_SHORT)
            raise
        trial.set_user_attr("val_acc_history", [round(v, 6) for v in solver.val_acc_history])
        path = os.path.join(out_dir, f"{study.study_name}-trial-{trial.number}.npz")
        save_model(model, path)  # the trial's best params, to test the chosen one once
        trial.set_user_attr("model_file", os.path.abspath(path))
        return solver.best_val_acc

    def count(_study, trial):
        ran[0] += 1
        _keep_the_best_model_file(study)
        if on_trial:
            on_trial(trial)
        if _counted(study) >= n_trials:
            study.stop()

    if _counted(study) < n_trials:
        try:
            study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[count],
                           catch=(FloatingPointError,), gc_after_trial=False)
        except KeyboardInterrupt:
            _close_cut_trials(study, started)
            raise
    return ran[0]


def _close_cut_trials(study, numbers):
    """Ctrl-C can land outside the objective (while Optuna records a trial),
    leaving this worker's trial RUNNING, as if still training: each of
    ``numbers`` still running is failed as cut short, so it does not count."""
    from optuna.trial import TrialState
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in numbers:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "stopped", _CUT_SHORT)
                study.tell(t.number, state=TrialState.FAIL)
            except Exception:   # finished meanwhile, or the storage is gone: left as it is
                pass


def _keep_the_best_model_file(study):
    """Remove the model files of finished trials that are not the best (each
    completed trial writes one; only the best one's is tested and kept).
    Files on other machines are theirs to remove."""
    from optuna.trial import TrialState
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE
            and t.user_attrs.get("model_file")]
    if not done:
        return
    best = max(done, key=lambda t: t.value)
    for t in done:
        path = t.user_attrs["model_file"]
        if path != best.user_attrs["model_file"] and os.path.isfile(path):
            try:
                os.remove(path)
            except OSError:  # another worker removed it first
                pass


def _suggest(trial, name, dist):
    import optuna.distributions as D
    if isinstance(dist, D.CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, D.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def trial_line(trial):
    """One line for a finished trial: state, accuracy, settings."""
    from optuna.trial import TrialState
    vals = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    if trial.state == TrialState.COMPLETE:
        what = f"val acc {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        last = max(trial.intermediate_values) if trial.intermediate_values else 0
        acc = trial.intermediate_values.get(last, float("nan"))
        what = f"pruned at epoch {last} (val acc {acc:.4f})"
    else:
        what = trial.user_attrs.get("stopped") or "failed (its worker stopped: no heartbeat)"
    return f"trial {trial.number:3d} {what}  {vals}"


def _fmt(v):
    """Floats short for reading; commands use :func:`repr` (every digit)."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def train_command(settings, params, epochs, seed):
    """The ``xpnn train`` command line that repeats a trial: its sampled
    ``params``, the settings the search held fixed where they are not
    ``xpnn train``'s defaults, and the trial's seed."""
    parts = ["xpnn", "train", "--dataset", settings.dataset]
    for opt in ("data_dir", "classes"):
        if getattr(settings, opt, None):
            parts += [f"--{opt.replace('_', '-')}", str(getattr(settings, opt))]
    if "arch" not in params:
        parts += ["--arch", settings.arch] if settings.arch else \
            ["--model", settings.model]
    fixed = {k: getattr(settings, k) for k in (*SETTINGS, "dtype", "backend",
                                                   "warmup_epochs")
             if k not in params and getattr(settings, k) != getattr(DEFAULTS, k)}
    fixed.pop("arch", None)
    for k, v in {**params, **fixed}.items():
        parts += [f"--{k.replace('_', '-')}", repr(v) if isinstance(v, float) else str(v)]
    s = settings.lr_schedule
    if s:
        parts += ["--lr-schedule", s["kind"] if s["kind"] != "step" else
                  f"step:{s['step_epochs']!r}:{s.get('gamma', 0.1)!r}"]
    a = settings.augment
    if a:
        parts += ["--augment", ",".join(([f"crop:{a['crop_pad']}"] if a.get("crop_pad") else [])
                                        + (["flip"] if a.get("flip") else []))]
    parts += ["--epochs", str(epochs), "--seed", str(seed)]
    return " ".join(parts)


def report(study, settings, data, epochs, out_dir=".", top=5, plots=True):
    """The best trials as a table, the best configuration as an ``xpnn
    train`` command and a JSON file, its test accuracy (the test set is used
    here only, once), and PNG plots. Returns the summary dict written."""
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    cut = sum(t.state == TrialState.FAIL and _cut_short(t) for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials) - cut
    print(f"study {study.study_name}: {len(trials)} trials, {len(done)} complete, {pruned} "
          f"pruned, {failed} failed" + (f", {cut} cut short by Ctrl-C (not counted)"
                                        if cut else ""))
    if not done:
        print("no trial completed; nothing to report")
        return None
    best = max(done, key=lambda t: t.value)
    names = list(dict.fromkeys(n for t in done for n in t.params))  # a later run may add some
    print(f"\n{'trial':>5} {'val acc':>8}  " + "  ".join(f"{n:>12}" for n in names))
    for t in sorted(done, key=lambda t: -t.value)[:top]:
        print(f"{t.number:5d} {t.value:8.4f}  " +
              "  ".join(f"{_fmt(t.params.get(n, '')):>12}" for n in names))
    test_acc = _test_once(best, data)
    ran_epochs = best.user_attrs.get("epochs", epochs)  # as the trial ran
    threads = best.user_attrs.get("blas_threads")
    command = train_command(settings, best.params, ran_epochs,
                            best.user_attrs.get("seed", best.number))
    if threads is not None and threads != _default_threads():
        # float32 results depend on the BLAS thread count: repeat it with the trial's
        command = f"OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} {command}"
    summary = {"study": study.study_name, "trial": best.number, "val_acc": best.value,
               "test_acc": test_acc, "params": best.params, "epochs": ran_epochs,
               "blas_threads": threads, "command": command, "trials": len(trials),
               "pruned": pruned, "failed": failed}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{study.study_name}-best.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(f"\nbest: trial {best.number}, val acc {best.value:.4f}" +
          ("" if test_acc is None else f", test acc {test_acc:.4f} (the test set's only use)"))
    print(f"train it again with:\n  {command}\nwrote {os.path.abspath(path)}")
    if plots:
        for p in plot_study(study, out_dir):
            print(f"wrote {os.path.abspath(p)}")
    return summary


def _test_once(best, data):
    from .checkpoint import load_model
    from .solver import Solver
    path = best.user_attrs.get("model_file")
    if not path or not os.path.isfile(path) or "X_test" not in data:
        return None  # trained on another machine: its file is there, not here
    model = load_model(path)
    return Solver(model, data, verbose=False).check_accuracy(data["X_test"], data["y_test"],
                                                              batch_size=500)


def plot_study(study, out_dir="."):
    """PNG plots of a study: validation accuracy per trial with the best so
    far (pruned trials at the epoch they stopped), against the learning rate
    when it was searched, and which settings mattered (Optuna's fANOVA
    importance). Returns the paths written."""
    import warnings
    from optuna.trial import TrialState
    from .vis import finish_figure, pyplot
    plt = pyplot()
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    written = []

    def accuracy_axes(ax, xlabel, title):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{study.study_name}: {title}")
        ax.margins(x=0.05, y=0.1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")

    def finish(fig, name):
        path = os.path.join(out_dir, f"{study.study_name}-{name}.png")
        written.append(finish_figure(fig, path, plt))

    def last(t):
        return t.intermediate_values[max(t.intermediate_values)]

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="tab:blue",
            markersize=6, label="complete", zorder=3)
    if pruned:
        ax.plot([t.number for t in pruned], [last(t) for t in pruned], "x", color="0.5",
                markersize=6, label="pruned (at the epoch it stopped)", zorder=2)
    if done:
        order = sorted(done, key=lambda t: t.number)
        best, xs, ys = -np.inf, [], []
        for t in order:
            best = max(best, t.value)
            xs.append(t.number)
            ys.append(best)
        final = max(t.number for t in trials)   # the best stays the best to the last trial
        if final > xs[-1]:
            xs.append(final)
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far", zorder=1)
    accuracy_axes(ax, "trial", "validation accuracy of each trial")
    finish(fig, "history")
    if done and "lr" in done[0].params:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot([t.params["lr"] for t in done if "lr" in t.params],
                [t.value for t in done if "lr" in t.params], "o", color="tab:blue",
                label="complete", zorder=3)
        lr_pruned = [t for t in pruned if "lr" in t.params]
        if lr_pruned:
            ax.plot([t.params["lr"] for t in lr_pruned], [last(t) for t in lr_pruned], "x",
                    color="0.5", label="pruned", zorder=2)
        ax.set_xscale("log")
        accuracy_axes(ax, "learning rate (lr)", "validation accuracy against the learning rate")
        finish(fig, "lr")
    if len(done) >= 2 and len({n for t in done for n in t.params}) >= 2:
        import optuna
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                shares = optuna.importance.get_param_importances(study)
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials
                print(f"no importance plot: {exc}")
                shares = None
        if shares:
            names = sorted(shares, key=shares.get)          # the largest on top
            fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(names)))
            bars = ax.barh(names, [shares[n] for n in names], color="tab:blue", height=0.6)
            for bar, n in zip(bars, names):
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                        f" {shares[n]:.2f}", va="center")
            ax.set_xlim(0, 1.1)
            ax.set_xlabel("share of the variance of validation accuracy (fANOVA, "
                          f"{len(done)} complete trials)")
            ax.set_ylabel("setting")
            ax.set_title(f"{study.study_name}: how much each setting mattered")
            ax.grid(alpha=0.3, axis="x")
            finish(fig, "importance")
    return written


if __name__ == "__main__":  # pragma: no cover - a worker of run_search
    sys.exit(_worker_main(sys.argv[1:]))
