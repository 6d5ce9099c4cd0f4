"""Masks as the pruning functions handle them: host float64 copies, and a
model's mask of a param (all ones where there is none)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..nn.model import MaskedParams


def as_host64(x):
    return np.asarray(backend.to_numpy(x), dtype=np.float64)


def mask_of(model, name):
    m = model.masks.get(name)
    return np.ones(tuple(model.params[name].shape)) if m is None else as_host64(m)


def np_dtype(a):
    """NumPy dtype of an array of any backend ('array_api_strict.float32' too)."""
    return np.dtype(backend.dtype_name(a))


def own_masks(model):
    """Give ``model`` its ``masks`` and ``prune_kinds`` where it has none (a
    course-written model): its params become a :class:`MaskedParams` that
    applies the masks on every assignment, as an xpnn model's params do."""
    if not hasattr(model, "params"):
        raise TypeError(f"expected an xpnn model with a params dict, got {type(model).__name__}")
    if not hasattr(model, "masks"):
        model.masks = {}
    if not isinstance(model.params, MaskedParams):
        model.params = MaskedParams(model.params, model.masks)
    if not hasattr(model, "prune_kinds"):
        model.prune_kinds = {}
    return model
