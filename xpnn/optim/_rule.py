"""What an update rule is: one class holding all of it (Chainer's
``UpdateRule`` is the model).

A rule declares its hyperparameters with their defaults, the names of its
state arrays, how it advances a step counter, the scalars its step reads,
the step itself as array-API code, and optionally the same step as the body
of a CUDA elementwise kernel, which a GPU runs as one launch per parameter,
or one for all of them (:func:`xpnn.optim.update_all`). A rule without a
kernel body runs its array step everywhere.

An instance is the course's update-rule function:
``rule(w, dw, config=None) -> (next_w, config)``; ``config`` is filled
with defaults (``setdefault``) and holds the state, created on ``w``'s
device as zeros at the first step.
"""
from __future__ import annotations

from .. import backend
from ..layers._util import check_number

__all__ = ["UpdateRule"]


class UpdateRule:
    """Subclass and set :attr:`name`, :attr:`defaults`, :attr:`state`, then
    write :meth:`step` (and :attr:`kernel` with :meth:`scalars` for a GPU
    kernel); :func:`xpnn.optim.rules.register` makes it known by name."""

    #: the name users give (``Solver(update_rule=...)``, ``xpnn train
    #: --update-rule``)
    name = ""
    #: hyperparameters (and counters) with their defaults; each must be a
    #: finite number >= 0
    defaults: dict = {}
    #: state arrays in ``config``, zeros like ``w`` at the first step, in the
    #: kernel's argument order
    state: tuple = ()
    #: a counter in ``config`` advanced by one before each step (Adam's t)
    counter: str | None = None
    #: the step as the body of a CUDA elementwise kernel (C; ``T`` is the
    #: array type): it reads ``w``, ``dw``, each state array by its name and
    #: each scalar of :meth:`scalars` by its name (as float64, cast to ``T``
    #: before use, as NumPy casts a Python float), and assigns ``w_out`` and
    #: ``<state>_out``. Written to follow :meth:`step` operation by operation,
    #: so both give the same numbers. None: no kernel.
    kernel: str | None = None

    def __init__(self):  # pragma: no mutate block (runs at import)
        self.__name__ = self.__qualname__ = self.name
        self.__doc__ = type(self).__doc__

    def __repr__(self):
        return f"<xpnn update rule {self.name}>"

    # ------------------------------------------------------------ to write
    def step(self, xp, w, dw, config, *state):
        """The array-API step: (new w, *new state arrays), reading the
        hyperparameters from ``config`` as given (a NumPy float64 learning
        rate promotes as it does in the course's code)."""
        raise NotImplementedError

    def scalars(self, config) -> dict:
        """The kernel's scalar arguments by name, as Python floats, each
        computed as :meth:`step` computes it (from a config whose counter
        has advanced)."""
        return {}

    # ------------------------------------------------------------ the machinery
    def setup(self, w, dw, config):
        """(namespace, config): ``w`` and ``dw`` checked, ``config`` filled
        with the defaults and every hyperparameter checked."""
        xp = backend.namespace_of(w=w, dw=dw)
        if tuple(w.shape) != tuple(dw.shape):
            raise ValueError(f"update rule: dw has shape {tuple(dw.shape)} but w has "
                             f"{tuple(w.shape)}; they must match")
        if config is None:
            config = {}
        elif not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        if not config.keys() <= self.known_keys():
            self.refuse_unknown(config)
        for k, v in self.defaults.items():
            config.setdefault(k, v)
        for k in self.defaults:  # every hyperparameter is a finite number >= 0
            check_number(f"update rule config[{k!r}]", config[k], 0.0)
        return xp, config

    def known_keys(self):
        """The keys a config of this rule may hold: hyperparameters and the
        counter (both in :attr:`defaults`), state arrays."""
        return {*self.defaults, *self.state}

    def refuse_unknown(self, config):
        """Raise ValueError naming a config key this rule does not read (a typo
        such as ``learning_rte`` would otherwise leave the default in force)."""
        import difflib
        known = sorted(self.known_keys())
        for key in config:
            if key not in known:
                near = difflib.get_close_matches(str(key), known)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(f"update rule {self.name}: unknown config key {key!r}{hint}; "
                                 f"it reads {', '.join(known)}")

    def advance(self, config):
        """Advance the step counter, if the rule has one."""
        if self.counter is not None:
            config[self.counter] = int(config[self.counter]) + 1

    def state_arrays(self, xp, config, w):
        """The state arrays, zeros like ``w`` where there are none yet."""
        for key in self.state:
            if config.get(key) is None:
                config[key] = xp.zeros_like(w)
        return [config[key] for key in self.state]

    def kernel_spec(self):
        """(inputs, outputs, body) of the CUDA elementwise kernel, or None."""
        if self.kernel is None:
            return None
        config = dict(self.defaults)
        self.advance(config)
        arrays = ["w", "dw", *self.state]
        ins = ", ".join([f"T {a}" for a in arrays] +
                        [f"float64 {s}" for s in self.scalars(config)])
        outs = ", ".join(f"T {a}_out" for a in ["w", *self.state])
        return ins, outs, self.kernel

    def __call__(self, w, dw, config=None):
        xp, config = self.setup(w, dw, config)
        self.advance(config)
        state = self.state_arrays(xp, config, w)
        out = backend.kernels(w, dw).update(self, w, dw, state, config)
        if out is None:
            out = self.step(xp, w, dw, config, *state)
        for key, value in zip(self.state, out[1:]):
            config[key] = value
        return out[0], config
