"""A training run from its settings: the data set, the model and the Solver
that ``xpnn train`` runs, and that every ``xpnn tune`` trial runs with some
settings sampled.

The command line (:mod:`xpnn.cli`) turns its options into a
:class:`Settings`; :mod:`xpnn.tune` samples some settings per trial
(:meth:`Settings.replace`). Both then call :func:`load_data`,
:func:`build_model` and :func:`make_solver`, so a trial is exactly the
``xpnn train`` run its repeat command names.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .backend import VALID_BACKENDS
from .layers._util import check_int, check_number

__all__ = ["Settings", "DEFAULTS", "MODEL_CHOICES", "DATASETS", "load_data", "build_model",
           "make_solver", "resume_solver"]

MODEL_CHOICES = ("convnet", "threelayer", "fc", "twolayer", "challenge")
DATASETS = ("digits", "cifar10", "cinic10")

#: the size settings each model takes (an --arch file takes none)
_TAKES = {"convnet": ("hidden", "filters", "keep"), "threelayer": ("hidden", "filters"),
          "fc": ("hidden", "keep"), "twolayer": ("hidden",), "challenge": ()}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides a training run but its length and seed, with
    ``xpnn train``'s defaults (each field is one of its long options)."""

    dataset: str = "digits"
    data_dir: str | None = None
    classes: str | None = None
    model: str = "convnet"
    arch: str | None = None
    dtype: str = "float32"
    backend: str | None = None
    hidden: int | None = None
    filters: int | None = None
    keep: float | None = None
    weight_scale: float | None = None
    batch_size: int = 50
    lr: float = 2e-3
    lr_decay: float = 0.9
    lr_schedule: dict | None = None
    warmup_epochs: float = 0.0
    augment: dict | None = None
    update_rule: str = "adam"
    reg: float = 1e-4
    checkpoint: str | None = None
    keep_checkpoints: str = "all"

    def __post_init__(self):
        from .optim import UPDATE_RULES
        for name, allowed in (("dataset", DATASETS), ("model", MODEL_CHOICES),
                              ("dtype", ("float32", "float64")),
                              ("keep_checkpoints", ("all", "last", "best")),
                              ("update_rule", tuple(UPDATE_RULES))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{_opt(name)} must be one of {', '.join(allowed)}; got "
                                 f"{getattr(self, name)!r}")
        if self.backend is not None and self.backend not in VALID_BACKENDS:
            raise ValueError(f"--backend must be one of {', '.join(VALID_BACKENDS)}; got "
                             f"{self.backend!r}")
        for name in ("hidden", "filters", "batch_size"):
            if getattr(self, name) is not None:
                check_int(_opt(name), getattr(self, name), 1)
        if self.keep is not None and not (isinstance(self.keep, (int, float)) and
                                          0 < self.keep <= 1):
            raise ValueError(f"--keep is the probability of keeping a unit, in (0, 1]; got "
                             f"{self.keep}")
        for name in ("weight_scale", "lr", "lr_decay"):
            if getattr(self, name) is not None:
                check_number(_opt(name), getattr(self, name), 0.0, low_inclusive=False)
        check_number("--warmup-epochs", self.warmup_epochs, 0.0)
        check_number("--reg", self.reg, 0.0)

    @classmethod
    def from_options(cls, options) -> "Settings":
        """The settings among ``options`` (a dict, or an argparse namespace of
        ``xpnn train``'s or ``xpnn tune``'s options); the rest default."""
        options = options if isinstance(options, dict) else vars(options)
        names = {f.name for f in dataclasses.fields(cls)}
        # None: not given (an option without a value), so the default
        return cls(**{k: v for k, v in options.items() if k in names and v is not None})

    def replace(self, **values) -> "Settings":
        """These settings with ``values`` instead (checked again)."""
        return dataclasses.replace(self, **values)

    def changed(self) -> dict:
        """The settings that differ from the defaults, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}


def _opt(name):
    """A setting as the option that gives it: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


DEFAULTS = Settings()


def load_data(settings: Settings) -> dict:
    """The data set (train, val and test splits) the settings name."""
    from . import data as D
    if settings.classes and settings.dataset != "cinic10":
        raise ValueError(f"--classes selects CINIC-10 classes; it does not apply to "
                         f"--dataset {settings.dataset}")
    if settings.dataset == "digits":
        return D.get_digits_data()
    # without --data-dir, looked for where get_CIFAR10_data() looks (and named)
    if settings.dataset == "cifar10":
        return D.get_CIFAR10_data(settings.data_dir)
    classes = settings.classes.split(",") if settings.classes else None
    return D.get_CINIC10_data(settings.data_dir, classes=classes)


def build_model(settings: Settings, data: dict):
    """The model of the settings, sized for ``data`` (its image shape and
    number of classes); weights drawn from NumPy's global RandomState."""
    from .models import ConvNet, FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
    s = settings
    input_dim = tuple(data["X_train"].shape[1:])
    num_classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    flat = int(np.prod(input_dim))
    which = "--arch" if s.arch else f"--model {s.model}"
    takes = () if s.arch else _TAKES[s.model]
    for opt in ("hidden", "filters", "keep"):
        if getattr(s, opt) is not None and opt not in takes:
            raise ValueError(f"--{opt} does not apply to {which}" +
                             (f" (it takes {', '.join('--' + t for t in takes)})" if takes
                              else ""))
    keep = s.keep or 1.0
    scale = s.weight_scale
    if s.arch:
        from .nn import load_arch
        return load_arch(s.arch, input_shape=input_dim, num_classes=num_classes, reg=s.reg,
                         dtype=s.dtype, weight_scale=scale)
    if s.model == "challenge":
        from .nn import challenge_net
        return challenge_net(input_dim, num_classes, reg=s.reg, dtype=s.dtype,
                             weight_scale=scale)
    if s.model == "convnet":
        f = s.filters or 16
        return ConvNet(input_dim=input_dim, conv_blocks=((f,), (2 * f,)),
                       hidden_dims=(s.hidden or 64,), num_classes=num_classes, reg=s.reg,
                       dropout_keep_ratio=keep, weight_scale=scale, dtype=s.dtype)
    if s.model == "threelayer":
        return ThreeLayerConvNet(input_dim=input_dim, num_filters=s.filters or 16,
                                 filter_size=3, hidden_dim=s.hidden or 64,
                                 num_classes=num_classes, weight_scale=scale or 1e-2, reg=s.reg,
                                 dtype=s.dtype)
    if s.model == "fc":
        h = s.hidden or 100
        return FullyConnectedNet([h, h], input_dim=flat, num_classes=num_classes,
                                 normalization="batchnorm", reg=s.reg,
                                 weight_scale=scale or 5e-2, dropout_keep_ratio=keep,
                                 dtype=s.dtype)
    return TwoLayerNet(input_dim=flat, hidden_dim=s.hidden or 100, num_classes=num_classes,
                       weight_scale=scale or 1e-2, reg=s.reg)


def make_solver(settings: Settings, data: dict, model, epochs: int, verbose: bool,
                epoch_callback=None):
    """The Solver the settings describe, for ``epochs`` epochs."""
    from .solver import Solver
    s = settings
    schedule = None if s.lr_schedule is None else \
        {**s.lr_schedule, "warmup_epochs": s.warmup_epochs}
    return Solver(model, data, update_rule=s.update_rule, optim_config={"learning_rate": s.lr},
                  lr_decay=1.0 if schedule else s.lr_decay, lr_schedule=schedule,
                  augment=s.augment, batch_size=s.batch_size, num_epochs=epochs,
                  num_train_samples=1000, print_every=50, checkpoint_name=s.checkpoint,
                  keep_checkpoints=s.keep_checkpoints, verbose=verbose,
                  epoch_callback=epoch_callback)


def resume_solver(path: str, data: dict, epochs: int | None, checkpoint: str | None,
                  verbose: bool, keep_checkpoints: str | None = None):
    """The Solver of a checkpoint written by ``xpnn train --checkpoint``, its
    model rebuilt and its state restored, to train on to ``epochs`` (default:
    the checkpoint's own), saving under ``checkpoint`` with
    ``keep_checkpoints`` (default: the run's own, as it was saving)."""
    from .checkpoint import build_stored_model, load_npz, read_model_section
    from .solver import Solver
    meta, arrays = load_npz(path)
    if meta.get("format") != "xpnn-checkpoint-1" or not isinstance(meta.get("solver"), dict):
        raise ValueError(f"--resume needs a checkpoint written by xpnn train --checkpoint; "
                         f"{path!r} is not one (a saved model holds no training state)")
    sec = read_model_section(path, meta, arrays)
    model = build_stored_model(path, sec, sec["init_kwargs"])
    s = meta["solver"]
    solver = Solver(model, data, update_rule=s["update_rule"], optim_config=s["optim_config"],
                    lr_decay=s["lr_decay"], lr_schedule=s.get("lr_schedule"),
                    augment=s.get("augment"), batch_size=s["batch_size"],
                    num_epochs=epochs or s["num_epochs"],
                    num_train_samples=s["num_train_samples"],
                    num_val_samples=s["num_val_samples"], print_every=s["print_every"],
                    checkpoint_name=checkpoint,
                    keep_checkpoints=keep_checkpoints or s.get("keep_checkpoints", "all"),
                    verbose=verbose)
    return solver.load_checkpoint(path)
