"""First-order update rules with the course interface.

Each rule is ``rule(w, dw, config=None) -> (next_w, config)``: ``w`` and
``dw`` are arrays of one backend, ``config`` a dict of hyperparameters and
state that the rule fills with defaults (``setdefault``) and updates. State
arrays are created on ``w``'s device and never leave it.
"""
from __future__ import annotations

from ..backend import namespace_of
from ..layers._util import check_number
from ._cuda import fused

__all__ = ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam", "adamw", "adagrad",
           "get_update_rule", "UPDATE_RULES"]


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
    xp, config = _setup(w, dw, config, learning_rate=1e-2)
    k = fused("sgd", w, dw)
    if k is not None:
        return k(w, dw, float(config["learning_rate"])), config
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - lr * dw; w += v``.
    config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    xp, config = _setup(w, dw, config, learning_rate=1e-2, momentum=0.9)
    v_prev = _state(xp, config, "velocity", w)
    k = fused("sgd_momentum", w, dw, v_prev)
    if k is not None:
        w, config["velocity"] = k(w, dw, v_prev, float(config["learning_rate"]),
                                  float(config["momentum"]))
        return w, config
    v = config["momentum"] * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def sgd_nesterov_momentum(w, dw, config=None):
    """Nesterov momentum in the look-ahead-free form:
    ``v_new = mu v - lr dw; w += -mu v + (1 + mu) v_new``.
    config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    xp, config = _setup(w, dw, config, learning_rate=1e-2, momentum=0.9)
    mu = config["momentum"]
    v_prev = _state(xp, config, "velocity", w)
    k = fused("sgd_nesterov_momentum", w, dw, v_prev)
    if k is not None:
        w, config["velocity"] = k(w, dw, v_prev, float(config["learning_rate"]), float(mu),
                                  1.0 + float(mu))
        return w, config
    v = mu * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w - mu * v_prev + (1.0 + mu) * v, config


def rmsprop(w, dw, config=None):
    """RMSProp: ``cache = decay * cache + (1 - decay) * dw**2;
    w -= lr * dw / (sqrt(cache) + eps)``. config: learning_rate (1e-2),
    decay_rate (0.99), epsilon (1e-8), cache (zeros)."""
    xp, config = _setup(w, dw, config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    d = config["decay_rate"]
    cache = _state(xp, config, "cache", w)
    k = fused("rmsprop", w, dw, cache)
    if k is not None:
        w, config["cache"] = k(w, dw, cache, float(config["learning_rate"]), float(d),
                               1.0 - float(d), float(config["epsilon"]))
        return w, config
    cache = d * cache + (1.0 - d) * (dw * dw)
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


def adagrad(w, dw, config=None):
    """Adagrad: ``cache += dw**2; w -= lr * dw / (sqrt(cache) + eps)``.
    config: learning_rate (1e-2), epsilon (1e-8), cache (zeros)."""
    xp, config = _setup(w, dw, config, learning_rate=1e-2, epsilon=1e-8)
    cache = _state(xp, config, "cache", w)
    k = fused("adagrad", w, dw, cache)
    if k is not None:
        w, config["cache"] = k(w, dw, cache, float(config["learning_rate"]),
                               float(config["epsilon"]))
        return w, config
    cache = cache + dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


def _adam(w, dw, config, decoupled):
    """Adam's step; ``decoupled`` (AdamW): the weights first shrink by
    ``learning_rate * weight_decay`` of themselves, apart from the gradient."""
    defaults = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    if decoupled:
        defaults["weight_decay"] = 1e-2
    xp, config = _setup(w, dw, config, **defaults)
    b1, b2, lr = config["beta1"], config["beta2"], config["learning_rate"]
    config["t"] = t = int(config["t"]) + 1
    shrink = (1.0 - lr * config["weight_decay"],) if decoupled else ()
    m, v = _state(xp, config, "m", w), _state(xp, config, "v", w)
    k = fused("adamw" if decoupled else "adam", w, dw, m, v)
    if k is not None:
        b1, b2 = float(b1), float(b2)
        w, config["m"], config["v"] = k(
            w, dw, m, v, float(lr), *map(float, shrink), b1, 1.0 - b1, b2, 1.0 - b2,
            1.0 - b1 ** t, 1.0 - b2 ** t, float(config["epsilon"]))
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
