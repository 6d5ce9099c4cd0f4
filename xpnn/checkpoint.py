"""Checkpoints: arrays in one ``.npz`` (loaded with ``allow_pickle=False``)
and metadata as a JSON string inside it, written atomically.

A checkpoint is data, never code: loading one cannot run anything.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from .backend import backend_of, to_numpy

__all__ = ["save_npz_atomic", "load_npz", "flatten_state", "unflatten_state", "save_model",
           "load_model", "model_class_name"]

_META = "__meta__"


def model_class_name(model) -> str:
    """The xpnn model class that rebuilds ``model`` from its init_kwargs (a
    course edition's variant names the xpnn class it stands for)."""
    return getattr(model, "checkpoint_class", type(model).__name__)


def flatten_state(tree: Any, prefix: str, arrays: dict) -> Any:
    """Replace every array in a nested dict/list by a reference string and
    put the host array in ``arrays``; returns the JSON-able skeleton."""
    if isinstance(tree, dict):
        return {str(k): flatten_state(v, f"{prefix}/{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [flatten_state(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]
    if backend_of(tree) is not None:
        arrays[prefix] = np.asarray(to_numpy(tree))
        return {"__array__": prefix}
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def unflatten_state(skeleton: Any, arrays) -> Any:
    """Inverse of :func:`flatten_state` (arrays come back as NumPy)."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__array__"}:
            return np.array(arrays[skeleton["__array__"]])
        return {k: unflatten_state(v, arrays) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, arrays) for v in skeleton]
    return skeleton


def save_npz_atomic(path: str, meta: dict, arrays: dict) -> None:
    """Write ``arrays`` and ``meta`` (JSON) to ``path`` via a temporary file
    in the same folder and a rename: a crash never leaves a torn file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = dict(arrays)
    payload[_META] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path: str) -> tuple[dict, dict]:
    """(meta, arrays) from a file written by :func:`save_npz_atomic`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"checkpoint {path!r} is not a readable xpnn .npz checkpoint: "
                         f"{type(exc).__name__}: {exc}") from exc
    if _META not in arrays:
        raise ValueError(f"checkpoint {path!r} has no {_META} entry; not an xpnn checkpoint")
    meta = json.loads(str(arrays.pop(_META)))
    return meta, arrays


def _model_section(model):
    return {"class": model_class_name(model), "init_kwargs": getattr(model, "init_kwargs", None),
            "params": model.params, "bn_params": getattr(model, "bn_params", []),
            "masks": getattr(model, "masks", {}), "prune_kinds": getattr(model, "prune_kinds", {}),
            "reg": getattr(model, "reg", None)}


def save_model(model, path):
    """Write a model (class, constructor arguments, params, batch-norm
    running statistics, pruning masks) to ``path`` atomically."""
    arrays: dict = {}
    meta = {"format": "xpnn-model-1", "model": flatten_state(_model_section(model), "m", arrays)}
    save_npz_atomic(path, meta, arrays)
    return path


def load_model(path):
    """A model from :func:`save_model` or from a Solver checkpoint, on the
    active backend, with its shapes (shrunk ones too) and masks."""
    from . import backend
    from .models import build_model
    meta, arrays = load_npz(path)
    if meta.get("format") not in ("xpnn-model-1", "xpnn-checkpoint-1") or "model" not in meta:
        raise ValueError(f"{path!r} holds neither an xpnn model nor a solver checkpoint")
    m = unflatten_state(meta["model"], arrays)
    kwargs = dict(m.get("init_kwargs") or {})
    model = build_model(m.get("class"), {**kwargs, "rng": 0})
    for k, v in m["params"].items():
        if k not in model.params or tuple(v.shape) != tuple(model.params[k].shape):
            raise ValueError(f"{path!r}: param {k} of shape {tuple(v.shape)} does not fit a "
                             f"{m.get('class')} built from its stored arguments")
    model.params = backend.to_device(m["params"])
    if m.get("bn_params"):
        model.bn_params[:] = backend.to_device(m["bn_params"])
    model.masks = backend.to_device(m.get("masks") or {})
    model.prune_kinds = dict(m.get("prune_kinds") or {})
    if m.get("reg") is not None:
        model.reg = float(m["reg"])
    return model
