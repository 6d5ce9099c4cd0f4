"""What differs between the course editions, each written once as a thin
wrapper over xpnn's single implementation.

- Dropout's number: CS231n 2016-17 and UCLA up to 2022 give the
  probability of DROPPING a unit (``p``, ``dropout=``, 0 by default);
  CS231n 2019+, ECE 662 and UCLA 2023-26 the probability of keeping it
  (xpnn's own meaning; UCLA's ``dropout=`` is 1 by default).
- Constructors: ``FullyConnectedNet(dropout=, use_batchnorm=)`` (2016-17,
  UCLA), UCLA's modular ``TwoLayerNet(hidden_dims=, dropout=)``.
- Arithmetic: the course's NumPy code promotes, so float64 data given to a
  float32 model computes in float64 (xpnn's own models cast the data to
  their dtype); every edition's models do as the course's.
- A NaN loss: the course's Solver goes on training (xpnn's stops).
- The end of training: the course's model takes the best epoch's params
  but keeps the last epoch's batch-norm statistics (xpnn's takes both).
- Saving: CS231n 2025+ models and linear classifiers have ``save(fname)`` /
  ``load(fname)`` (``cs231n/saved/<fname>``, NumPy's .npy of a dict); every
  edition's have them here (:class:`CourseSaving`).
- Update rules: CS231n 2016-17 Adam starts its step counter at t = 1; UCLA
  names the state ``a`` (RMSProp's cache, Adam's second moment) and ``v``
  (Adam's first moment). Assignment 3's captioning solver has its own
  optim.py, whose Adam folds the bias correction into the step size.
- The monolithic two-layer net: CS231n stores W1 (D, H), regularises with
  ``reg * sum(W**2)`` and draws batch_size rows with replacement; UCLA's
  W1 (H, D), ``0.5 * reg * sum(W**2)``.
"""
from __future__ import annotations

import io
import os
import pickle

import numpy as np

from .. import backend, optim
from ..checkpoint import write_atomic
from ..data import _BatchUnpickler
from ..layers import dropout_forward as _keep_dropout_forward
from ..models import fc_net as _fc
from ..models import neural_net as _nn
from ..solver import Solver as _Solver


# ------------------------------------------------------------------ dropout
def _drop_probability(value, name):
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} is the probability of DROPPING a unit in this course "
                         f"edition and must be in [0, 1), got {value!r}")
    return p


def _keep_probability(value, name):
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not 0.0 < p <= 1.0:
        raise ValueError(f"{name} is the probability of KEEPING a unit in this course "
                         f"edition (1 or 0: no dropout) and must be in [0, 1], got {value!r}")
    return p


def _keep_or_none(value):
    """A keep probability, where 0 (the first homework's default) means none."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
            and value == 0:
        return 1.0
    return _keep_probability(value, "dropout")


def dropout_forward_drop_p(x, dropout_param):
    """Inverted dropout where ``dropout_param['p']`` is the probability of
    dropping a unit (CS231n 2016-17, UCLA): xpnn's dropout with keep
    probability 1 - p, so the same random draws and the same mask."""
    if not isinstance(dropout_param, dict) or "p" not in dropout_param:
        raise TypeError("dropout_param must be a dict with 'p' (the probability of dropping "
                        "a unit), 'mode' and optionally 'seed'")
    keep = dict(dropout_param)
    keep["p"] = 1.0 - _drop_probability(dropout_param["p"], "dropout_param['p']")
    out, (_, mask) = _keep_dropout_forward(x, keep)
    return out, (dropout_param, mask)


def _named(cls, name):
    cls.__name__ = cls.__qualname__ = name
    return cls


# ------------------------------------------------------------------ models
@lambda c: _named(c, "FullyConnectedNet")
class FullyConnectedNetDropP(_fc.FullyConnectedNet):
    """FullyConnectedNet with the 2016-17 / UCLA signature: ``dropout`` is
    the probability of DROPPING a unit (0: no dropout) and
    ``use_batchnorm`` turns batch normalization on."""

    checkpoint_class = "FullyConnectedNet"

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout=0,
                 use_batchnorm=False, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None,
                 normalization=None):
        p = _drop_probability(dropout, "dropout")
        norm = normalization if normalization is not None else (
            "batchnorm" if use_batchnorm else None)
        super().__init__(hidden_dims, input_dim=input_dim, num_classes=num_classes,
                         dropout_keep_ratio=1.0 - p, normalization=norm, reg=reg,
                         weight_scale=weight_scale, dtype=dtype, seed=seed)
        self.use_batchnorm = norm == "batchnorm"


@lambda c: _named(c, "FullyConnectedNet")
class FullyConnectedNetKeep(FullyConnectedNetDropP):
    """FullyConnectedNet with UCLA's 2023-26 signature: ``use_batchnorm`` as
    before, but ``dropout`` is the probability of KEEPING a unit and 1 (no
    dropout) is the default. 0 also means no dropout: the first homework's
    fc_net.py of these years still defaults to ``dropout=0`` (and never
    uses it), and keeping no unit at all is no network."""

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout=1,
                 use_batchnorm=False, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None,
                 normalization=None):
        super().__init__(hidden_dims, input_dim=input_dim, num_classes=num_classes,
                         dropout=1.0 - _keep_or_none(dropout),
                         use_batchnorm=use_batchnorm, reg=reg, weight_scale=weight_scale,
                         dtype=dtype, seed=seed, normalization=normalization)


@lambda c: _named(c, "TwoLayerNet")
class TwoLayerNetNNDL(FullyConnectedNetDropP):
    """UCLA's modular two-layer net: ``TwoLayerNet(input_dim, hidden_dims,
    num_classes, dropout, weight_scale, reg)``, float64, dropout the
    probability of dropping."""

    def __init__(self, input_dim=3 * 32 * 32, hidden_dims=100, num_classes=10, dropout=0,
                 weight_scale=1e-3, reg=0.0):
        super().__init__([int(hidden_dims)], input_dim=input_dim, num_classes=num_classes,
                         dropout=dropout, reg=reg, weight_scale=weight_scale,
                         dtype=np.float64)


@lambda c: _named(c, "TwoLayerNet")
class TwoLayerNetNNDLKeep(TwoLayerNetNNDL):
    """UCLA's modular two-layer net, 2023-26: ``dropout`` the probability of
    KEEPING a unit, 1 (no dropout) by default (0 also: see
    FullyConnectedNetKeep)."""

    def __init__(self, input_dim=3 * 32 * 32, hidden_dims=100, num_classes=10, dropout=1,
                 weight_scale=1e-3, reg=0.0):
        super().__init__(input_dim=input_dim, hidden_dims=hidden_dims,
                         num_classes=num_classes,
                         dropout=1.0 - _keep_or_none(dropout),
                         weight_scale=weight_scale, reg=reg)


class _SavedUnpickler(_BatchUnpickler):
    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a saved model holds "
                                     "only a dict of arrays")


def _read_record(f, path):
    """One np.save record from the open file ``f``: an object array read
    with an unpickler that builds only arrays and containers (a crafted
    file is refused, not run; its opcodes are scanned first, so that a
    memo index or a length larger than the file is refused before the
    unpickler allocates for it), or a plain array whose declared size is
    checked against the file before it is read."""
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(f)
    if dtype == object:
        start = f.tell()
        raw = f.read()
        end = _scanned_pickle_end(raw)
        f.seek(start + end)
        arr = _SavedUnpickler(io.BytesIO(raw[:end]), encoding="latin1").load()
        return arr.item() if isinstance(arr, np.ndarray) and arr.shape == () else arr
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    left = os.path.getsize(path) - f.tell()
    if nbytes > left:
        raise ValueError(f"it declares a {shape} {dtype} array of {nbytes} bytes but holds "
                         f"{left}")
    data = np.frombuffer(f.read(nbytes), dtype=dtype)
    return data.reshape(shape, order="F" if fortran else "C")


def _scanned_pickle_end(raw):
    """Where the pickle at the start of ``raw`` ends, after checking each
    opcode: every memo index must be one the pickle could have made (a
    crafted LONG_BINPUT of 10**9 would make the unpickler grow its memo
    that far), and pickletools refuses a length beyond the bytes there."""
    import pickletools
    ops = 0
    for op, arg, pos in pickletools.genops(raw):
        ops += 1
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET") and \
                int(arg) > ops:
            raise ValueError(f"its pickle names memo entry {arg} after {ops} opcodes")
        if op.name == "STOP":
            return pos + 1
    raise ValueError("its pickle has no end")


def _read_saved(path):
    """(the dict of parameters, the batch-norm record or None) of a file
    ``save()`` wrote at ``path``; a cut, random or crafted file is a
    ValueError naming it."""
    import tokenize
    try:
        with open(path, "rb") as f:
            params = _read_record(f, path)
            extra = _read_record(f, path) if f.peek(1) else None
    except (ValueError, EOFError, pickle.UnpicklingError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError, RecursionError, SyntaxError,
            UnicodeDecodeError, tokenize.TokenError) as exc:
        raise ValueError(f"load: {path!r} is not a file save() writes ({type(exc).__name__}: "
                         f"{exc}); it is cut, damaged or something else") from None
    return params, extra


def _check_array(path, name, value):
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ValueError(f"load: {path!r}: {name} is a {type(value).__name__}"
                         f"{' of ' + str(value.dtype) if isinstance(value, np.ndarray) else ''}, "
                         f"not an array of numbers")


#: what a saved model keeps of each batch-norm layer (its settings, eps and
#: momentum, are the model's own and are never read from a file)
_BN_STATISTICS = ("running_mean", "running_var")


class CourseSaving:
    """``save(fname)`` and ``load(fname)`` as the CS231n 2025+ classes have
    them: the parameters as a dict in ``cs231n/saved/<fname>`` (np.save's
    format and file name: ``.npy`` is added when fname lacks it, as
    np.save does; the course writes beside its package, which is beside the
    notebook), printing "<fname> saved." / "<fname> loaded."; load returns
    False and prints "<fname> not available." when the file is missing.

    Unlike the course's: save writes a temporary file and renames it, so a
    save that fails part-way leaves the previous file whole; a model with
    batch normalisation keeps its running statistics in a second record
    after the dict, which the course's ``np.load(...).item()`` does not
    read (so the file still loads there); load refuses a file that is not
    this model's (other parameter names, shapes, or not arrays), or cut,
    random or crafted, before changing anything."""

    def _saved_params(self):
        return dict(self.params)

    def _restore_params(self, params):
        self.params = params

    def _expected_shapes(self):
        """The parameter names a loaded file must hold, each with the shape
        it must have (None: any)."""
        return {k: tuple(int(d) for d in v.shape) for k, v in self.params.items()}

    @staticmethod
    def _saved_path(fname):
        return os.path.join("cs231n", "saved", os.fspath(fname))

    def _bn_record(self):
        bn = getattr(self, "bn_params", None)
        if not bn:
            return None
        return {"bn_params": [{k: np.asarray(backend.to_numpy(p[k])) for k in _BN_STATISTICS
                               if p.get(k) is not None} for p in bn]}

    def save(self, fname):
        path = self._saved_path(fname)
        if not path.endswith(".npy"):
            path += ".npy"          # as np.save names it
        params = {k: np.asarray(backend.to_numpy(v)) for k, v in self._saved_params().items()}
        bn = self._bn_record()

        def write(f):
            np.save(f, params)
            if bn is not None:
                np.save(f, bn)
        write_atomic(path, write)
        print(fname, "saved.")

    def load(self, fname):
        path = self._saved_path(fname)
        if not os.path.exists(path):
            print(fname, "not available.")
            return False
        params, extra = _read_saved(path)
        if not isinstance(params, dict):
            raise ValueError(f"load: {path!r} holds a {type(params).__name__}, not the dict of "
                             f"parameters save() writes")
        want = self._expected_shapes()
        if set(params) != set(want):
            raise ValueError(f"load: {path!r} holds the parameters {sorted(map(str, params))} "
                             f"but this {type(self).__name__} has {sorted(want)}: it was saved "
                             f"from another model")
        for k, v in params.items():
            _check_array(path, f"param {k!r}", v)
            if want[k] is not None and tuple(v.shape) != want[k]:
                raise ValueError(f"load: {path!r}: param {k!r} has shape {tuple(v.shape)}, this "
                                 f"model's is {want[k]}: it was saved from a model of other "
                                 f"sizes")
        bn = self._checked_bn(path, extra)
        self._restore_params(params)
        if bn is not None:
            for mine, stored in zip(self.bn_params, bn):
                for k in _BN_STATISTICS:
                    if k in stored:
                        like = mine.get(k)
                        value = stored[k] if like is None else stored[k].astype(
                            backend.dtype_name(like))
                        mine[k] = backend.to_device(value)
        print(fname, "loaded.")
        return True

    def _checked_bn(self, path, extra):
        """The stored running statistics, if the file has them and they fit."""
        mine = getattr(self, "bn_params", None)
        if extra is None or not mine:
            return None
        stored = extra.get("bn_params") if isinstance(extra, dict) else None
        if not isinstance(stored, list) or len(stored) != len(mine) or \
                not all(isinstance(p, dict) for p in stored):
            raise ValueError(f"load: {path!r}: its batch-norm record does not fit this model's "
                             f"{len(mine)} normalisation layers")
        for i, (p, q) in enumerate(zip(stored, mine)):
            for k in (k for k in _BN_STATISTICS if k in p):
                v = p[k]
                _check_array(path, f"bn_params[{i}][{k!r}]", v)
                if k in q and q[k] is not None and tuple(v.shape) != tuple(q[k].shape):
                    raise ValueError(f"load: {path!r}: bn_params[{i}][{k!r}] has shape "
                                     f"{tuple(v.shape)}, this model's is {tuple(q[k].shape)}")
        return stored


_COURSE_MODELS: dict = {}


def course_model(cls):
    """``cls`` as the course's NumPy code computes: data of a wider type
    than the model's (float64 into a float32 model) is not cast down, so the
    layers, the loss and the gradients promote as NumPy does, and the params
    follow the gradients' type after an update without a warning; and with
    the course's ``save`` / ``load``."""
    if cls not in _COURSE_MODELS:
        _COURSE_MODELS[cls] = _named(type(cls.__name__, (CourseSaving, cls), {
            "promote_input": True, "__doc__": cls.__doc__, "__module__": cls.__module__,
            "checkpoint_class": getattr(cls, "checkpoint_class", cls.__name__)}), cls.__name__)
    return _COURSE_MODELS[cls]


@lambda c: _named(c, "TwoLayerNet")
class TwoLayerNetCS231n(_nn.TwoLayerNet):
    """CS231n assignment 1's two-layer net: W1 (D, H), W2 (H, C), loss
    ``+ reg * sum(W**2)``, batch_size rows with replacement, reg 5e-6, an
    epoch every num_train / batch_size iterations (true division: a
    fraction decays the learning rate at iteration 0 only, as the
    course's ``it % iterations_per_epoch == 0`` does), the course's
    ``iteration %d / %d: loss %f`` lines."""

    w_layout = "in_out"
    reg_scale = 1.0
    cap_batch = False
    default_reg = 5e-6
    # Python 3's true division: an epoch of num_train / batch_size
    # iterations, so a fraction decays only at iteration 0 (`it % 163.3`)
    true_epoch_division = True
    verbose_format = "iteration {it:d} / {num_iters:d}: loss {loss:f}"


@lambda c: _named(c, "TwoLayerNet")
class TwoLayerNetCS231n2016(TwoLayerNetCS231n):
    """CS231n 2016's two-layer net: as 2017's, but the loss adds
    ``0.5 * reg * sum(W**2)``, train()'s reg is 1e-5 and an epoch is
    num_train // batch_size iterations (Python 2's division)."""

    reg_scale = 0.5
    default_reg = 1e-5
    true_epoch_division = False   # Python 2 divided ints by flooring


@lambda c: _named(c, "TwoLayerNet")
class TwoLayerNetUCLA(_nn.TwoLayerNet):
    """UCLA ECE C147's two-layer net: as xpnn's, but batch_size rows are
    drawn with replacement even from fewer, and an epoch is num_train /
    batch_size iterations (true division, as its code divides)."""

    cap_batch = False
    true_epoch_division = True


# ------------------------------------------------------------------ update rules
def adam_t1(w, dw, config=None):
    """Adam whose step counter starts at t = 1 (CS231n 2016-17)."""
    if config is None:
        config = {}
    config.setdefault("t", 1)
    return optim.adam(w, dw, config)


def _renamed(rule, names, doc):
    """``rule`` with its state kept under the edition's keys: ``names``
    maps an edition key to xpnn's."""
    back = {v: k for k, v in names.items()}

    def wrapped(w, dw, config=None):
        if config is None:
            config = {}
        native = {names.get(k, k): v for k, v in config.items()}
        next_w, native = rule(w, dw, native)
        config.clear()
        config.update({back.get(k, k): v for k, v in native.items()})
        return next_w, config
    wrapped.__name__ = wrapped.__qualname__ = rule.__name__
    wrapped.__doc__ = doc
    return wrapped


rmsprop_nndl = _renamed(optim.rmsprop, {"a": "cache"},
                        "RMSProp with its squared-gradient average in config['a'] (UCLA).")
adam_nndl = _renamed(optim.adam, {"v": "m", "a": "v"},
                     "Adam with the first moment in config['v'] and the second in "
                     "config['a'] (UCLA); t starts at 0.")


class _AdamAssignment3(optim.rules.Adam):
    """Assignment 3's own ``optim.adam`` (the captioning solver's, every
    edition): t starts at 0 and is advanced before use, and the bias
    correction is folded into the step size, ``alpha = lr * sqrt(1 -
    beta2**t) / (1 - beta1**t)``, ``w -= alpha * m / (sqrt(v) + eps)`` (so
    eps enters unscaled, unlike assignment 2's Adam). alpha is a NumPy
    float64, as np.sqrt makes it, so the step is taken in the dtype NumPy
    gives alpha * w (float64 for a float32 w in NumPy 2), and the result
    keeps w's dtype, as the course's in-place ``-=``. It runs its array
    step on every backend."""

    kernel = None

    def step(self, xp, w, dw, c, m, v):
        b1, b2, t = c["beta1"], c["beta2"], c["t"]
        m = b1 * m + (1.0 - b1) * dw
        v = b2 * v + (1.0 - b2) * (dw * dw)
        alpha = c["learning_rate"] * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        # the dtype NumPy gives np.float64 * w: float64 (NumPy 2), or w's own
        # (NumPy 1's value-based casting); the step is taken in it
        wide = getattr(xp, np.result_type(alpha, np.dtype(backend.dtype_name(w))).name)
        step = float(alpha) * xp.astype(m / (xp.sqrt(v) + c["epsilon"]), wide)
        return xp.astype(xp.astype(w, wide) - step, w.dtype), m, v


adam_assignment3 = _AdamAssignment3()

#: assignment 3's optim.py: sgd and adam in 2016-19, with sgd_momentum and
#: rmsprop (as assignment 2's) from 2021
ASSIGNMENT3_RULES_2016 = {"sgd": optim.sgd, "adam": adam_assignment3}
ASSIGNMENT3_RULES = {"sgd": optim.sgd, "sgd_momentum": optim.sgd_momentum,
                     "rmsprop": optim.rmsprop, "adam": adam_assignment3}


def update_rules(**overrides):
    """xpnn's update rules by name, with an edition's replacements."""
    return {**optim.UPDATE_RULES, **overrides}


def solver_class(rules):
    """A Solver whose ``update_rule='name'`` resolves to ``rules`` and that
    goes on training through a NaN loss and ends with the best params but
    the last epoch's batch-norm statistics, as the course's does."""
    return _named(type("Solver", (_Solver,), {"update_rules": rules, "on_nan": "continue",
                                              "keep_best_stats": False,
                                              "__doc__": _Solver.__doc__}), "Solver")
