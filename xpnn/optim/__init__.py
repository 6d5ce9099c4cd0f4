"""First-order update rules with the course interface.

Each rule is ``rule(w, dw, config=None) -> (next_w, config)``: ``w`` and
``dw`` are arrays of one backend, ``config`` a dict of hyperparameters and
state that the rule fills with defaults (``setdefault``) and updates. State
arrays are created on ``w``'s device and never leave it.

Every rule is one :class:`UpdateRule` in :mod:`.rules` (defaults, state,
array step and GPU kernel together); :func:`update_all` runs one on every
parameter of a model, as a single kernel launch where the backend can.
"""
from __future__ import annotations

from .. import backend
from ._rule import UpdateRule
from .rules import RULES, register
from .rules import *  # noqa: F401,F403  (the rules by name: sgd, adam, ...)

#: every rule by name
UPDATE_RULES = RULES

__all__ = [*RULES, "UpdateRule", "register", "get_update_rule", "update_all", "UPDATE_RULES"]


def get_update_rule(rule):
    """An update rule by name (or a callable, returned as is)."""
    if callable(rule):
        return rule
    try:
        return UPDATE_RULES[rule]
    except (KeyError, TypeError):
        raise ValueError(f"unknown update rule {rule!r}; valid rules are "
                         f"{', '.join(UPDATE_RULES)}") from None


def update_all(rule, params, grads, configs):
    """``params[p], configs[p] = rule(params[p], grads[p], configs[p])`` for
    every parameter ``p``. An :class:`UpdateRule` with a kernel, on arrays
    whose backend runs it for all at once (CuPy arrays of one dtype), and
    whose configs agree (the Solver's do), runs as ONE launch for all of
    them, with the numbers the rule gives each alone; its new arrays are
    views of one buffer per output."""
    if not (isinstance(rule, UpdateRule) and rule.kernel is not None and len(params) >= 2
            and _update_all_at_once(rule, params, grads, configs)):
        for p, w in params.items():
            params[p], configs[p] = rule(w, grads[p], configs[p])


def _update_all_at_once(rule, params, grads, configs):
    """The one-launch form of :func:`update_all`, or False (nothing changed
    but the configs' defaults) where it does not apply."""
    keys = list(params)
    ws, dws = [params[p] for p in keys], [grads[p] for p in keys]
    k = backend.kernels(*ws)
    if not k.update_all_applies(*ws, *dws):  # off a GPU: each rule alone validates its config
        return False
    cfgs = [rule.setup(params[p], grads[p], configs[p])[1] for p in keys]
    hyper = [{key: v for key, v in c.items() if key not in rule.state} for c in cfgs]
    if any(h != hyper[0] for h in hyper[1:]):
        return False
    states = [[c.get(key) for c in cfgs] for key in rule.state]
    given = [a for st in states for a in st if a is not None]
    if given and not k.update_all_applies(ws[0], *given):  # ws and dws are checked above
        return False
    xp = backend.namespace_of(w=ws[0])
    for st in states:  # the first step: every state starts at zero
        for i, a in enumerate(st):
            if a is None:
                st[i] = xp.zeros_like(ws[i])
    for c in cfgs:
        rule.advance(c)
    new_ws, new_states = k.update_all(rule, ws, dws, states, cfgs[0])
    for i, p in enumerate(keys):
        params[p] = new_ws[i]
        for key, st in zip(rule.state, new_states):
            cfgs[i][key] = st[i]
        configs[p] = cfgs[i]
    return True
