"""Assignment 3's CaptioningSolver: minibatches of COCO captions
(:func:`xpnn.data.sample_coco_minibatch`) through a captioning model's
``loss(features, captions)``, and the Solver's update rules and update
path (one launch for all params on a GPU)."""
from __future__ import annotations

import numpy as np

from . import backend
from .data import check_captioning_split, sample_coco_minibatch
from .layers._util import check_int, check_number
from .optim import update_all
from .solver import _progress, _write, decay_learning_rates, resolve_update_rule

__all__ = ["CaptioningSolver"]

_KWARGS = dict(update_rule="sgd", optim_config=None, lr_decay=1.0, batch_size=100,
               num_epochs=10, print_every=10, verbose=True)


def _host_scalars(values):
    """0-d losses as NumPy scalars of their own dtype (a float32 model's as
    np.float32, as the course's loss_history holds them), each backend's
    in one copy; Python numbers are kept."""
    out = list(values)
    groups: dict = {}
    for i, v in enumerate(out):
        if backend.is_array(v) and not isinstance(v, np.generic):
            groups.setdefault((backend.backend_of(v), str(v.dtype)), []).append(i)
    for idx in groups.values():
        xp = backend.namespace_of(v=out[idx[0]])
        host = np.asarray(backend.to_numpy(xp.stack([xp.reshape(out[i], ()) for i in idx])))
        for i, value in zip(idx, host):
            out[i] = value
    return out


class CaptioningSolver:
    """CaptioningSolver(model, data, update_rule='sgd', optim_config=None,
    lr_decay=1.0, batch_size=100, num_epochs=10, print_every=10,
    verbose=True). ``data`` is what :func:`xpnn.data.load_coco_data`
    returns (its training split is checked here). ``train()`` runs
    num_epochs * max(captions // batch_size, 1) iterations, each on
    batch_size training captions drawn with replacement, prints the loss
    every print_every iterations when verbose, and decays the learning rate
    by lr_decay after each epoch; ``loss_history`` holds every iteration's
    loss as the model returned it (a float32 model's as np.float32)."""

    #: update rules by name; None: xpnn.optim's (a course edition sets its
    #: assignment 3's own optim.py)
    update_rules = None

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_KWARGS))
        if unknown:
            raise ValueError(f"Unrecognized arguments {', '.join(unknown)}; CaptioningSolver "
                             f"takes {', '.join(_KWARGS)}")
        opts = {**_KWARGS, **kwargs}
        if not isinstance(getattr(model, "params", None), dict) or \
                not callable(getattr(model, "loss", None)):
            raise TypeError(f"CaptioningSolver: model must have a params dict and "
                            f"loss(features, captions), got {type(model).__name__}")
        check_captioning_split(data, "train", "CaptioningSolver")
        self.model, self.data = model, data
        self.update_rule_name, self.update_rule, self.optim_config = resolve_update_rule(
            opts["update_rule"], opts["optim_config"], self.update_rules)
        self.lr_decay = check_number("CaptioningSolver: lr_decay", opts["lr_decay"], low=0.0,
                                     low_inclusive=False)
        self.batch_size = check_int("CaptioningSolver: batch_size", opts["batch_size"], 1)
        self.num_epochs = check_int("CaptioningSolver: num_epochs", opts["num_epochs"], 0)
        self.print_every = max(1, check_int("CaptioningSolver: print_every",
                                            opts["print_every"], 0))
        self.verbose = bool(opts["verbose"])
        self._reset()

    def _reset(self):
        self.epoch = 0
        self.best_val_acc = 0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}

    def _step(self):
        captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size,
                                                      split="train")
        loss, grads = self.model.loss(features, captions)
        self.loss_history.append(loss)
        update_all(self.update_rule, self.model.params, grads, self.optim_configs)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """0.0, as the course's: its captioning solver never scored captions
        (it left BLEU as a to-do), and a notebook calling this prints 0."""
        return 0.0

    def train(self):
        """Run the optimisation (see the class docstring)."""
        num_train = self.data["train_captions"].shape[0]
        per_epoch = max(num_train // self.batch_size, 1)
        total = self.num_epochs * per_epoch
        bar = _progress(total, 0, self.verbose)
        try:
            for t in range(total):
                self._step()
                if self.verbose and t % self.print_every == 0:
                    self.loss_history[-1] = _host_scalars(self.loss_history[-1:])[0]
                    _write(bar, "(Iteration %d / %d) loss: %f" % (t + 1, total,
                                                                   self.loss_history[-1]))
                bar.update(1)
                if (t + 1) % per_epoch == 0:
                    self.epoch += 1
                    decay_learning_rates(self.optim_configs, self.lr_decay)
        finally:
            bar.close()
            self.loss_history = _host_scalars(self.loss_history)
