"""First-order update rules with the course interface.

Each rule is ``rule(w, dw, config=None) -> (next_w, config)``: ``w`` and
``dw`` are arrays of one backend, ``config`` a dict of hyperparameters and
state that the rule fills with defaults (``setdefault``) and updates. State
arrays are created on ``w``'s device and never leave it.
"""
from __future__ import annotations

from ..backend import namespace_of
from ..layers._util import check_number
from ._cuda import fused, fused_all, fused_all_enabled

__all__ = ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam", "adamw", "adagrad",
           "get_update_rule", "update_all", "UPDATE_RULES"]

#: each rule's hyperparameters and their defaults
_DEFAULTS = {
    "sgd": dict(learning_rate=1e-2),
    "sgd_momentum": dict(learning_rate=1e-2, momentum=0.9),
    "sgd_nesterov_momentum": dict(learning_rate=1e-2, momentum=0.9),
    "rmsprop": dict(learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8),
    "adagrad": dict(learning_rate=1e-2, epsilon=1e-8),
    "adam": dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0),
    "adamw": dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0,
                  weight_decay=1e-2),
}
#: each rule's state arrays, in its fused kernel's order
_STATE_KEYS = {"sgd": (), "sgd_momentum": ("velocity",), "sgd_nesterov_momentum": ("velocity",),
               "rmsprop": ("cache",), "adagrad": ("cache",), "adam": ("m", "v"),
               "adamw": ("m", "v")}


def _kernel_scalars(name, config):
    """The fused kernel's scalar arguments for rule ``name`` (Adam's ``t``
    already advanced), as float64, each computed as the array path does."""
    lr = float(config["learning_rate"])
    if name == "sgd":
        return (lr,)
    if name == "sgd_momentum":
        return (lr, float(config["momentum"]))
    if name == "sgd_nesterov_momentum":
        mu = float(config["momentum"])
        return (lr, mu, 1.0 + mu)
    if name == "rmsprop":
        d = float(config["decay_rate"])
        return (lr, d, 1.0 - d, float(config["epsilon"]))
    if name == "adagrad":
        return (lr, float(config["epsilon"]))
    b1, b2, t = float(config["beta1"]), float(config["beta2"]), config["t"]
    shrink = ((float(1.0 - config["learning_rate"] * config["weight_decay"]),)
              if name == "adamw" else ())
    return (lr, *shrink, b1, 1.0 - b1, b2, 1.0 - b2, 1.0 - b1 ** t, 1.0 - b2 ** t,
            float(config["epsilon"]))


def _setup(w, dw, config, **defaults):
    xp = namespace_of(w=w, dw=dw)
    if tuple(w.shape) != tuple(dw.shape):
        raise ValueError(f"update rule: dw has shape {tuple(dw.shape)} but w has "
                         f"{tuple(w.shape)}; they must match")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    for k, v in defaults.items():
        config.setdefault(k, v)
    for k in defaults:  # every hyperparameter is a finite number >= 0
        check_number(f"update rule config[{k!r}]", config[k], 0.0)
    return xp, config


def _state(xp, config, key, w):
    if config.get(key) is None:
        config[key] = xp.zeros_like(w)
    return config[key]


def sgd(w, dw, config=None):
    """Vanilla SGD: ``w -= learning_rate * dw``. config: learning_rate (1e-2)."""
    xp, config = _setup(w, dw, config, **_DEFAULTS["sgd"])
    k = fused("sgd", w, dw)
    if k is not None:
        return k(w, dw, *_kernel_scalars("sgd", config)), config
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - lr * dw; w += v``.
    config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    xp, config = _setup(w, dw, config, **_DEFAULTS["sgd_momentum"])
    v_prev = _state(xp, config, "velocity", w)
    k = fused("sgd_momentum", w, dw, v_prev)
    if k is not None:
        w, config["velocity"] = k(w, dw, v_prev, *_kernel_scalars("sgd_momentum", config))
        return w, config
    v = config["momentum"] * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def sgd_nesterov_momentum(w, dw, config=None):
    """Nesterov momentum in the look-ahead-free form:
    ``v_new = mu v - lr dw; w += -mu v + (1 + mu) v_new``.
    config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    xp, config = _setup(w, dw, config, **_DEFAULTS["sgd_nesterov_momentum"])
    mu = config["momentum"]
    v_prev = _state(xp, config, "velocity", w)
    k = fused("sgd_nesterov_momentum", w, dw, v_prev)
    if k is not None:
        w, config["velocity"] = k(w, dw, v_prev,
                                  *_kernel_scalars("sgd_nesterov_momentum", config))
        return w, config
    v = mu * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w - mu * v_prev + (1.0 + mu) * v, config


def rmsprop(w, dw, config=None):
    """RMSProp: ``cache = decay * cache + (1 - decay) * dw**2;
    w -= lr * dw / (sqrt(cache) + eps)``. config: learning_rate (1e-2),
    decay_rate (0.99), epsilon (1e-8), cache (zeros)."""
    xp, config = _setup(w, dw, config, **_DEFAULTS["rmsprop"])
    d = config["decay_rate"]
    cache = _state(xp, config, "cache", w)
    k = fused("rmsprop", w, dw, cache)
    if k is not None:
        w, config["cache"] = k(w, dw, cache, *_kernel_scalars("rmsprop", config))
        return w, config
    cache = d * cache + (1.0 - d) * (dw * dw)
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


def adagrad(w, dw, config=None):
    """Adagrad: ``cache += dw**2; w -= lr * dw / (sqrt(cache) + eps)``.
    config: learning_rate (1e-2), epsilon (1e-8), cache (zeros)."""
    xp, config = _setup(w, dw, config, **_DEFAULTS["adagrad"])
    cache = _state(xp, config, "cache", w)
    k = fused("adagrad", w, dw, cache)
    if k is not None:
        w, config["cache"] = k(w, dw, cache, *_kernel_scalars("adagrad", config))
        return w, config
    cache = cache + dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


def _adam(w, dw, config, decoupled):
    """Adam's step; ``decoupled`` (AdamW): the weights first shrink by
    ``learning_rate * weight_decay`` of themselves, apart from the gradient."""
    name = "adamw" if decoupled else "adam"
    xp, config = _setup(w, dw, config, **_DEFAULTS[name])
    b1, b2, lr = config["beta1"], config["beta2"], config["learning_rate"]
    config["t"] = t = int(config["t"]) + 1
    shrink = (1.0 - lr * config["weight_decay"],) if decoupled else ()
    m, v = _state(xp, config, "m", w), _state(xp, config, "v", w)
    k = fused(name, w, dw, m, v)
    if k is not None:
        w, config["m"], config["v"] = k(w, dw, m, v, *_kernel_scalars(name, config))
        return w, config
    m = b1 * m + (1.0 - b1) * dw
    v = b2 * v + (1.0 - b2) * (dw * dw)
    config["m"], config["v"] = m, v
    mhat = m / (1.0 - b1 ** t)
    vhat = v / (1.0 - b2 ** t)
    start = w * shrink[0] if decoupled else w
    return start - lr * mhat / (xp.sqrt(vhat) + config["epsilon"]), config


def adam(w, dw, config=None):
    """Adam with bias correction; ``t`` is incremented before use.
    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8),
    m, v (zeros), t (0)."""
    return _adam(w, dw, config, decoupled=False)


def adamw(w, dw, config=None):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as
    ``torch.optim.AdamW``: the weights shrink by ``learning_rate *
    weight_decay`` of themselves, apart from the gradient, then take Adam's
    step. config: as :func:`adam`, and weight_decay (1e-2)."""
    return _adam(w, dw, config, decoupled=True)


UPDATE_RULES = {f.__name__: f for f in (sgd, sgd_momentum, sgd_nesterov_momentum, rmsprop,
                                        adam, adamw, adagrad)}


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
    every parameter ``p``. A built-in rule on CuPy arrays of one dtype whose
    configs agree (the Solver's do) runs as ONE fused kernel launch for all
    of them, with the numbers the rule gives each alone; its new arrays are
    views of one buffer per output."""
    name = next((n for n, f in UPDATE_RULES.items() if f is rule), None)
    if name is None or len(params) < 2 or not _update_all_fused(name, params, grads, configs):
        for p, w in params.items():
            params[p], configs[p] = rule(w, grads[p], configs[p])


def _update_all_fused(name, params, grads, configs):
    """The one-launch form of :func:`update_all`, or False (nothing changed
    but the configs' defaults) where it does not apply."""
    keys = list(params)
    ws, dws = [params[p] for p in keys], [grads[p] for p in keys]
    if not fused_all_enabled(*ws, *dws):  # off a GPU: each rule alone validates its config
        return False
    cfgs = [_setup(params[p], grads[p], configs[p], **_DEFAULTS[name])[1] for p in keys]
    state_keys = _STATE_KEYS[name]
    hyper = [{k: v for k, v in c.items() if k not in state_keys} for c in cfgs]
    if any(h != hyper[0] for h in hyper[1:]):
        return False
    states = [[c.get(k) for c in cfgs] for k in state_keys]
    given = [a for st in states for a in st if a is not None]
    if not fused_all_enabled(*ws, *dws, *given):
        return False
    xp = namespace_of(w=ws[0])
    for st in states:  # the first step: every state starts at zero
        for i, a in enumerate(st):
            if a is None:
                st[i] = xp.zeros_like(ws[i])
    if name in ("adam", "adamw"):
        for c in cfgs:
            c["t"] = int(c["t"]) + 1
    new_ws, *new_states = fused_all(name, ws, dws, states, _kernel_scalars(name, cfgs[0]))
    for i, p in enumerate(keys):
        params[p] = new_ws[i]
        for k, st in zip(state_keys, new_states):
            cfgs[i][k] = st[i]
        configs[p] = cfgs[i]
    return True
