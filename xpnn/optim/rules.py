"""The update rules, each one :class:`~._rule.UpdateRule`: its defaults,
state, array step and (for a GPU) kernel body together.

A new rule is one class here, decorated with :func:`register`: it is then
``xpnn.optim.<name>``, a Solver's ``update_rule="<name>"`` and an ``xpnn
train --update-rule`` choice, and the tests that run every registered rule
(against its kernel body compiled for the host, on every backend, through
``update_all``) cover it.
"""
from __future__ import annotations

from ._rule import UpdateRule

#: every registered rule by name, in the order registered
RULES: dict = {}


def register(cls):  # pragma: no mutate block (runs at import)
    """Make rule class ``cls`` known by its name (an instance is the course's
    update-rule function)."""
    if not cls.name.isidentifier() or cls.name in RULES:
        raise ValueError(f"update rule name {cls.name!r} must be a new Python identifier")
    RULES[cls.name] = cls()
    return cls


@register
class SGD(UpdateRule):
    """Vanilla SGD: ``w -= learning_rate * dw``. config: learning_rate (1e-2)."""
    name = "sgd"
    defaults = dict(learning_rate=1e-2)
    kernel = "w_out = w - (T)lr * dw;"

    def scalars(self, c):
        return {"lr": float(c["learning_rate"])}

    def step(self, xp, w, dw, c):
        return (w - c["learning_rate"] * dw,)


@register
class SGDMomentum(UpdateRule):
    """SGD with momentum: ``v = momentum * v - lr * dw; w += v``.
    config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    name = "sgd_momentum"
    defaults = dict(learning_rate=1e-2, momentum=0.9)
    state = ("velocity",)
    kernel = ("T vn = (T)mu * velocity - (T)lr * dw;\n"
              "velocity_out = vn;\n"
              "w_out = w + vn;")

    def scalars(self, c):
        return {"lr": float(c["learning_rate"]), "mu": float(c["momentum"])}

    def step(self, xp, w, dw, c, velocity):
        v = c["momentum"] * velocity - c["learning_rate"] * dw
        return w + v, v


@register
class SGDNesterovMomentum(UpdateRule):
    """Nesterov momentum in the look-ahead-free form:
    ``v_new = mu v - lr dw; w += -mu v + (1 + mu) v_new``.
    config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    name = "sgd_nesterov_momentum"
    defaults = dict(learning_rate=1e-2, momentum=0.9)
    state = ("velocity",)
    kernel = ("T vn = (T)mu * velocity - (T)lr * dw;\n"
              "velocity_out = vn;\n"
              "w_out = w - (T)mu * velocity + (T)one_plus_mu * vn;")

    def scalars(self, c):
        mu = float(c["momentum"])
        return {"lr": float(c["learning_rate"]), "mu": mu, "one_plus_mu": 1.0 + mu}

    def step(self, xp, w, dw, c, velocity):
        mu = c["momentum"]
        v = mu * velocity - c["learning_rate"] * dw
        return w - mu * velocity + (1.0 + mu) * v, v


@register
class RMSProp(UpdateRule):
    """RMSProp: ``cache = decay * cache + (1 - decay) * dw**2;
    w -= lr * dw / (sqrt(cache) + eps)``. config: learning_rate (1e-2),
    decay_rate (0.99), epsilon (1e-8), cache (zeros)."""
    name = "rmsprop"
    defaults = dict(learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    state = ("cache",)
    kernel = ("T c = (T)decay * cache + (T)one_minus_decay * (dw * dw);\n"
              "cache_out = c;\n"
              "w_out = w - (T)lr * dw / (sqrt(c) + (T)eps);")

    def scalars(self, c):
        d = float(c["decay_rate"])
        return {"lr": float(c["learning_rate"]), "decay": d, "one_minus_decay": 1.0 - d,
                "eps": float(c["epsilon"])}

    def step(self, xp, w, dw, c, cache):
        d = c["decay_rate"]
        cache = d * cache + (1.0 - d) * (dw * dw)
        return w - c["learning_rate"] * dw / (xp.sqrt(cache) + c["epsilon"]), cache


@register
class Adam(UpdateRule):
    """Adam with bias correction; ``t`` is incremented before use.
    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8),
    m, v (zeros), t (0)."""
    name = "adam"
    defaults = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    state = ("m", "v")
    counter = "t"
    #: AdamW: the weights first shrink by learning_rate * weight_decay of
    #: themselves, apart from the gradient
    decoupled = False

    @property
    def kernel(self):
        return ("T mn = (T)b1 * m + (T)one_minus_b1 * dw;\n"
                "T vn = (T)b2 * v + (T)one_minus_b2 * (dw * dw);\n"
                "m_out = mn;\n"
                "v_out = vn;\n"
                "T mhat = mn / (T)bc1;\n"
                "T vhat = vn / (T)bc2;\n"
                "w_out = " + ("w * (T)decay" if self.decoupled else "w") +
                " - (T)lr * mhat / (sqrt(vhat) + (T)eps);")

    def scalars(self, c):
        b1, b2, t = float(c["beta1"]), float(c["beta2"]), c["t"]
        shrink = ({"decay": float(1.0 - c["learning_rate"] * c["weight_decay"])}
                  if self.decoupled else {})
        return {"lr": float(c["learning_rate"]), **shrink, "b1": b1, "one_minus_b1": 1.0 - b1,
                "b2": b2, "one_minus_b2": 1.0 - b2, "bc1": 1.0 - b1 ** t,
                "bc2": 1.0 - b2 ** t, "eps": float(c["epsilon"])}

    def step(self, xp, w, dw, c, m, v):
        b1, b2, lr, t = c["beta1"], c["beta2"], c["learning_rate"], c["t"]
        m = b1 * m + (1.0 - b1) * dw
        v = b2 * v + (1.0 - b2) * (dw * dw)
        mhat = m / (1.0 - b1 ** t)
        vhat = v / (1.0 - b2 ** t)
        start = w * (1.0 - lr * c["weight_decay"]) if self.decoupled else w
        return start - lr * mhat / (xp.sqrt(vhat) + c["epsilon"]), m, v


@register
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as
    ``torch.optim.AdamW``: the weights shrink by ``learning_rate *
    weight_decay`` of themselves, apart from the gradient, then take Adam's
    step. config: as :func:`adam`, and weight_decay (1e-2)."""
    name = "adamw"
    defaults = dict(Adam.defaults, weight_decay=1e-2)
    decoupled = True


@register
class Adagrad(UpdateRule):
    """Adagrad: ``cache += dw**2; w -= lr * dw / (sqrt(cache) + eps)``.
    config: learning_rate (1e-2), epsilon (1e-8), cache (zeros)."""
    name = "adagrad"
    defaults = dict(learning_rate=1e-2, epsilon=1e-8)
    state = ("cache",)
    kernel = ("T c = cache + dw * dw;\n"
              "cache_out = c;\n"
              "w_out = w - (T)lr * dw / (sqrt(c) + (T)eps);")

    def scalars(self, c):
        return {"lr": float(c["learning_rate"]), "eps": float(c["epsilon"])}

    def step(self, xp, w, dw, c, cache):
        cache = cache + dw * dw
        return w - c["learning_rate"] * dw / (xp.sqrt(cache) + c["epsilon"]), cache


@register
class NAdam(UpdateRule):
    """Adam with Nesterov momentum (Dozat, 2016), as ``torch.optim.NAdam``:
    the momentum coefficient warms up as ``mu_t = beta1 * (1 - 0.5 *
    0.96**(t * momentum_decay))`` and the step looks one momentum ahead:
    ``w -= lr * ((1 - mu_t) / (1 - prod mu) * dw + mu_{t+1} / (1 - prod mu *
    mu_{t+1}) * m) / (sqrt(v / (1 - beta2**t)) + eps)``. config:
    learning_rate (2e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8),
    momentum_decay (4e-3), m, v (zeros), t (0), mu_product (1, the product
    of the mu_t so far)."""
    name = "nadam"
    defaults = dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                    momentum_decay=4e-3, t=0, mu_product=1.0)
    state = ("m", "v")
    counter = "t"
    kernel = ("T mn = (T)b1 * m + (T)one_minus_b1 * dw;\n"
              "T vn = (T)b2 * v + (T)one_minus_b2 * (dw * dw);\n"
              "m_out = mn;\n"
              "v_out = vn;\n"
              "T denom = sqrt(vn / (T)bc2) + (T)eps;\n"
              "w_out = w - (T)c_grad * dw / denom - (T)c_m * mn / denom;")

    @staticmethod
    def _mu(c, t):
        return c["beta1"] * (1.0 - 0.5 * 0.96 ** (t * c["momentum_decay"]))

    def advance(self, config):
        super().advance(config)
        config["mu_product"] = config["mu_product"] * self._mu(config, config["t"])

    def _coefficients(self, c):
        """The step's factors of dw and of m (Python floats)."""
        t, prod = c["t"], c["mu_product"]
        mu, mu_next = self._mu(c, t), self._mu(c, t + 1)
        lr = c["learning_rate"]
        return lr * (1.0 - mu) / (1.0 - prod), lr * mu_next / (1.0 - prod * mu_next)

    def scalars(self, c):
        b1, b2 = float(c["beta1"]), float(c["beta2"])
        c_grad, c_m = self._coefficients(c)
        return {"b1": b1, "one_minus_b1": 1.0 - b1, "b2": b2, "one_minus_b2": 1.0 - b2,
                "bc2": 1.0 - b2 ** c["t"], "eps": float(c["epsilon"]), "c_grad": float(c_grad),
                "c_m": float(c_m)}

    def step(self, xp, w, dw, c, m, v):
        b1, b2 = c["beta1"], c["beta2"]
        m = b1 * m + (1.0 - b1) * dw
        v = b2 * v + (1.0 - b2) * (dw * dw)
        denom = xp.sqrt(v / (1.0 - b2 ** c["t"])) + c["epsilon"]
        c_grad, c_m = self._coefficients(c)
        return w - c_grad * dw / denom - c_m * m / denom, m, v


__all__ = ["RULES", "register", *RULES]
globals().update(RULES)
