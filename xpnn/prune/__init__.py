"""Magnitude pruning that really shrinks the model.

Masks belong to the model: they sit beside the weights in ``model.masks``
(0/1 arrays on the model's backend) until :func:`remove` makes the zeros
permanent, and the model applies them to every value assigned to a masked
param (its ``params`` is a :class:`~xpnn.nn.model.MaskedParams`), so
fine-tuning keeps pruned weights at exactly zero whatever does the update. :func:`shrink` then removes structurally pruned conv filters
and hidden units for real — with their bias, batch-norm entries and the next
layer's matching inputs — using the model's explicit layer list.

``amount`` is a fraction in [0, 1] of the entries (or slices) still unpruned,
or an int count of them: pruning twice acts on what the first pass left.

Structured pruning along a layer's output dimension (conv filters: dim 0;
affine units: dim 1) also masks that output's bias and batch-norm gamma and
beta, so the pruned channel outputs exactly zero and :func:`shrink` can drop
it without changing the network's outputs.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..layers._util import is_number
from ._masks import as_host64 as _as_host64
from ._masks import mask_of as _mask_of
from ._masks import np_dtype as _np_dtype
from ._masks import own_masks
from ._shrink import model_stats, shrink_network

__all__ = ["l1_unstructured", "random_unstructured", "ln_structured", "global_unstructured",
           "remove", "is_pruned", "sparsity", "apply_masks", "shrink", "model_stats",
           "prunable_names"]


# ----------------------------------------------------------------- helpers
def prunable_names(model):
    """The conv and affine weight names, in layer order."""
    if hasattr(model, "weight_names"):  # a layered model knows its own
        return model.weight_names()
    return sorted(k for k, v in model.params.items() if k.startswith("W") and v.ndim >= 2)


def _check_name(model, name):
    if name not in model.params:
        raise ValueError(f"unknown parameter {name!r}; the model has "
                         f"{', '.join(sorted(model.params))} (prunable weights: "
                         f"{', '.join(prunable_names(model))})")


def _count(amount, n, what):
    """Number of items to prune: a fraction of n in [0, 1] or an int count."""
    if not is_number(amount):
        raise ValueError(f"amount must be a fraction in [0, 1] or an integer count, "
                         f"got {amount!r}")
    if isinstance(amount, (int, np.integer)):
        if not 0 <= amount <= n:
            raise ValueError(f"amount={amount} {what} to prune, but only {n} are unpruned")
        return int(amount)
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"amount must be a fraction in [0, 1] (or an integer count), "
                         f"got {amount}")
    return int(round(float(amount) * n))


def _set_mask(model, name, new_mask, kind):
    """Combine ``new_mask`` (host 0/1) with the existing one; the model's
    params apply it to the weight."""
    combined = _mask_of(model, name) * new_mask
    p = model.params[name]
    dev = backend.backend_of(p)
    model.masks[name] = backend.to_device(combined.astype(_np_dtype(p)), dev)
    old = model.prune_kinds.get(name)
    model.prune_kinds[name] = kind if old in (None, kind) else "mixed"
    model.params[name] = p


# ----------------------------------------------------------------- pruning
def l1_unstructured(model, name, amount):
    """Mask the ``amount`` smallest-magnitude unpruned entries of params[name]
    (among equal magnitudes, the lowest flat index goes first)."""
    own_masks(model)
    _check_name(model, name)
    w, m = np.abs(_as_host64(model.params[name])), _mask_of(model, name)
    alive = np.flatnonzero(m)
    k = _count(amount, alive.size, f"entries of {name}")
    new = np.ones_like(m)
    new.flat[alive[np.argsort(w.flat[alive], kind="stable")[:k]]] = 0
    _set_mask(model, name, new, "unstructured")
    return model


def random_unstructured(model, name, amount, seed=None):
    """Mask ``amount`` unpruned entries of params[name] chosen at random
    (``seed`` for repeatability; NumPy's global state is not touched)."""
    own_masks(model)
    _check_name(model, name)
    m = _mask_of(model, name)
    alive = np.flatnonzero(m)
    k = _count(amount, alive.size, f"entries of {name}")
    new = np.ones_like(m)
    new.flat[np.random.default_rng(seed).choice(alive, size=k, replace=False)] = 0
    _set_mask(model, name, new, "unstructured")
    return model


def ln_structured(model, name, amount, n=1, dim=0):
    """Mask whole slices of params[name] along ``dim`` (dim 0 of a conv
    weight: filters; dim 1 of an affine weight: units) with the smallest
    L-``n`` norm, among slices not yet pruned. Along a layer's output
    dimension the matching bias and batch-norm entries are masked too."""
    own_masks(model)
    _check_name(model, name)
    w = _as_host64(model.params[name])
    if not isinstance(dim, (int, np.integer)) or not -w.ndim <= dim < w.ndim:
        raise ValueError(f"dim={dim!r} does not exist for {name} of shape {w.shape}; "
                         f"use 0..{w.ndim - 1}")
    dim = int(dim) % w.ndim
    if not (n == np.inf or (isinstance(n, (int, float)) and n > 0)):
        raise ValueError(f"n must be a positive number or inf (the norm order), got {n!r}")
    m = _mask_of(model, name)
    other = tuple(a for a in range(w.ndim) if a != dim)
    wm = np.abs(w * m)
    norms = wm.max(axis=other) if n == np.inf else (wm ** n).sum(axis=other) ** (1.0 / n)
    alive = np.flatnonzero(m.any(axis=other))
    k = _count(amount, alive.size, f"slices of {name} along dim {dim}")
    dead = alive[np.argsort(norms[alive], kind="stable")[:k]]
    new = np.ones_like(m)
    index = [slice(None)] * w.ndim
    index[dim] = dead
    new[tuple(index)] = 0
    _set_mask(model, name, new, f"structured:{dim}")
    out_dim, companions = _companions(model, name)
    if dim == out_dim:
        for comp in companions:
            cm = np.ones(tuple(model.params[comp].shape))
            cm.reshape(-1)[dead] = 0  # (C,) or GroupNorm-style (1, C, 1, 1)
            _set_mask(model, comp, cm, f"companion:{name}")
    return model


def _companions(model, name):
    """(output dim of weight ``name``, the params whose entries follow its
    outputs: its bias, and a batch norm's gamma/beta right after it)."""
    if hasattr(model, "prune_companions"):
        return model.prune_companions(name)
    return None, []


def global_unstructured(model, amount, names=None):
    """Mask the ``amount`` smallest-magnitude unpruned entries across the
    weights ``names`` together (default: every conv and affine weight), so
    the fraction refers to the whole set, not to each layer."""
    own_masks(model)
    names = list(prunable_names(model) if names is None else names)
    if not names:
        raise ValueError("no weights to prune")
    for nm in names:
        _check_name(model, nm)
    mags, owners, flat = [], [], []
    for j, nm in enumerate(names):
        alive = np.flatnonzero(_mask_of(model, nm))
        mags.append(np.abs(_as_host64(model.params[nm])).ravel()[alive])
        owners.append(np.full(alive.size, j))
        flat.append(alive)
    mags, owners, flat = map(np.concatenate, (mags, owners, flat))
    k = _count(amount, mags.size, "weights")
    chosen = np.argsort(mags, kind="stable")[:k]
    for j, nm in enumerate(names):
        new = np.ones(tuple(model.params[nm].shape))
        new.flat[flat[chosen[owners[chosen] == j]]] = 0
        _set_mask(model, nm, new, "unstructured")
    return model


def apply_masks(model):
    """Zero the masked entries again. A model applies its masks itself to
    whatever is assigned to its params; this is for arrays changed in place
    (``model.params['W1'][...] = ...``)."""
    for name, m in getattr(model, "masks", {}).items():
        value = model.params[name] * m
        dict.__setitem__(model.params, name, value)
    return model


def remove(model, name=None):
    """Make pruning permanent: the zeros stay, the masks go (all of them, or
    those of ``name`` and the bias/BN entries pruned with it)."""
    own_masks(model)
    if name is not None:
        _check_name(model, name)
        if name not in model.masks:
            raise ValueError(f"{name} is not pruned; pruned: {', '.join(model.masks) or 'none'}")
    names = list(model.masks) if name is None else \
        [name] + [k for k, v in model.prune_kinds.items() if v == f"companion:{name}"]
    for nm in names:
        model.masks.pop(nm, None)
        model.prune_kinds.pop(nm, None)
    return model


def is_pruned(model):
    """True when the model holds any pruning mask."""
    return bool(getattr(model, "masks", None))


def sparsity(model, names=None):
    """Fraction of exactly-zero entries: {'per_param': {name: s}, 'global': s}
    over ``names`` (default: every conv and affine weight)."""
    names = list(prunable_names(model) if names is None else names)
    per, zeros, total = {}, 0, 0
    for nm in names:
        _check_name(model, nm)
        w = _as_host64(model.params[nm])
        z = int(np.count_nonzero(w == 0))
        per[nm] = z / w.size  # a layer's weights are never empty
        zeros, total = zeros + z, total + w.size
    return {"per_param": per, "global": zeros / total if total else 0.0}


# ----------------------------------------------------------------- shrinking
def shrink(model):
    """A smaller model of the same class without the structurally pruned conv
    filters and hidden units (ln_structured along the output dimension):
    their weights, bias, batch-norm gamma/beta/running statistics and the
    next layer's matching input channels or rows (the flatten into the first
    affine layer included) are removed, along the graph (channels joined by
    a residual add go together; see :mod:`xpnn.prune._shrink`). Its outputs
    equal the masked model's. The new model's ``shrink_report`` holds
    params and FLOPs before/after."""
    own_masks(model)
    if not hasattr(model, "prune_companions"):
        raise ValueError(f"shrink needs a model made of layers (FullyConnectedNet, "
                         f"TwoLayerNet, ThreeLayerConvNet, ConvNet or an xpnn.nn Sequential), "
                         f"not {type(model).__name__}")
    return shrink_network(model)
