"""The ``xpnn`` command line: ``xpnn train`` trains a model and reports
validation and test accuracy. Run ``xpnn train --help`` for every option."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from . import backend

MODEL_CHOICES = ("convnet", "threelayer", "fc", "twolayer", "challenge")
DATASETS = ("digits", "cifar10", "cinic10")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _RaisingParser(_Parser):
    """For the Python API: a bad option is a ValueError, not an exit."""

    def error(self, message):
        raise ValueError(f"{self.prog}: {message}")


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


def build_parser(parser_class=None):
    cls = parser_class or _Parser
    p = cls(prog="xpnn", description="xpnn: CS231n-style neural networks on NumPy or CuPy.")
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
    t.add_argument("--resume", metavar="PATH",
                   help="continue training from a checkpoint written with --checkpoint")
    t.add_argument("--plot", metavar="PATH", default="xpnn_train.png",
                   help="PNG of loss and accuracy curves; 'none' to skip (default: %(default)s)")
    t.add_argument("--quiet", action="store_true", help="print only the final accuracies")

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
                                   "amount and report sparsity, parameters, FLOPs and test "
                                   "accuracy. Unstructured: global L1 over every conv and affine "
                                   "weight. --structured: L1 filter pruning of every conv layer, "
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
                   help="array backend (default: $XPNN_BACKEND or numpy)")
    q.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                   help="fine-tune each pruned copy for this many epochs (adam, lr 1e-3); "
                        "pruned weights stay zero (default: 0)")
    q.add_argument("--repeat", type=_positive_int, default=7,
                   help="inference timings per model, median reported (default: %(default)s)")
    q.add_argument("--plot", metavar="PATH", default="xpnn_prune.png",
                   help="PNG of accuracy vs sparsity; 'none' to skip (default: %(default)s)")
    return p


def _model_options(t):
    t.add_argument("--model", choices=MODEL_CHOICES, default="convnet",
                   help="convnet: [conv-bn-relu-pool]x2 - affine-bn-relu - affine; threelayer: "
                        "the course ThreeLayerConvNet; fc: FullyConnectedNet [100, 100] with "
                        "batchnorm; twolayer: TwoLayerNet; challenge: the seed notebooks' "
                        "[conv-bn-relu-pool-dropout]x3 64/128/256 - 512 - classes "
                        "(default: %(default)s)")
    t.add_argument("--arch", metavar="FILE.json",
                   help="train the xpnn.nn Sequential described in this JSON file (a list of "
                        "layers such as {\"type\": \"Conv2d\", \"in_channels\": 1, ...}); "
                        "replaces --model; input shape and classes come from the data set")
    t.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits needs no download; cifar10 and cinic10 read --data-dir "
                        "(default: %(default)s)")
    t.add_argument("--data-dir", metavar="PATH",
                   help="cifar10: the cifar-10-batches-py folder; cinic10: the folder with "
                        "train/valid/test")
    t.add_argument("--classes", metavar="A,B,...",
                   help="cinic10 only: a subset of class names, e.g. airplane,bird,cat")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating type of the model (default: %(default)s)")
    t.add_argument("--backend", choices=backend.VALID_BACKENDS, default=None,
                   help="array backend (default: $XPNN_BACKEND or numpy)")
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
    t.add_argument("--batch-size", type=_positive_int, default=50,
                   help="minibatch size (default: %(default)s)")
    t.add_argument("--lr", type=_positive_float, default=2e-3,
                   help="learning rate (default: %(default)s)")
    t.add_argument("--lr-decay", type=_positive_float, default=0.9,
                   help="learning-rate factor applied after each epoch (default: %(default)s)")
    t.add_argument("--lr-schedule", type=_schedule, default=None, metavar="SPEC",
                   help="instead of --lr-decay: 'cosine' (to 0 at the last iteration), "
                        "'step:E' or 'step:E:G' (times G, default 0.1, every E epochs), or "
                        "'constant'")
    t.add_argument("--warmup-epochs", type=_nonneg_float, default=0.0,
                   help="with --lr-schedule: ramp the learning rate up linearly over this many "
                        "epochs first (default: %(default)s)")
    t.add_argument("--augment", type=_augment, default=None, metavar="SPEC",
                   help="augment training batches: 'crop:P' (random crops of the images "
                        "zero-padded by P pixels), 'flip' (random left-right mirror), or "
                        "both: 'crop:4,flip'")
    t.add_argument("--update-rule", choices=sorted(UPDATE_RULES), default="adam",
                   help="update rule (default: %(default)s)")
    t.add_argument("--reg", type=_nonneg_float, default=1e-4,
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


def _load_data(args):
    from . import data as D
    if args.classes and args.dataset != "cinic10":
        raise ValueError(f"--classes selects CINIC-10 classes; it does not apply to "
                         f"--dataset {args.dataset}")
    if args.dataset == "digits":
        return D.get_digits_data()
    if not args.data_dir:
        raise ValueError(f"--dataset {args.dataset} needs --data-dir PATH")
    if args.dataset == "cifar10":
        return D.get_CIFAR10_data(args.data_dir)
    classes = args.classes.split(",") if args.classes else None
    return D.get_CINIC10_data(args.data_dir, classes=classes)


def _build_model(args, data):
    from .models import ConvNet, FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
    input_dim = tuple(data["X_train"].shape[1:])
    num_classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    flat = int(np.prod(input_dim))
    which = "--arch" if args.arch else f"--model {args.model}"
    takes = {"convnet": ("hidden", "filters", "keep"), "threelayer": ("hidden", "filters"),
             "fc": ("hidden", "keep"), "twolayer": ("hidden",)}.get(
                 None if args.arch else args.model, ())
    for opt in ("hidden", "filters", "keep"):
        if getattr(args, opt, None) is not None and opt not in takes:
            raise ValueError(f"--{opt} does not apply to {which}" +
                             (f" (it takes {', '.join('--' + t for t in takes)})" if takes
                              else ""))
    hidden, filters = getattr(args, "hidden", None), getattr(args, "filters", None)
    keep = getattr(args, "keep", None) or 1.0
    if keep > 1:
        raise ValueError(f"--keep is the probability of keeping a unit, in (0, 1]; got {keep}")
    scale = getattr(args, "weight_scale", None)
    if args.arch:
        from .nn import load_arch
        return load_arch(args.arch, input_shape=input_dim, num_classes=num_classes,
                         reg=args.reg, dtype=args.dtype, weight_scale=scale)
    if args.model == "challenge":
        from .nn import challenge_net
        return challenge_net(input_dim, num_classes, reg=args.reg, dtype=args.dtype,
                             weight_scale=scale)
    if args.model == "convnet":
        f = filters or 16
        return ConvNet(input_dim=input_dim, conv_blocks=((f,), (2 * f,)),
                       hidden_dims=(hidden or 64,), num_classes=num_classes, reg=args.reg,
                       dropout_keep_ratio=keep, weight_scale=scale, dtype=args.dtype)
    if args.model == "threelayer":
        return ThreeLayerConvNet(input_dim=input_dim, num_filters=filters or 16, filter_size=3,
                                 hidden_dim=hidden or 64, num_classes=num_classes,
                                 weight_scale=scale or 1e-2, reg=args.reg, dtype=args.dtype)
    if args.model == "fc":
        h = hidden or 100
        return FullyConnectedNet([h, h], input_dim=flat, num_classes=num_classes,
                                 normalization="batchnorm", reg=args.reg,
                                 weight_scale=scale or 5e-2, dropout_keep_ratio=keep,
                                 dtype=args.dtype)
    return TwoLayerNet(input_dim=flat, hidden_dim=hidden or 100, num_classes=num_classes,
                       weight_scale=scale or 1e-2, reg=args.reg)


def _make_solver(args, data, model, epochs, verbose, epoch_callback=None):
    """The Solver ``xpnn train`` (and each ``xpnn tune`` trial) runs."""
    from .solver import Solver
    schedule = None if args.lr_schedule is None else \
        {**args.lr_schedule, "warmup_epochs": args.warmup_epochs}
    return Solver(model, data, update_rule=args.update_rule,
                  optim_config={"learning_rate": args.lr},
                  lr_decay=1.0 if schedule else args.lr_decay, lr_schedule=schedule,
                  augment=args.augment, batch_size=args.batch_size, num_epochs=epochs,
                  num_train_samples=1000, print_every=50,
                  checkpoint_name=getattr(args, "checkpoint", None), verbose=verbose,
                  epoch_callback=epoch_callback)


def cmd_train(args):
    from .checkpoint import check_writable, load_npz
    from .models import build_model
    from .solver import Solver
    if args.backend:
        backend.set_backend(args.backend)
    backend.get_backend()
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    data = _load_data(args)
    verbose = not args.quiet
    if args.checkpoint:
        check_writable(args.checkpoint)  # now, not after the first epoch
    if args.resume:
        meta, _ = load_npz(args.resume)
        if meta.get("format") != "xpnn-checkpoint-1" or not isinstance(meta.get("solver"),
                                                                        dict):
            raise ValueError(f"--resume needs a checkpoint written by xpnn train --checkpoint; "
                             f"{args.resume!r} is not one (a saved model holds no training "
                             "state)")
        m = meta.get("model", {})
        model = build_model(m.get("class"), m.get("init_kwargs"))
        s = meta["solver"]
        solver = Solver(model, data, update_rule=s["update_rule"], optim_config=s["optim_config"],
                        lr_decay=s["lr_decay"], lr_schedule=s.get("lr_schedule"),
                        augment=s.get("augment"),
                        batch_size=s["batch_size"],
                        num_epochs=args.epochs or s["num_epochs"],
                        num_train_samples=s["num_train_samples"],
                        num_val_samples=s["num_val_samples"], print_every=s["print_every"],
                        checkpoint_name=args.checkpoint, verbose=verbose)
        solver.load_checkpoint(args.resume)
        if verbose:
            print(f"resumed {args.resume} at epoch {solver.epoch}, iteration {solver.iteration}")
    else:
        model = _build_model(args, data)
        solver = _make_solver(args, data, model, args.epochs or 15, verbose)
    if verbose:
        n = data["X_train"].shape[0]
        desc = repr(model)  # a Sequential describes itself as a table
        print(f"training {desc}" if "\n" not in desc else f"training\n{desc}\n")
        print(f"  on {args.dataset} ({n} training images), backend "
              f"{backend.get_backend()}, {solver.num_epochs} epochs of batch {solver.batch_size}")
    solver.train()
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


def _infer_ms(model, X, repeat):
    model.loss(X)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        model.loss(X)
        backend.synchronize()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def cmd_prune(args):
    import copy

    from . import prune
    from .checkpoint import load_model
    if args.backend:
        backend.set_backend(args.backend)
    backend.get_backend()
    model = load_model(args.checkpoint)
    data = _load_data(args)
    X, y = data["X_test"], data["y_test"]

    def accuracy(m):
        from .solver import Solver
        return Solver(m, data, verbose=False).check_accuracy(X, y, batch_size=500)

    want = tuple(model.init_kwargs.get("input_dim", ()) if isinstance(
        model.init_kwargs.get("input_dim"), (list, tuple)) else ())
    if want and tuple(X.shape[1:]) != want:
        raise ValueError(f"the model expects inputs of shape {want} but {args.dataset} images "
                         f"are {tuple(X.shape[1:])}; pass the data set it was trained on")
    if not want:
        X = X.reshape(len(X), -1)
    if args.finetune < 0:
        raise ValueError(f"--finetune must be >= 0 epochs, got {args.finetune}")
    structured = args.structured

    def finetune(m):
        if args.finetune:
            from .solver import Solver
            Solver(m, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                   batch_size=50, num_epochs=args.finetune, verbose=False).train()

    amounts = args.amounts or ([0.1, 0.2, 0.3, 0.5] if structured else
                               [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    base = prune.model_stats(model)
    base_acc = accuracy(model)
    Xt = np.concatenate([X] * max(1, -(-2048 // len(X))))[:2048]  # a batch long enough to time
    base_ms = _infer_ms(model, Xt, args.repeat)
    print(f"{type(model).__name__} from {args.checkpoint}: {base['params']} params, "
          f"{base['flops']} FLOPs/image, test accuracy {base_acc:.4f}, "
          f"inference {base_ms:.2f} ms per {len(Xt)} images")
    if structured:
        print(f"{'amount':>6s} {'sparsity':>8s} {'params':>8s} {'FLOPs':>9s} {'test acc':>8s} "
              f"{'masked ms':>9s} {'shrunk ms':>9s} {'speedup':>7s}")
    else:
        print(f"{'amount':>6s} {'sparsity':>8s} {'nonzero':>8s} {'FLOPs':>9s} {'test acc':>8s}")
    rows = []
    for a in amounts:
        m = copy.deepcopy(model)
        if structured:
            convs = [w for w in prune.prunable_names(m) if m.params[w].ndim == 4]
            if not convs:
                raise ValueError(f"{type(model).__name__} has no conv layers to prune "
                                 "structurally; drop --structured")
            for w in convs:
                prune.ln_structured(m, w, a, n=1, dim=0)
            finetune(m)
            sp = prune.sparsity(m)["global"]
            acc = accuracy(m)
            small = prune.shrink(m)
            r = small.shrink_report
            t_masked, t_small = _infer_ms(m, Xt, args.repeat), _infer_ms(small, Xt, args.repeat)
            print(f"{a:6.2f} {sp:8.3f} {r['params_after']:8d} {r['flops_after']:9d} {acc:8.4f} "
                  f"{t_masked:9.2f} {t_small:9.2f} {t_masked / t_small:6.2f}x")
        else:
            prune.global_unstructured(m, a)
            finetune(m)
            prune.remove(m)
            sp = prune.sparsity(m)["global"]
            acc = accuracy(m)
            nonzero = sum(int(np.count_nonzero(backend.to_numpy(v))) for v in m.params.values())
            print(f"{a:6.2f} {sp:8.3f} {nonzero:8d} {base['flops']:9d} {acc:8.4f}")
        rows.append((a, sp, acc))
    if not structured:
        print("(unstructured zeros still cost dense FLOPs; --structured removes work)")
    if args.plot and args.plot.lower() != "none":
        from .vis import plot_pruning
        plot_pruning(rows, base_acc, args.plot, structured=structured)
        print(f"wrote {os.path.abspath(args.plot)}")
    return 0


def cmd_tune(args):
    summary = run_search(args)
    return 0 if summary is not None or args.no_report else 1


def run_search(args):
    """``xpnn tune`` with parsed ``args``; the best trial's summary (None when
    no trial completed or this was a --no-report worker)."""
    from . import tune
    from .optim import UPDATE_RULES
    space = tune.parse_space(args.param, args.space)
    for name, dist in space.items():  # choices checked now, not as failed trials
        for c in getattr(dist, "choices", ()):
            if name == "update_rule" and c not in UPDATE_RULES:
                raise ValueError(f"search space update_rule: unknown rule {c!r}; known: "
                                 f"{', '.join(sorted(UPDATE_RULES))}")
            if name == "arch" and not os.path.isfile(c):
                raise ValueError(f"search space arch: no architecture file {c!r}")
    if args.backend:
        backend.set_backend(args.backend)
    backend.get_backend()
    name = args.study or f"xpnn-{args.dataset}-{'arch' if args.arch else args.model}"
    os.makedirs(args.out, exist_ok=True)
    data = _load_data(args)
    _build_model(args, data)  # a setting that does not fit the model fails now, once
    study = tune.open_study(args.storage, name, sampler_seed=args.seed, pruner=args.pruner,
                            heartbeat=args.heartbeat)
    t0 = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    others = _start_workers(args, args.workers - 1, threads) if args.workers > 1 else None

    def line(trial):
        print(tune.trial_line(trial), flush=True)
    try:
        # this process is one of the workers, its BLAS threads limited like theirs
        from contextlib import nullcontext
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads) if args.workers > 1 else nullcontext():
            ran = tune.run_worker(study, space, args, data, args.trials, args.epochs,
                                  timeout=args.timeout, seed=args.seed, out_dir=args.out,
                                  on_trial=line)
    finally:
        if others:
            ran_others = _join_workers(*others)
    if others:
        print(f"{args.workers} workers ({threads} BLAS thread{'s' * (threads > 1)} each) ran "
              f"{ran + ran_others} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    else:
        print(f"this worker ran {ran} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.no_report:
        return None
    return tune.report(study, args, data, args.epochs, out_dir=args.out,
                       plots=not args.no_plots)


def _start_workers(args, k, threads):
    """Start ``k`` more processes of this tune command on the same study,
    each with ``threads`` BLAS threads; their trial lines pass through."""
    import subprocess
    import threading
    argv = list(sys.argv[1:])
    if "--workers" in argv:
        i = argv.index("--workers")
        del argv[i:i + 2]
    argv = [a for a in argv if not a.startswith("--workers=")]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    procs = [subprocess.Popen([sys.executable, "-m", "xpnn.cli", *argv, "--no-report",
                               "--seed", str(args.seed + 1000 * (w + 1))],
                              env=env, stdout=subprocess.PIPE, text=True)
             for w in range(k)]
    counts = [0] * k

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
    bad = [p.returncode for p in procs if p.returncode]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(procs)} other tune workers failed (exit codes "
                           f"{bad}); the study keeps every trial they finished")
    return sum(counts)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
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
