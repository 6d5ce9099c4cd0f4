"""The ``xpnn`` command line: options in, :class:`xpnn.recipes.Settings`
(and :class:`xpnn.tune.Search`) out, and the run they describe.
``xpnn train`` trains a model and reports validation and test accuracy;
``xpnn tune`` searches its settings; ``xpnn prune`` prunes a trained model.
Run ``xpnn COMMAND --help`` for every option."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings

import numpy as np

from . import backend
from .recipes import (DATASETS, DEFAULTS, MODEL_CHOICES, Settings, build_model, load_data,
                      make_solver, resume_solver)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {s!r}")
    return v


def _positive_float(s):
    v = _nonneg_float(s)
    if v == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}")
    return v


def build_parser():
    cls = _Parser
    p = cls(prog="xpnn", description="xpnn: CS231n-style neural networks on NumPy or CuPy.")
    from . import __version__
    p.add_argument("--version", action="version", version=f"xpnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=cls)
    t = sub.add_parser("train", help="train a model and report val/test accuracy",
                       description="Train a model with the Solver and report validation and "
                                   "test accuracy. With no options: a ConvNet on the "
                                   "handwritten-digits set that ships with scikit-learn.")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="number of epochs (default 15; with --resume, the checkpoint's)")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of NumPy's global RNG: weights and minibatches (default: 0)")
    t.add_argument("--checkpoint", metavar="PREFIX",
                   help="write PREFIX_epoch_<n>.npz after every epoch")
    t.add_argument("--keep-checkpoints", choices=("all", "last", "best"), default=None,
                   help="which epoch checkpoints stay: all, the last one, or the last and "
                        "the best by validation accuracy (default: all; with --resume, the "
                        "run's own)")
    t.add_argument("--resume", metavar="PATH",
                   help="continue training from a checkpoint written with --checkpoint, "
                        "saving the new epochs beside it (PREFIX_epoch_<n>.npz, as the run "
                        "did) unless --checkpoint names another prefix")
    t.add_argument("--plot", metavar="PATH", default="xpnn_train.png",
                   help="PNG of loss and accuracy curves; 'none' to skip (default: %(default)s)")
    t.add_argument("--quiet", action="store_true",
                   help="print only the final accuracies (and the files written)")

    _model_options(t)
    _solver_options(t)

    u = sub.add_parser("tune", help="search hyperparameters (Optuna) on the validation set",
                       description="Search xpnn train's settings coarse to fine: each trial "
                                   "trains through the Solver, reports validation accuracy per "
                                   "epoch and is stopped early when hopeless. The study lives "
                                   "in --storage (a local SQLite file by default; a PostgreSQL "
                                   "URL lets processes on many machines share it), so a killed "
                                   "search continues where it stopped. At the end: the best "
                                   "trials, the best configuration as an xpnn train command "
                                   "and JSON, its test accuracy (the test set's only use) and "
                                   "plots.")
    u.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="a searched setting: lr, reg, weight_scale, batch_size, lr_decay, "
                        "update_rule, hidden, filters, keep or arch, as log:LOW:HIGH, "
                        "float:LOW:HIGH, int:LOW:HIGH[:log] or cat:A,B,... (repeatable; "
                        "default: lr=log:1e-4:3e-1 reg=log:1e-7:1e-1 hidden=int:16:256:log)")
    u.add_argument("--space", metavar="FILE.json",
                   help="search space as JSON: {\"lr\": \"log:1e-4:1e-1\", ...}")
    u.add_argument("--trials", type=_positive_int, default=30,
                   help="trials the study should hold; a continued study runs only the "
                        "missing ones (default: %(default)s)")
    u.add_argument("--epochs", type=_positive_int, default=3,
                   help="epochs per trial (default: %(default)s)")
    u.add_argument("--timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="stop starting trials after this long")
    u.add_argument("--seed", type=int, default=0,
                   help="sampler seed; trial n trains with NumPy seed SEED + n (default: 0)")
    u.add_argument("--study", default=None, metavar="NAME",
                   help="study name; an existing one continues (default: "
                        "xpnn-<dataset>-<model>)")
    u.add_argument("--storage", default="sqlite:///xpnn_tune.db", metavar="URL",
                   help="where the study lives: sqlite:///FILE or postgresql://USER@HOST/DB "
                        "(default: %(default)s)")
    u.add_argument("--workers", type=_positive_int, default=1,
                   help="local worker processes sharing the study, the cores split between "
                        "them (default: %(default)s)")
    u.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="early stopping: median (below the median of earlier trials at the "
                        "same epoch), halving (successive halving) or none "
                        "(default: %(default)s)")
    u.add_argument("--heartbeat", type=_positive_int, default=10, metavar="SECONDS",
                   help="a running trial records a heartbeat this often; one silent for 3 "
                        "heartbeats (its worker was killed) is marked failed and run again "
                        "(default: %(default)s)")
    u.add_argument("--out", default=".", metavar="DIR",
                   help="folder for trial models, the best configuration and plots "
                        "(default: the current one)")
    u.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    u.add_argument("--no-report", action="store_true",
                   help="run trials only (a worker of a larger search); no table, test or plots")
    _model_options(u)
    _solver_options(u)

    q = sub.add_parser("prune", help="prune a trained model and tabulate accuracy vs sparsity",
                       description="Load a trained model (a checkpoint from xpnn train "
                                   "--checkpoint, or a saved model), prune copies of it by each "
                                   "amount and report sparsity, parameters, FLOPs and "
                                   "validation accuracy. Unstructured: global L1 over every "
                                   "conv and affine weight. --structured: L1 filter pruning of every conv layer, "
                                   "then shrink, with inference time before and after.")
    q.add_argument("--checkpoint", metavar="PATH", required=True,
                   help="checkpoint or model file (.npz) to prune")
    q.add_argument("--structured", action="store_true",
                   help="prune whole conv filters (ln_structured, n=1, dim=0) and shrink")
    q.add_argument("--amounts", type=_amounts, default=None, metavar="A,B,...",
                   help="fractions in [0, 1] (default 0.1,...,0.8 unstructured; "
                        "0.1,0.2,0.3,0.5 structured)")
    q.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="data the model was trained on (default: %(default)s)")
    q.add_argument("--data-dir", metavar="PATH", help="as for xpnn train")
    q.add_argument("--classes", metavar="A,B,...", help="as for xpnn train")
    q.add_argument("--backend", choices=backend.VALID_BACKENDS, default=None,
                   help="array backend (default: $XPNN_BACKEND or numpy); torch runs on "
                        "$XPNN_TORCH_DEVICE (cuda, mps, cpu) or the best one present")
    q.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                   help="fine-tune each pruned copy for this many epochs (adam, lr 1e-3); "
                        "pruned weights stay zero (default: 0)")
    q.add_argument("--repeat", type=_positive_int, default=7,
                   help="inference timings per model, median reported (default: %(default)s)")
    q.add_argument("--save", metavar="PREFIX", default=None,
                   help="write each pruned model (structured: the shrunk one) to "
                        "PREFIX_<percent>.npz, e.g. PREFIX_50.npz")
    q.add_argument("--plot", metavar="PATH", default="xpnn_prune.png",
                   help="PNG of accuracy vs sparsity; 'none' to skip (default: %(default)s)")
    return p


def _model_options(t):
    t.add_argument("--model", choices=MODEL_CHOICES, default=None,
                   help="convnet: [conv-bn-relu-pool]x2 - affine-bn-relu - affine; threelayer: "
                        "the course ThreeLayerConvNet; fc: FullyConnectedNet [100, 100] with "
                        "batchnorm; twolayer: TwoLayerNet; challenge: the seed notebooks' "
                        "[conv-bn-relu-pool-dropout]x3 64/128/256 - 512 - classes "
                        f"(default: {DEFAULTS.model})")
    t.add_argument("--arch", metavar="FILE.json",
                   help="train the xpnn.nn Sequential described in this JSON file (a list of "
                        "layers such as {\"type\": \"Conv2d\", \"in_channels\": 1, ...}); "
                        "replaces --model; input shape and classes come from the data set")
    t.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits needs no download; cifar10 and cinic10 read --data-dir, or "
                        "are looked for in $XPNN_DATA, datasets/ and the course's folders "
                        "(default: %(default)s)")
    t.add_argument("--data-dir", metavar="PATH",
                   help="cifar10: the cifar-10-batches-py folder; cinic10: the folder with "
                        "train/valid/test (a missing data set's error says where to get it)")
    t.add_argument("--classes", metavar="A,B,...",
                   help="cinic10 only: a subset of class names, e.g. airplane,bird,cat")
    t.add_argument("--dtype", choices=("float32", "float64"), default=DEFAULTS.dtype,
                   help="floating type of the model (default: %(default)s)")
    t.add_argument("--backend", choices=backend.VALID_BACKENDS, default=None,
                   help="array backend (default: $XPNN_BACKEND or numpy); torch runs on "
                        "$XPNN_TORCH_DEVICE (cuda, mps, cpu) or the best one present")
    t.add_argument("--hidden", type=_positive_int, default=None,
                   help="width of each hidden affine layer (default: the model's: convnet "
                        "64, threelayer 64, fc 100, twolayer 100)")
    t.add_argument("--filters", type=_positive_int, default=None,
                   help="filters of the first conv layer; convnet's second has twice as many "
                        "(default 16)")
    t.add_argument("--keep", type=_positive_float, default=None,
                   help="dropout keep probability in (0, 1] for convnet and fc (default 1: "
                        "no dropout)")
    t.add_argument("--weight-scale", type=_positive_float, default=None,
                   help="std of the initial weights (default: the model's)")


def _solver_options(t):
    from .optim import UPDATE_RULES
    t.add_argument("--batch-size", type=_positive_int, default=DEFAULTS.batch_size,
                   help="minibatch size (default: %(default)s)")
    t.add_argument("--lr", type=_positive_float, default=DEFAULTS.lr,
                   help="learning rate (default: %(default)s)")
    t.add_argument("--lr-decay", type=_positive_float, default=None,
                   help="learning-rate factor applied after each epoch (default: "
                        f"{DEFAULTS.lr_decay}; not with --lr-schedule)")
    t.add_argument("--lr-schedule", type=_schedule, default=None, metavar="SPEC",
                   help="instead of --lr-decay: 'cosine' (to 0 at the last iteration), "
                        "'step:E' or 'step:E:G' (times G, default 0.1, every E epochs), or "
                        "'constant'")
    t.add_argument("--warmup-epochs", type=_nonneg_float, default=None,
                   help="with --lr-schedule: ramp the learning rate up linearly over this many "
                        f"epochs first (default: {DEFAULTS.warmup_epochs:g})")
    t.add_argument("--augment", type=_augment, default=None, metavar="SPEC",
                   help="augment training batches: 'crop:P' (random crops of the images "
                        "zero-padded by P pixels), 'flip' (random left-right mirror), or "
                        "both: 'crop:4,flip'")
    t.add_argument("--update-rule", choices=sorted(UPDATE_RULES), default=DEFAULTS.update_rule,
                   help="update rule (default: %(default)s)")
    t.add_argument("--reg", type=_nonneg_float, default=DEFAULTS.reg,
                   help="L2 regularisation strength (default: %(default)s)")


def _schedule(s):
    kind, *rest = s.split(":")
    try:
        if kind in ("cosine", "constant") and not rest:
            return {"kind": kind}
        if kind == "step" and 1 <= len(rest) <= 2:
            out = {"kind": "step", "step_epochs": float(rest[0])}
            if len(rest) == 2:
                out["gamma"] = float(rest[1])
            return out
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected cosine, constant, step:EPOCHS or "
                                     f"step:EPOCHS:GAMMA, got {s!r}")


def _augment(s):
    out = {}
    for part in s.split(","):
        kind, _, arg = part.partition(":")
        if kind == "flip" and not arg:
            out["flip"] = True
        elif kind == "crop" and arg.isdigit():
            out["crop_pad"] = int(arg)
        else:
            raise argparse.ArgumentTypeError(f"expected crop:PIXELS, flip or crop:PIXELS,flip; "
                                             f"got {s!r}")
    return out


def _amounts(s):
    try:
        vals = [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions, got {s!r}") from None
    if not vals or any(not 0.0 <= v <= 1.0 for v in vals):
        raise argparse.ArgumentTypeError(f"amounts must be fractions in [0, 1], got {s!r}")
    return vals


# what --resume takes from the checkpoint (giving one of these with it is
# refused): every setting but where the data is, which device computes and
# which files are written
_FROM_CHECKPOINT = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in (
    "dataset", "data_dir", "classes", "backend", "checkpoint", "keep_checkpoints"))


def _refuse_conflicts_with_resume(args):
    """--resume continues the stored run as it was: a model or training
    option given beside it (one that differs from its default) would be
    ignored, so it is refused, named."""
    given = [k for k in _FROM_CHECKPOINT if getattr(args, k, None) is not None and
             getattr(args, k) != getattr(DEFAULTS, k)]
    if given:
        opts = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"--resume continues the checkpoint's run with its own model and "
                         f"training settings; {opts} would be ignored. Drop "
                         f"{'it' if len(given) == 1 else 'them'}, or start a new run "
                         f"without --resume (--epochs, --checkpoint, --plot and the data "
                         f"options may be given)")


# options that do nothing in some company: (option, when it is inapplicable,
# why); each is refused the same way, as --hidden with --arch is
_INAPPLICABLE = (
    ("model", lambda a: a.arch, "with --arch (the JSON file describes the model)"),
    ("warmup_epochs", lambda a: not a.lr_schedule,
     "without --lr-schedule (it ramps up a schedule's rate: e.g. --lr-schedule cosine "
     "--warmup-epochs 1)"),
    ("lr_decay", lambda a: a.lr_schedule,
     "with --lr-schedule (the schedule sets the rate every iteration; step:E:G multiplies "
     "it by G every E epochs)"),
    ("keep_checkpoints", lambda a: not (a.checkpoint or a.resume),
     "without --checkpoint (no epoch is saved)"),
    ("data_dir", lambda a: a.dataset == "digits",
     "to --dataset digits (it ships with scikit-learn; --data-dir is for cifar10 and "
     "cinic10)"),
)


def _refuse_inapplicable(args):
    """Refuse an option given where it would change nothing."""
    for name, inapplicable, why in _INAPPLICABLE:
        if getattr(args, name, None) is not None and inapplicable(args):
            raise ValueError(f"--{name.replace('_', '-')} does not apply {why}")


def _interrupted(args, solver, model):
    """Ctrl-C in training: the plot of what ran, where the last finished
    epoch is and the command that continues from it (or that nothing was
    saved). Exit status 130, as a shell gives an interrupted program."""
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    say(f"xpnn: interrupted at epoch {solver.epoch + 1} of {solver.num_epochs} (iteration "
        f"{solver.iteration}); {solver.epoch} epoch{'s' * (solver.epoch != 1)} finished")
    if args.plot and args.plot.lower() != "none" and solver.loss_history:
        from .vis import plot_history
        plot_history(solver, args.plot, title=f"{type(model).__name__} on {args.dataset} "
                                              f"(interrupted)")
        say(f"xpnn: wrote {os.path.abspath(args.plot)}")
    last = solver.last_checkpoint or args.resume
    if last:
        prefix = f" --checkpoint {args.checkpoint}" if args.checkpoint else ""
        say(f"xpnn: the last finished epoch is in {last}; continue with:\n"
            f"  xpnn train --resume {last} --epochs {solver.num_epochs}{prefix}")
    else:
        say("xpnn: nothing was saved (no --checkpoint); train with --checkpoint PREFIX to "
            "keep each finished epoch and be able to continue")
    return 130


def _refuse_another_runs_files(prefix):
    """A new run on a prefix that holds another run's epoch files would mix
    the two (its epoch 5 beside the other's epoch 20, which a later
    --resume or prune would take for this run's): refused, naming them."""
    from .checkpoint import epoch_files
    theirs = epoch_files(prefix)   # by epoch: --resume names the newest
    if theirs:
        shown = ", ".join(theirs[-3:]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3
                                          else "")
        raise ValueError(f"--checkpoint {prefix} already holds another run's epochs ({shown}); "
                         f"continue that run with --resume {theirs[-1]}, give this run "
                         f"another --checkpoint, or delete those files")


_KEPT = {"all": "every epoch's", "last": "the last epoch's",
         "best": "the last and the best epoch's"}


def cmd_train(args):
    from .checkpoint import check_writable
    _refuse_inapplicable(args)
    settings = Settings.from_options(args)
    if settings.backend:
        backend.set_backend(settings.backend)
    backend.get_backend()
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    data = load_data(settings)
    verbose = not args.quiet
    if args.resume:
        _refuse_conflicts_with_resume(args)
        # the run goes on saving where it saved, keeping what it kept
        from .checkpoint import epoch_prefix
        args.checkpoint = args.checkpoint or epoch_prefix(args.resume)
    if args.checkpoint:
        check_writable(args.checkpoint)  # now, not after the first epoch
        if not args.resume:
            _refuse_another_runs_files(args.checkpoint)
    if args.resume:
        solver = resume_solver(args.resume, data, args.epochs, args.checkpoint, verbose,
                               args.keep_checkpoints)
        model = solver.model
        if solver.epoch >= solver.num_epochs:
            raise ValueError(
                f"nothing to train: {args.resume} is at epoch {solver.epoch} and the run "
                f"ends at epoch {solver.num_epochs}; --epochs is the epoch to reach, so "
                f"--epochs {solver.epoch + 3} trains 3 more")
        if verbose:
            # the rate it goes on at (decayed since the start), not the first one
            rates = {c.get("learning_rate") for c in solver.optim_configs.values()}
            lr = rates.pop() if len(rates) == 1 else solver.optim_config.get("learning_rate")
            rate = f" at learning rate {lr:g}" if isinstance(lr, (int, float)) else ""
            print(f"resumed {args.resume} at epoch {solver.epoch}, iteration "
                  f"{solver.iteration}; from the checkpoint: the model, "
                  f"{solver.update_rule_name}{rate}, batch {solver.batch_size}; training to "
                  f"epoch {solver.num_epochs}")
        if args.checkpoint:
            if verbose:
                print(f"saving {args.checkpoint}_epoch_<n>.npz, keeping "
                      f"{_KEPT[solver.keep_checkpoints]}")
        else:
            print(f"xpnn: {args.resume} is not named PREFIX_epoch_<n>.npz, so the new epochs "
                  f"are not saved; give --checkpoint PREFIX to save them", file=sys.stderr)
    else:
        model = build_model(settings, data)
        solver = make_solver(settings, data, model, args.epochs or 15, verbose)
    if verbose:
        n = data["X_train"].shape[0]
        desc = repr(model)  # a Sequential describes itself as a table
        print(f"training {desc}" if "\n" not in desc else f"training\n{desc}\n")
        print(f"  on {args.dataset} ({n} training images), backend "
              f"{backend.get_backend()}, {solver.num_epochs} epochs of batch {solver.batch_size}")
    try:
        solver.train()
    except KeyboardInterrupt:
        return _interrupted(args, solver, model)
    except FloatingPointError as exc:   # the Python advice becomes the command's
        lr = solver.optim_config.get("learning_rate", settings.lr)
        # a tenth, at most the default rate (a tenth of 1e6 would diverge again)
        raise FloatingPointError(
            f"{str(exc).split('; lower the')[0]} (learning rate {lr:g}); train again with a "
            f"lower --lr, e.g. --lr {min(lr / 10, DEFAULTS.lr):g}") from None
    val_acc = solver.check_accuracy(data["X_val"], data["y_val"])
    test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
    print(f"val accuracy: {val_acc:.4f}  test accuracy: {test_acc:.4f}  "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.plot and args.plot.lower() != "none":
        from .vis import plot_history
        plot_history(solver, args.plot, title=f"{type(model).__name__} on {args.dataset}")
        print(f"wrote {os.path.abspath(args.plot)}")
    if solver.last_checkpoint:
        print(f"last checkpoint: {solver.last_checkpoint}")
    return 0


def cmd_prune(args):
    from .checkpoint import load_model
    from .prune.sweep import sweep
    _refuse_inapplicable(args)
    if args.backend:
        backend.set_backend(args.backend)
    backend.get_backend()
    model = load_model(args.checkpoint, best=True)   # what xpnn train reported
    data = load_data(Settings.from_options(args))
    if args.save:
        from .checkpoint import check_writable
        check_writable(args.save)
    rows, base_acc = sweep(model, data, args.amounts, structured=args.structured,
                           finetune=args.finetune, repeat=args.repeat,
                           source=args.checkpoint, dataset=args.dataset, save=args.save)
    if args.plot and args.plot.lower() != "none":
        from .vis import plot_pruning
        plot_pruning(rows, base_acc, args.plot, structured=args.structured)
        print(f"wrote {os.path.abspath(args.plot)}")
    return 0


def cmd_tune(args):
    from . import tune
    _refuse_inapplicable(args)
    try:
        summary = tune.run_search(tune.Search.from_options(args), Settings.from_options(args))
    except tune.SearchInterrupted as exc:
        print(f"xpnn: {exc}", file=sys.stderr)
        return 130
    return 0 if summary is not None or args.no_report else 1


def _one_line_warning(message, category, filename, lineno, line=None):
    """A warning as the command line shows it: one line, no source."""
    return f"xpnn: warning: {message}\n"


def main(argv=None):
    shown, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = shown


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        # a diverging run's overflows are reported once, as its error, not as
        # NumPy's warnings from every layer
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return {"prune": cmd_prune, "tune": cmd_tune, "train": cmd_train}[args.command](args)
    except KeyboardInterrupt:
        print("xpnn: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, FloatingPointError,
            OSError) as exc:
        print(f"xpnn: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
