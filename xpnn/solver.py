"""Training loop with the course's Solver interface.

    solver = Solver(model, data, update_rule='adam',
                    optim_config={'learning_rate': 1e-3}, lr_decay=0.95,
                    num_epochs=10, batch_size=100, print_every=100)
    solver.train()

data holds X_train, y_train, X_val, y_val. Minibatches are drawn with
``np.random.choice`` from NumPy's global RandomState, in the course's order,
on every backend (so NumPy and CuPy runs see the same batches). At the end
the model holds the parameters with the best validation accuracy.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings

import numpy as np

from . import backend
from .checkpoint import (PrefixLock, check_fits, epoch_path, flatten_state, load_npz,
                         model_section, read_best_stats, read_model_section, restore_model,
                         save_npz_atomic, unflatten_state)
from .layers._util import check_int, check_number, pad_hw
from .optim import UpdateRule, get_update_rule, update_all

__all__ = ["Solver"]

_KWARGS = dict(update_rule="sgd", optim_config=None, lr_decay=1.0, lr_schedule=None, augment=None,
               batch_size=100, num_epochs=10, num_train_samples=1000, num_val_samples=None,
               checkpoint_name=None, keep_checkpoints="all", print_every=10, verbose=True,
               epoch_callback=None)

_SCHEDULES = {"constant": {}, "cosine": {"min_factor": 0.0},
              "step": {"step_epochs": None, "gamma": 0.1}}


def _check_augment(a, X):
    """The augment dict ({"crop_pad": p, "flip": bool}) with defaults, checked
    against the training images' shape."""
    if a is None:
        return None
    if not isinstance(a, dict) or set(a) - {"crop_pad", "flip"}:
        raise ValueError(f"augment must be a dict with \"crop_pad\" (pixels of zero padding "
                         f"to crop from, an int >= 0) and/or \"flip\" (bool), got {a!r}")
    out = {"crop_pad": check_int("augment['crop_pad']", a.get("crop_pad", 0), 0),
           "flip": a.get("flip", False)}
    if not isinstance(out["flip"], bool):
        raise TypeError(f"augment['flip'] must be True or False, got {out['flip']!r}")
    if X.ndim != 4:
        raise ValueError(f"augment crops and flips images (N, C, H, W); X_train has shape "
                         f"{tuple(X.shape)}")
    side = min(int(X.shape[2]), int(X.shape[3]))
    if 4 * out["crop_pad"] >= side:  # a shift of up to half the image each way
        warnings.warn(
            f"augment crop_pad={out['crop_pad']} on {X.shape[2]}x{X.shape[3]} images moves "
            f"each by up to {out['crop_pad']} pixels either way: half the image can leave "
            f"the crop, and accuracy suffers (on the 8x8 digits, crop:4,flip took validation "
            f"accuracy from 0.98 to 0.41); keep crop_pad below {max(1, side // 4)} here "
            f"(crop:4 suits 32x32 CIFAR-10)", RuntimeWarning, stacklevel=3)
    return out


def _check_schedule(s):
    """The lr_schedule dict, completed with defaults, or a ValueError naming
    what is wrong."""
    if s is None:
        return None
    if not isinstance(s, dict) or s.get("kind") not in _SCHEDULES:
        raise ValueError(f"lr_schedule must be a dict with \"kind\" one of "
                         f"{', '.join(_SCHEDULES)} (and optionally \"warmup_epochs\"), "
                         f"got {s!r}")
    allowed = {"kind", "warmup_epochs", *_SCHEDULES[s["kind"]]}
    extra = sorted(set(s) - allowed)
    if extra:
        raise ValueError(f"lr_schedule {s['kind']!r} takes {', '.join(sorted(allowed))}; "
                         f"unknown: {', '.join(extra)}")
    out = {"warmup_epochs": 0.0, **_SCHEDULES[s["kind"]], **s}
    check_number("lr_schedule['warmup_epochs']", out["warmup_epochs"], 0.0)
    if s["kind"] == "cosine":
        check_number("lr_schedule['min_factor']", out["min_factor"], 0.0, 1.0)
    if s["kind"] == "step":
        if out["step_epochs"] is None:
            raise ValueError("lr_schedule 'step' needs step_epochs (multiply the learning "
                             "rate by gamma every step_epochs epochs)")
        check_number("lr_schedule['step_epochs']", out["step_epochs"], 0.0,
                     low_inclusive=False)
        check_number("lr_schedule['gamma']", out["gamma"], 0.0)
    return out


class Solver:
    """Trains a model (anything with ``params`` and ``loss(X, y=None)``).

    Keyword arguments (all optional, course defaults): update_rule ('sgd',
    a name from xpnn.optim or a callable), optim_config (dict copied per
    parameter), lr_decay (per epoch), lr_schedule (instead of lr_decay: the
    learning rate of every iteration from optim_config's, by a dict with
    "kind" "cosine" (down to min_factor times it, default 0, at the last
    iteration), "step" (times gamma, default 0.1, every step_epochs epochs)
    or "constant", and optionally "warmup_epochs" (a linear ramp from 0 over
    that many epochs first); see :meth:`learning_rate_at`), augment (training
    batches only: {"crop_pad": p} takes a random H x W crop of each image
    zero-padded by p, {"flip": True} mirrors each image left-right with
    probability 1/2; drawn from NumPy's global RandomState after the batch
    indices, so a checkpoint resumes exactly), batch_size, num_epochs,
    num_train_samples / num_val_samples (subsample sizes for the accuracy
    checks; None = all), checkpoint_name (write
    ``<name>_epoch_<e>.npz`` after every epoch), keep_checkpoints ("all",
    the course's way; "last": only the newest epoch's file; "best": the
    newest and the one of the best validation accuracy; only files this
    Solver wrote are removed), print_every, verbose
    (print progress and show a progress bar), epoch_callback (called with
    the Solver after each epoch's accuracy check; an exception it raises
    stops training, as a hyperparameter search's pruner does). Unknown
    keywords raise.
    """

    #: update rules by name; None: xpnn.optim's (a course edition sets its own)
    update_rules = None
    #: a NaN or infinite loss: "stop" raises FloatingPointError (the model
    #: keeps its best or earlier params); "continue" warns once and trains on,
    #: as the course's Solver does (the course editions' Solver)
    on_nan = "stop"
    #: the best params come back with the batch-norm running statistics of
    #: the same epoch, so the model scores what best_val_acc says; False: the
    #: course's Solver, whose model keeps the last epoch's statistics (the
    #: course editions' Solver, whose notebooks print what that gives)
    keep_best_stats = True

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_KWARGS))
        if unknown:
            import difflib
            from .optim import UPDATE_RULES
            rule_keys = set().union(*(r.known_keys() for r in UPDATE_RULES.values()
                                      if isinstance(r, UpdateRule)))

            def hint(k):
                if k in rule_keys:
                    return f"{k!r} (an update rule's setting: optim_config={{{k!r}: ...}})"
                m = difflib.get_close_matches(str(k), list(_KWARGS), n=1)
                return f"{k!r} (did you mean {m[0]!r}?)" if m else repr(k)
            near = [hint(k) for k in unknown]
            raise ValueError(f"Unrecognized arguments {', '.join(unknown)}: "
                             f"{', '.join(near)}; Solver accepts {', '.join(_KWARGS)}")
        opts = {**_KWARGS, **kwargs}
        self.model = model
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict with X_train, y_train, X_val and y_val, "
                            f"got {type(data).__name__}")
        for key in ("X_train", "y_train", "X_val", "y_val"):
            if key not in data:
                raise ValueError(f"data must contain X_train, y_train, X_val and y_val; "
                                 f"missing {key!r}")
        for key in ("X_train", "y_train", "X_val", "y_val"):
            if not backend.is_array(data[key]):
                raise TypeError(f"data[{key!r}] must be an array (NumPy, CuPy or "
                                f"array-api-strict), got {type(data[key]).__name__}")
        if data["X_train"].shape[0] == 0:
            raise ValueError("data['X_train'] holds no samples; there is nothing to train on")
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]
        for xk, yk in (("X_train", "y_train"), ("X_val", "y_val")):
            if data[xk].shape[0] != data[yk].shape[0]:
                raise ValueError(f"{xk} has {data[xk].shape[0]} samples but {yk} has "
                                 f"{data[yk].shape[0]}")
        self.update_rule_name, self.update_rule, self.optim_config = resolve_update_rule(
            opts["update_rule"], opts["optim_config"], self.update_rules)
        self.lr_decay = check_number("lr_decay", opts["lr_decay"], 0.0)
        self.lr_schedule = _check_schedule(opts["lr_schedule"])
        if self.lr_schedule is not None:
            if self.lr_decay != 1.0:
                raise ValueError("give lr_decay or lr_schedule, not both (lr_decay multiplies "
                                 "the rate each epoch; a schedule sets it each iteration)")
            if "learning_rate" not in self.optim_config:
                raise ValueError("lr_schedule scales optim_config['learning_rate']; give it")
        self.augment = _check_augment(opts["augment"], self.X_train)
        self.batch_size = check_int("batch_size", opts["batch_size"], 1)
        self.num_epochs = check_int("num_epochs", opts["num_epochs"], 0)
        for key in ("num_train_samples", "num_val_samples"):
            if opts[key] is not None:
                check_int(key, opts[key], 1)
        self.num_train_samples = opts["num_train_samples"]
        self.num_val_samples = opts["num_val_samples"]
        self.checkpoint_name = opts["checkpoint_name"]
        if opts["keep_checkpoints"] not in ("all", "last", "best"):
            raise ValueError(f"keep_checkpoints must be 'all', 'last' or 'best', got "
                             f"{opts['keep_checkpoints']!r}")
        self.keep_checkpoints = opts["keep_checkpoints"]
        self._written: list = []  # (path, val acc) of the epoch files written, oldest first
        self.print_every = check_int("print_every", opts["print_every"], 1)
        self.verbose = bool(opts["verbose"])
        if opts["epoch_callback"] is not None and not callable(opts["epoch_callback"]):
            raise TypeError(f"epoch_callback must be callable, got {opts['epoch_callback']!r}")
        self.epoch_callback = opts["epoch_callback"]
        self._data_cache: dict = {}
        self._labels_ok = False
        self._labels_trusted = False
        self._start_params = None
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self):
        self.epoch = 0
        self.iteration = 0  # iterations completed
        self.best_val_acc = 0.0
        self.best_params: dict = {}
        self.best_bn_stats: list | None = None  # the running statistics of best_params
        self.loss_history: list = []
        self._checked = 0  # losses verified finite so far
        self._nan_warned = False
        self._floats = 0   # losses already read back to floats
        self.train_acc_history: list = []
        self.val_acc_history: list = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        self._given_config = dict(self.optim_config)  # what optim_configs were told last
        self.last_checkpoint = None

    def _backend(self):
        """Where the model computes: the active backend, except for a model
        that does not move its params itself (a course-written model) and
        holds them all on one backend: it gets its batches there (NumPy
        batches for a notebook's NumPy model)."""
        own = None if hasattr(self.model, "to_device") else \
            backend.common_backend(self.model.params.values())
        return own or backend.get_backend()

    def _readback_is_free(self):
        """Whether the model's losses can be read as they come (host memory):
        then each is checked for NaN before its update."""
        return backend.get(self._backend()).readback_is_free

    def _device_data(self, X):
        """X on the model's backend when it fits there (whole data set
        resident), else None and minibatches are moved one at a time."""
        name = self._backend()
        key = (id(X), name)
        if key not in self._data_cache:
            self._data_cache[key] = (backend.to_device(X, name)
                                     if backend.fits_on_device(X.nbytes) else None)
        return self._data_cache[key]

    def _rows(self, X, idx):
        """Rows ``idx`` (a NumPy index array) of X, on the active backend."""
        dev = self._device_data(X)
        if dev is None:  # too big for the device: gather on the host, move the batch
            return backend.to_device(np.asarray(backend.to_numpy(X))[idx], self._backend())
        return backend.take_rows(dev, idx)

    # ------------------------------------------------------------------ steps
    def _iterations_per_epoch(self):
        return max(self.X_train.shape[0] // self.batch_size, 1)

    def learning_rate_at(self, iteration):
        """The learning rate of 0-based ``iteration`` under ``lr_schedule``
        (with none: optim_config's, decayed by lr_decay per finished epoch)."""
        base = float(self.optim_config.get("learning_rate", float("nan")))
        per_epoch = self._iterations_per_epoch()
        s = self.lr_schedule
        if s is None:
            return base * self.lr_decay ** (iteration // per_epoch)
        total = self.num_epochs * per_epoch
        if s["kind"] == "cosine":
            lo = s["min_factor"]
            f = lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * iteration / max(total - 1, 1)))
        elif s["kind"] == "step":
            f = s["gamma"] ** math.floor(iteration / (s["step_epochs"] * per_epoch) + 1e-12)
        else:
            f = 1.0
        warm = s["warmup_epochs"] * per_epoch  # a linear ramp up to 1 at iteration warm
        return base * f * min(1.0, (iteration + 1) / (warm + 1))

    def _augmented(self, X):
        """Random crops of the zero-padded batch and random left-right flips,
        on the batch's own device; the draws come from NumPy's global state."""
        xp = backend.namespace_of(X=X)
        N, _, H, W = X.shape
        p = self.augment["crop_pad"]
        if p:
            off = np.random.randint(0, 2 * p + 1, size=(N, 2))
            padded = pad_hw(xp, X, p)
            X = xp.stack([padded[i, :, dy:dy + H, dx:dx + W]
                          for i, (dy, dx) in enumerate(off.tolist())])
        if self.augment["flip"]:
            flip = backend.to_device(np.random.rand(N) < 0.5, backend.backend_of(X))
            X = xp.where(xp.reshape(flip, (N, 1, 1, 1)), xp.flip(X, axis=3), X)
        return X

    def _step(self):
        """One iteration: this iteration's learning rate, a minibatch, the
        loss and gradients, the NaN check (on the host: before the update),
        the update."""
        if self.lr_schedule is not None:
            lr = self.learning_rate_at(self.iteration)
            for cfg in self.optim_configs.values():
                cfg["learning_rate"] = lr
        X_batch, y_batch = self._next_batch()
        # every label was checked once, in train(), where the model declares its classes
        with backend.labels_checked() if self._labels_trusted else contextlib.nullcontext():
            loss, grads = self.model.loss(X_batch, y_batch)
        self.loss_history.append(loss)
        if self._readback_is_free() and not math.isfinite(float(loss)):
            self._check_finite()  # raises before a NaN update reaches the weights
        self._update(grads)

    def _next_batch(self):
        """batch_size training rows drawn with replacement by
        ``np.random.choice`` (the course's order), augmented when asked."""
        batch_mask = np.random.choice(self.X_train.shape[0], self.batch_size)
        X_batch = self._rows(self.X_train, batch_mask)
        y_batch = self._rows(self.y_train, batch_mask)
        if self.augment is not None:
            X_batch = self._augmented(X_batch)
        return X_batch, y_batch

    def _update(self, grads):
        """The update rule on every param (on a GPU, a rule with a kernel is
        one launch for all)."""
        update_all(self.update_rule, self.model.params, grads, self.optim_configs)

    def _check_labels(self):
        """Check every training and validation label once: integers, >= 0,
        and below the number of classes where the model declares it
        (``num_classes``, as every xpnn model does), so the steps need not
        check (off the host, each check waits for the device). The model is
        not run: a course-written model (its batch norm, say) may not take a
        test-mode pass before training, and its loss checks the range of
        each batch's labels itself."""
        if self._labels_ok:
            return
        C = getattr(self.model, "num_classes", None)
        C = int(C) if isinstance(C, (int, np.integer)) and C > 0 else None
        for name, y in (("y_train", self.y_train), ("y_val", self.y_val)):
            xp = backend.namespace_of(**{name: y})
            if not xp.isdtype(y.dtype, "integral"):
                raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
            if y.shape[0]:
                lo, hi = backend.label_range(y)
                if lo < 0 or (C is not None and hi >= C):
                    scored = f"the model scores {C} classes; labels must lie in [0, {C - 1}]" \
                        if C is not None else "class labels are >= 0"
                    raise ValueError(f"{name} holds labels in [{lo}, {hi}] but {scored}")
        # a model that reads word indices (an Embedding first): they index a
        # table, so they are checked here too, once
        words = self.model.modules[0].num_embeddings \
            if getattr(self.model, "index_input", False) else None
        for name, X in (("X_train", self.X_train), ("X_val", self.X_val)):
            if words is not None and X.shape[0]:
                lo, hi = backend.label_range(X)
                if lo < 0 or hi >= words:
                    raise ValueError(f"{name} holds word indices in [{lo}, {hi}] but the model's "
                                     f"Embedding has {words} words: they must lie in "
                                     f"[0, {words - 1}]")
        self._labels_trusted = C is not None
        self._labels_ok = True

    def _params_finite(self):
        """Whether every parameter is finite (an overflowing model must not
        become the best one); one read-back off the host."""
        values = list(self.model.params.values())
        if not values:
            return True
        xp = backend.namespace_of(p=values[0])
        flags = xp.stack([xp.all(xp.isfinite(v)) for v in values])
        return bool(np.all(backend.to_numpy(flags)))

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of (a random subsample of num_samples of) X classified as
        y; for sequence scores, the fraction of time steps."""
        N = X.shape[0]
        idx = None
        if num_samples is not None and N > num_samples:
            idx = np.random.choice(N, num_samples)
            N = num_samples
        xp = backend.namespace(self._backend())
        correct = 0
        for start in range(0, N, batch_size):
            sel = np.arange(start, min(start + batch_size, N))
            rows = idx[sel] if idx is not None else sel
            scores = self.model.loss(self._rows(X, rows))
            pred = xp.argmax(scores, axis=-1)   # per step for (N, T, classes) scores
            yb = self._rows(y, rows)
            correct = correct + xp.sum(xp.astype(pred == xp.astype(yb, pred.dtype), xp.int64))
        per_sample = int(np.prod(y.shape[1:]))   # labels per sample: 1, or T steps
        # one read-back per call, through to_numpy (counted by the GPU tests)
        return float(backend.to_numpy(correct)) / (N * per_sample) if N else 0.0

    def _read_losses(self, upto=None):
        """Turn the recorded losses before ``upto`` into floats with ONE
        device-to-host transfer (a GPU step never waits for its loss)."""
        upto = len(self.loss_history) if upto is None else upto
        pending = list(range(self._floats, upto))  # entries before _floats are floats
        if not pending:
            return
        vals = backend.read_floats([self.loss_history[i] for i in pending])
        for i, v in zip(pending, vals):
            self.loss_history[i] = v
        self._floats = upto

    def _check_finite(self):
        """Raise if a loss recorded since the last check is NaN or infinite,
        naming the first such iteration; the model keeps the best params."""
        self._read_losses()
        for i in range(self._checked, len(self.loss_history)):
            v = self.loss_history[i]
            if not math.isfinite(v) and self.on_nan == "continue":
                if not self._nan_warned:
                    self._nan_warned = True
                    warnings.warn(
                        f"the loss is {v} at iteration {i + 1}: training diverged; as the "
                        f"course's Solver does, this one goes on (xpnn's own Solver stops "
                        f"here); lower the learning rate", RuntimeWarning, stacklevel=4)
                break
            if not math.isfinite(v):
                if self.best_params:
                    self._restore_best()
                    kept = (f"The model keeps the best parameters so far (val acc "
                            f"{self.best_val_acc:.4f}).")
                elif self._readback_is_free() and self._params_finite():
                    # checked before the update: still finite
                    kept = "The model keeps its parameters from before that step."
                else:  # off the host, or an earlier update overflowed the params
                    self.model.params = dict(self._start_params or self.model.params)
                    kept = ("The model is back at its parameters from the start of this "
                            "train() call (there is no best yet).")
                # reported once: a train() after lowering the rate goes on from
                # here (the host's failed step was not applied; its loss goes)
                del self.loss_history[self.iteration:]
                self._checked = self._floats = len(self.loss_history)
                kept += self._restart_rule_state()
                lr = self.optim_config.get("learning_rate", getattr(
                    self.update_rule, "defaults", {}).get("learning_rate"))
                # a tenth of the rate, but no more than the rule's own default: a
                # wild rate (1e300) would otherwise take hundreds of tries
                default = getattr(self.update_rule, "defaults", {}).get("learning_rate")
                example = f"{min(lr / 10, default or lr / 10):g}" \
                    if isinstance(lr, (int, float)) else "1e-4"
                raise FloatingPointError(
                    f"training diverged: the loss is {v} at iteration {i + 1}; lower the "
                    f"learning rate. {kept} To go on from here with a lower rate: "
                    f"solver.optim_config['learning_rate'] = {example}; solver.train()")
        self._checked = len(self.loss_history)

    def _restart_rule_state(self):
        """After a divergence: the update rule's state (momentum's velocity,
        Adam's moments and step count), grown from the steps that diverged,
        is dropped, so a train() with a lower rate starts it afresh from the
        params kept; what to add to the error."""
        rule = self.update_rule
        if not isinstance(rule, UpdateRule) or not (rule.state or rule.counter):
            return ""
        for cfg in self.optim_configs.values():
            for key in (*rule.state, rule.counter):
                cfg.pop(key, None)
        return f" The {self.update_rule_name} state starts afresh."

    def train(self):
        """Run (or continue) the optimisation for num_epochs epochs. With a
        checkpoint_name, no other training may use the same name meanwhile
        (:class:`xpnn.checkpoint.PrefixLock`)."""
        if self.checkpoint_name is None:
            return self._train()
        with PrefixLock(self.checkpoint_name):
            return self._train()

    def _pass_on_config_changes(self):
        """A setting changed in ``optim_config`` since the last train() (the
        learning rate lowered after a divergence, say) goes to every param's
        ``optim_configs`` entry, which the rule reads: from now on each
        param takes the new value (lr_decay then decays it each epoch)."""
        changed = {k: v for k, v in self.optim_config.items()
                   if k not in self._given_config or self._given_config[k] != v}
        if not changed:
            return
        resolve_update_rule(self.update_rule, changed)   # a typo is refused, named
        for key, value in changed.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"optim_config[{key!r}] must be a number, got {value!r}")
            check_number(f"optim_config[{key!r}]", value, 0.0)
        for cfg in self.optim_configs.values():
            cfg.update(changed)
        self._given_config = dict(self.optim_config)

    def _train(self):
        per_epoch = self._iterations_per_epoch()
        total = self.num_epochs * per_epoch
        self._pass_on_config_changes()
        self._check_labels()
        # off the host a NaN is seen only at a check, after some updates: keep
        # where this call started, to return to if there is no best yet
        self._start_params = {k: _copy(v) for k, v in self.model.params.items()}
        bar = _progress(total, self.iteration, self.verbose)
        try:
            for t in range(self.iteration, total):
                self._step()
                self.iteration = t + 1
                self._guard_and_report(t, total, bar)
                epoch_end = self.iteration % per_epoch == 0
                if epoch_end:
                    self._end_epoch()
                if t == 0 or epoch_end or self.iteration == total:
                    self._evaluate(bar)
                if epoch_end and self.epoch_callback is not None:
                    self.epoch_callback(self)
                if epoch_end or self.iteration == total:
                    self._save_checkpoint()
        finally:
            bar.close()
        self._read_losses()
        if self.best_params:
            self._restore_best()

    def _restore_best(self):
        """The model takes best_params (and, with keep_best_stats, the
        batch-norm running statistics recorded with them)."""
        self.model.params = dict(self.best_params)
        if self.keep_best_stats and self.best_bn_stats is not None:
            _set_bn_stats(self.model, self.best_bn_stats)

    def _guard_and_report(self, t, total, bar):
        """After step ``t``: the NaN check (on the host ``_step`` made it
        before the update; off it, reading the loss back costs a device sync,
        so every print_every steps), the loss line, the progress bar."""
        if t % self.print_every == 0:
            self._check_finite()    # reads every loss so far back as a float
            if self.verbose:
                _write(bar, "(Iteration %d / %d) loss: %f" % (t + 1, total,
                                                               self.loss_history[t]))
        bar.update(1)

    def _end_epoch(self):
        """Count the epoch; decay every learning rate by lr_decay."""
        self.epoch += 1
        decay_learning_rates(self.optim_configs, self.lr_decay)

    def _evaluate(self, bar=None):
        """Train and validation accuracy into the histories (printed when
        verbose); the params become the best ones when validation accuracy
        improves and they are finite."""
        self._check_finite()
        train_acc = self.check_accuracy(self.X_train, self.y_train,
                                        num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if self.verbose:
            _write(bar, "(Epoch %d / %d) train acc: %f; val_acc: %f"
                   % (self.epoch, self.num_epochs, train_acc, val_acc))
        if val_acc > self.best_val_acc and self._params_finite():
            self.best_val_acc = val_acc
            self.best_params = {k: _copy(v) for k, v in self.model.params.items()}
            self.best_bn_stats = _bn_stats(self.model)

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        self._read_losses()
        return {
            "model": model_section(self.model),  # what save_model writes, too
            "solver": {"update_rule": self.update_rule_name, "optim_config": self.optim_config,
                       "lr_decay": self.lr_decay, "lr_schedule": self.lr_schedule,
                       "augment": self.augment,
                       "batch_size": self.batch_size,
                       "num_epochs": self.num_epochs,
                       "num_train_samples": self.num_train_samples,
                       "num_val_samples": self.num_val_samples, "print_every": self.print_every,
                       "keep_checkpoints": self.keep_checkpoints},
            "epoch": self.epoch, "iteration": self.iteration,
            "best_val_acc": self.best_val_acc, "best_params": self.best_params,
            "best_bn_stats": self.best_bn_stats,
            "optim_configs": self.optim_configs,
            "loss_history": list(self.loss_history),
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
            "rng": backend.rng_state(),
        }

    def save_checkpoint(self, path):
        """Write the whole training state to ``path`` (atomically)."""
        arrays: dict = {}
        meta = flatten_state(self._state(), "", arrays)
        meta["format"] = "xpnn-checkpoint-1"
        save_npz_atomic(path, meta, arrays)
        self.last_checkpoint = path
        return path

    def _save_checkpoint(self):
        """The epoch's checkpoint; then, as keep_checkpoints says, the
        earlier epoch files this Solver wrote that are no longer kept."""
        if self.checkpoint_name is None:
            return
        path = self.save_checkpoint(epoch_path(self.checkpoint_name, self.epoch))
        acc = self.val_acc_history[-1] if self.val_acc_history else 0.0
        self._written = [(p, a) for p, a in self._written if p != path] + [(path, acc)]
        if self.keep_checkpoints == "all":
            return
        keep = {path}
        if self.keep_checkpoints == "best":
            keep.add(max(self._written, key=lambda pa: pa[1])[0])  # the first best on ties
        for p, _ in self._written:
            if p not in keep and os.path.exists(p):
                os.remove(p)
        self._written = [(p, a) for p, a in self._written if p in keep]

    def load_checkpoint(self, path):
        """Restore params, running stats, optimizer state, histories, epoch,
        iteration and the random state (NumPy's and the GPU's) from
        ``path``; ``train()`` then continues exactly where the saved run
        was. The checkpoint must come from a model like this one (same class
        and settings, same parameter shapes); everything is checked before
        anything changes, so a refused file leaves the Solver as it was."""
        meta, arrays = load_npz(path)
        if meta.get("format") != "xpnn-checkpoint-1":
            raise ValueError(f"{path!r} is not an xpnn solver checkpoint")
        sec = read_model_section(path, meta, arrays)
        try:
            state = unflatten_state(meta, arrays)
            fields = {k: state[k] for k in ("epoch", "iteration", "best_val_acc", "best_params",
                                            "optim_configs", "loss_history",
                                            "train_acc_history", "val_acc_history", "rng")}
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"checkpoint {path!r} is incomplete or malformed "
                             f"({type(exc).__name__}: {exc})") from None
        try:
            check_fits(self.model, sec)
        except ValueError as exc:
            raise ValueError(f"checkpoint {path!r} does not fit this model: {exc}") from None
        best_stats = read_best_stats(path, meta, arrays, sec["bn_params"])
        dev = self._backend()  # decided before the params are replaced
        restore_model(self.model, sec, dev, reg=False)
        self.epoch, self.iteration = fields["epoch"], fields["iteration"]
        self.best_val_acc = fields["best_val_acc"]
        self.best_params = backend.to_device(fields["best_params"], dev)
        # older checkpoints have none: the best params then come back alone
        self.best_bn_stats = None if best_stats is None else backend.to_device(best_stats, dev)
        self.optim_configs = backend.to_device(fields["optim_configs"], dev)
        self._given_config = dict(self.optim_config)
        self.loss_history = list(fields["loss_history"])
        self._checked = self._floats = len(self.loss_history)
        self.train_acc_history = list(fields["train_acc_history"])
        self.val_acc_history = list(fields["val_acc_history"])
        backend.set_rng_state(fields["rng"])
        self._adopt_epoch_files()
        return self

    def _adopt_epoch_files(self):
        """A resumed run saving under its own prefix goes on keeping as it
        did: the epoch files it wrote before (up to the epoch resumed) count
        as this Solver's, so keep_checkpoints "best" weighs them too."""
        self._written = []
        if self.checkpoint_name is None:
            return
        for e in range(1, self.epoch + 1):
            path = epoch_path(self.checkpoint_name, e)
            if os.path.isfile(path) and e < len(self.val_acc_history):
                self._written.append((path, self.val_acc_history[e]))


_STAT_KEYS = ("running_mean", "running_var")


def _bn_stats(model):
    """Copies of the batch-norm running statistics of ``model`` (one dict per
    ``bn_params`` entry, holding those it has); None for a model without."""
    entries = getattr(model, "bn_params", None)
    if not entries:
        return None
    return [{k: _copy(p[k]) for k in _STAT_KEYS if k in p} if isinstance(p, dict) else {}
            for p in entries]


def _set_bn_stats(model, stats):
    """Put ``stats`` (from :func:`_bn_stats`) back into the model's entries, in
    place (a layer keeps its entry); entries the model lacks are skipped."""
    for p, saved in zip(getattr(model, "bn_params", None) or [], stats):
        if isinstance(p, dict) and isinstance(saved, dict):
            for k in _STAT_KEYS:
                if k in saved and k in p:
                    p[k] = _copy(saved[k])


def _copy(v):
    xp = backend.namespace_of(v=v)
    return xp.asarray(v, copy=True)


class _NoBar:
    def update(self, *_):
        pass

    def close(self):
        pass


def decay_learning_rates(optim_configs, lr_decay):
    """Every param's learning rate times lr_decay (the rules fill it in
    with their default at the first step)."""
    for cfg in optim_configs.values():
        if "learning_rate" in cfg:
            cfg["learning_rate"] *= lr_decay


def resolve_update_rule(rule, optim_config, rules=None):
    """(name, rule function, a copy of optim_config) for a Solver's
    ``update_rule`` (a name, looked up in ``rules`` when given, else in
    xpnn.optim, or a callable); a config key the rule does not read is
    refused here, not at the first step."""
    name = rule if isinstance(rule, str) else getattr(rule, "__name__", "custom")
    if isinstance(rule, str) and rules is not None:
        if rule not in rules:
            raise ValueError(f"unknown update rule {rule!r}; valid rules are "
                             f"{', '.join(rules)}")
        rule = rules[rule]
    rule = get_update_rule(rule)
    if optim_config is not None and not isinstance(optim_config, dict):
        raise TypeError(f"optim_config must be a dict, got {type(optim_config).__name__}")
    config = dict(optim_config or {})
    if isinstance(rule, UpdateRule) and not config.keys() <= rule.known_keys():
        rule.refuse_unknown(config)
    return name, rule, config


def _progress(total, initial, verbose):
    if not verbose:
        return _NoBar()
    from tqdm.auto import tqdm
    # disable=None: a bar on terminals, nothing in logs and pipes
    return tqdm(total=total, initial=initial, unit="it", leave=False, mininterval=0.5,
                disable=None)


def _write(bar, line):
    """A line above the progress bar, or printed when there is none."""
    if bar is None:
        print(line)
    else:
        bar.write(line)
