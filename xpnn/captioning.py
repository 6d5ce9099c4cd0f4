"""Assignment 3's CaptioningSolver: minibatches of COCO captions
(:func:`xpnn.data.sample_coco_minibatch`) through a captioning model's
``loss(features, captions)``, and the Solver's update rules and update
path (one launch for all params on a GPU)."""
from __future__ import annotations

from . import backend
from .optim import update_all
from .solver import _progress, _write, decay_learning_rates, resolve_update_rule

__all__ = ["CaptioningSolver"]

_KWARGS = dict(update_rule="sgd", optim_config=None, lr_decay=1.0, batch_size=100,
               num_epochs=10, print_every=10, verbose=True)


class CaptioningSolver:
    """CaptioningSolver(model, data, update_rule='sgd', optim_config=None,
    lr_decay=1.0, batch_size=100, num_epochs=10, print_every=10,
    verbose=True). ``data`` is what :func:`xpnn.data.load_coco_data`
    returns. ``train()`` runs num_epochs * max(captions // batch_size, 1)
    iterations, each on batch_size training captions drawn with replacement,
    prints the loss every print_every iterations when verbose, and decays
    the learning rate by lr_decay after each epoch; ``loss_history`` holds
    every iteration's loss."""

    #: update rules by name; None: xpnn.optim's (a course edition sets its own)
    update_rules = None

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_KWARGS))
        if unknown:
            raise ValueError(f"Unrecognized arguments {', '.join(unknown)}; CaptioningSolver "
                             f"takes {', '.join(_KWARGS)}")
        opts = {**_KWARGS, **kwargs}
        for key in ("train_captions", "train_image_idxs", "train_features", "train_urls"):
            if key not in data:
                raise KeyError(f"CaptioningSolver: data has no {key!r} (load it with "
                               f"load_coco_data)")
        self.model, self.data = model, data
        self.update_rule_name, self.update_rule, self.optim_config = resolve_update_rule(
            opts["update_rule"], opts["optim_config"], self.update_rules)
        self.lr_decay = float(opts["lr_decay"])
        self.batch_size = int(opts["batch_size"])
        self.num_epochs = int(opts["num_epochs"])
        self.print_every = max(1, int(opts["print_every"]))
        self.verbose = bool(opts["verbose"])
        if self.batch_size < 1 or self.num_epochs < 0:
            raise ValueError(f"batch_size must be >= 1 and num_epochs >= 0, got "
                             f"{self.batch_size} and {self.num_epochs}")
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
        from .data import sample_coco_minibatch
        captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size,
                                                      split="train")
        loss, grads = self.model.loss(features, captions)
        self.loss_history.append(loss)
        update_all(self.update_rule, self.model.params, grads, self.optim_configs)

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
                    self.loss_history[-1] = backend.read_floats(self.loss_history[-1:])[0]
                    _write(bar, "(Iteration %d / %d) loss: %f" % (t + 1, total,
                                                                   self.loss_history[-1]))
                bar.update(1)
                if (t + 1) % per_epoch == 0:
                    self.epoch += 1
                    decay_learning_rates(self.optim_configs, self.lr_decay)
        finally:
            bar.close()
            self.loss_history = backend.read_floats(self.loss_history)
