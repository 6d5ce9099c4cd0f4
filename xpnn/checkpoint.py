"""Checkpoints: arrays in one ``.npz`` (loaded with ``allow_pickle=False``)
and metadata as a JSON string inside it, written atomically.

A checkpoint is data, never code: loading one cannot run anything.
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import warnings
from typing import Any

import numpy as np

from .backend import is_array, to_numpy
from .models.registry import build_model, model_class_name
from .nn.layers import layer_class

__all__ = ["PrefixLock", "save_npz_atomic", "write_atomic", "load_npz", "flatten_state", "unflatten_state", "save_model",
           "load_model", "model_class_name", "model_section", "read_model_section",
           "check_fits", "restore_model", "read_best_stats", "epoch_path", "epoch_prefix",
           "epoch_files"]

_META = "__meta__"


def flatten_state(tree: Any, prefix: str, arrays: dict) -> Any:
    """Replace every array in a nested dict/list by a reference string and
    put the host array in ``arrays``; returns the JSON-able skeleton."""
    if isinstance(tree, dict):
        return {str(k): flatten_state(v, f"{prefix}/{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [flatten_state(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]
    if is_array(tree):
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
    payload = dict(arrays)
    payload[_META] = np.array(json.dumps(meta))
    write_atomic(path, lambda fh: np.savez(fh, **payload))


def write_atomic(path: str, write) -> None:
    """``write(fh)`` into a temporary file beside ``path``, synced to disk,
    then renamed to ``path``: a write that fails part-way (a full disk, a
    crash) leaves the previous file at ``path`` whole, and no temporary."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(folder)
    suffix = os.path.splitext(path)[1] or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is a normal file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(folder: str) -> None:
    """Delete temporary files that a killed writer left (``.tmp-<pid>-*``
    whose process no longer exists), so they do not pile up."""
    if os.name == "nt":           # os.kill(pid, 0) there is no existence test
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if not (name.startswith(".tmp-") and name.endswith((".npz", ".npy")) and len(parts) >= 3
                and parts[1].isdigit()):
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except OSError:
            pass  # exists but is not ours to signal: leave it


def check_writable(prefix: str) -> None:
    """Fail now, not after the first epoch, if checkpoints cannot be written
    next to ``prefix``."""
    folder = os.path.dirname(os.path.abspath(prefix))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=".npz", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OSError(f"cannot write checkpoints to {folder!r}: {exc.strerror or exc}") from None


class PrefixLock:
    """Held while one training writes checkpoints ``<prefix>_epoch_<e>.npz``:
    a second training with the same prefix (another process, or another
    Solver in this one) is refused at once instead of silently replacing
    the first one's files. An OS lock on ``.<name>.lock`` beside them (it
    ends with the process, so a killed run leaves nothing held; the small
    file stays, which keeps the lock race-free)."""

    _held: set = set()   # the lock files this process holds

    def __init__(self, prefix: str):
        folder, name = os.path.split(os.path.abspath(prefix))
        self.prefix = prefix
        self.path = os.path.join(folder, f".{name}.lock")
        self._fh = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if self.path in PrefixLock._held:
            raise RuntimeError(self._busy("another Solver of this process"))
        fh = open(self.path, "a+")
        try:
            _lock_file(fh)
        except OSError as exc:
            if exc.errno in _HELD:
                holder = _read_holder(fh)
                fh.close()
                raise RuntimeError(self._busy(f"process {holder}" if holder else
                                              "another process")) from None
            fh.close()           # a file system without locks: train, but say so
            warnings.warn(f"checkpoint prefix {self.prefix!r}: this file system cannot lock "
                          f"{self.path!r} ({exc.strerror or exc}); another run with the same "
                          f"prefix would not be stopped", RuntimeWarning, stacklevel=3)
            PrefixLock._held.add(self.path)
            return self
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        except OSError:
            _unlock_file(fh)
            fh.close()
            raise
        self._fh = fh
        PrefixLock._held.add(self.path)
        return self

    def _busy(self, who):
        return (f"checkpoint prefix {self.prefix!r} is in use: {who} is training with it, and "
                f"two runs would overwrite each other's {self.prefix}_epoch_<e>.npz files; "
                f"give this run another --checkpoint (checkpoint_name)")

    def __exit__(self, *exc):
        PrefixLock._held.discard(self.path)
        if self._fh is not None:
            _unlock_file(self._fh)
            self._fh.close()
            self._fh = None
        return False


def _read_holder(fh) -> str:
    """The pid the lock file names ('' if it cannot be read)."""
    try:
        fh.seek(0)
        return fh.read(32).strip()
    except OSError:
        return ""


#: the errors of a lock that another process holds (flock: EWOULDBLOCK;
#: Windows' msvcrt.locking: EACCES, EDEADLOCK)
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK",
                                                                errno.EDEADLK)}


#: Windows' locks are byte ranges that also block reads: the one locked
#: lies past the pid, which a refused run then reads
_LOCKED_BYTE = 1 << 20


def _lock_file(fh) -> None:
    """An exclusive, non-blocking lock on the open file (OSError if held)."""
    try:
        import fcntl
    except ImportError:            # Windows
        import msvcrt
        fh.seek(_LOCKED_BYTE)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_file(fh) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt
        fh.seek(_LOCKED_BYTE)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# a training's epoch files: <prefix>_epoch_<e>.npz, named in one place
_EPOCH_FILE = re.compile(r"(.+)_epoch_(\d+)\.npz$")


def epoch_path(prefix: str, epoch: int) -> str:
    """The checkpoint file of ``epoch`` under ``prefix``."""
    return f"{prefix}_epoch_{epoch}.npz"


def epoch_prefix(path: str) -> str | None:
    """The prefix of an epoch file (``runs/digits`` for
    ``runs/digits_epoch_5.npz``); None for a file not so named."""
    m = _EPOCH_FILE.match(str(path))
    return m.group(1) if m else None


def epoch_files(prefix: str) -> list:
    """The epoch files of ``prefix`` that exist, oldest epoch first (by
    number: epoch 10 after epoch 9)."""
    import glob
    found = glob.glob(glob.escape(prefix) + "_epoch_*.npz")
    mine = [(int(m.group(2)), f) for f in found
            for m in [_EPOCH_FILE.match(f)] if m and m.group(1) == prefix]
    return [f for _, f in sorted(mine)]


def _siblings(path):
    """For a missing checkpoint: the epoch files of its prefix that do exist
    (``--keep-checkpoints`` removes the others), or those in its folder."""
    import glob
    prefix = epoch_prefix(path)
    if prefix:
        found = epoch_files(prefix)
    else:   # any .npz of the folder, epoch files in epoch order
        found = sorted(glob.glob(os.path.join(glob.escape(os.path.dirname(path) or "."),
                                              "*.npz")),
                       key=lambda f: (int(m.group(2)) if (m := _EPOCH_FILE.match(f)) else -1, f))
    if not found:
        return ""
    shown = ", ".join(found[-8:])
    return f"; there {'is' if len(found) == 1 else 'are'} {shown}" + \
        (f" (and {len(found) - 8} older)" if len(found) > 8 else "")


def load_npz(path: str) -> tuple[dict, dict]:
    """(meta, arrays) from a file written by :func:`save_npz_atomic`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist{_siblings(path)}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":   # every .npz is a zip archive
        kind = ("a JSON or text file (an architecture file is given to xpnn train --arch)"
                if head[:1] in (b"[", b"{") else
                "a NumPy .npy file" if head == b"\x93NUM" else
                "empty" if not head else f"a file starting with {head!r}")
        raise ValueError(f"checkpoint {path!r} is not an .npz checkpoint: it is {kind}; "
                         f"checkpoints are written by xpnn train --checkpoint, Solver("
                         f"checkpoint_name=...) and save_model")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"checkpoint {path!r} is not a readable xpnn .npz checkpoint: "
                         f"{type(exc).__name__}: {exc}") from exc
    if _META not in arrays:
        raise ValueError(f"checkpoint {path!r} has no {_META} entry; not an xpnn checkpoint")
    try:
        meta = json.loads(str(arrays.pop(_META)))
    except ValueError as exc:
        raise ValueError(f"checkpoint {path!r}: its metadata is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path!r}: its metadata is a {type(meta).__name__}, "
                         "expected a JSON object")
    return meta, arrays


def model_section(model):
    """A model as checkpoint data: class, constructor arguments, params,
    batch-norm state, pruning masks and kinds, reg (the one definition,
    for saved models and Solver checkpoints alike)."""
    return {"class": model_class_name(model), "init_kwargs": getattr(model, "init_kwargs", None),
            "params": model.params, "bn_params": getattr(model, "bn_params", []),
            "masks": getattr(model, "masks", {}), "prune_kinds": getattr(model, "prune_kinds", {}),
            "reg": getattr(model, "reg", None)}


def save_model(model, path):
    """Write a model (class, constructor arguments, params, batch-norm
    running statistics, pruning masks) to ``path`` atomically."""
    arrays: dict = {}
    meta = {"format": "xpnn-model-1", "model": flatten_state(model_section(model), "m", arrays)}
    save_npz_atomic(path, meta, arrays)
    return path


def read_model_section(path, meta, arrays):
    """The model section of a checkpoint or saved model as a dict (class,
    init_kwargs, params, bn_params, masks, prune_kinds, reg), NumPy arrays;
    a ValueError naming ``path`` when it is missing or malformed."""
    try:
        m = unflatten_state(meta["model"], arrays)
        sec = {"class": m.get("class"), "init_kwargs": m.get("init_kwargs"),
               "params": dict(m["params"]), "bn_params": list(m.get("bn_params") or []),
               "masks": dict(m.get("masks") or {}),
               "prune_kinds": dict(m.get("prune_kinds") or {}), "reg": m.get("reg")}
        for k, v in sec["params"].items():
            if not isinstance(v, np.ndarray):
                raise TypeError(f"param {k} is a {type(v).__name__}, not an array")
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ValueError(f"checkpoint {path!r}: the model section is incomplete or malformed "
                         f"({type(exc).__name__}: {exc})") from None
    return sec


# settings that may differ between a stored model and the model taking its state
_FREE_SETTINGS = ("reg", "weight_scale", "seed")


def check_fits(model, sec):
    """Raise ValueError unless the stored model ``sec`` fits ``model``: the
    same class and settings (batch norm or layer norm, dropout, sizes,
    dtype...; a course-written model without constructor arguments is
    compared by its params only), the same param names and shapes, the
    same number of normalisation layers."""
    mine_kw = getattr(model, "init_kwargs", None)
    stored_kw = sec["init_kwargs"]
    if mine_kw is not None and stored_kw is not None:
        if sec["class"] != model_class_name(model):
            raise ValueError(f"it was written by a {sec['class']}, the model is a "
                             f"{model_class_name(model)}")
        mine = json.loads(json.dumps(mine_kw, default=str))
        differ = sorted(k for k in set(mine) | set(stored_kw)
                        if k not in _FREE_SETTINGS and mine.get(k) != stored_kw.get(k))
        if differ:
            raise ValueError("its model settings differ: " + ", ".join(
                f"{k}={stored_kw.get(k)!r} there, {mine.get(k)!r} here" for k in differ))
    params = sec["params"]
    if set(params) != set(model.params):
        raise ValueError(f"it holds params {sorted(params)} but the model has "
                         f"{sorted(model.params)}")
    for k, v in params.items():
        if tuple(v.shape) != tuple(model.params[k].shape):
            raise ValueError(f"param {k} has shape {tuple(v.shape)}, the model expects "
                             f"{tuple(model.params[k].shape)}")
    mine_bn = getattr(model, "bn_params", None)
    if mine_bn is not None and len(sec["bn_params"]) != len(mine_bn):
        raise ValueError(f"it holds {len(sec['bn_params'])} normalisation layers' state, the "
                         f"model has {len(mine_bn)}")


def restore_model(model, sec, device=None, reg=True):
    """Put the stored state ``sec`` (checked by :func:`check_fits`) into
    ``model`` on backend ``device``: params, batch-norm state, pruning masks
    and kinds, and (``reg=True``) the regularisation strength."""
    from . import backend
    model.masks = backend.to_device(sec["masks"], device)  # first: the params take them
    model.prune_kinds = dict(sec["prune_kinds"])
    model.params = backend.to_device(sec["params"], device)
    if hasattr(model, "bn_params"):
        model.bn_params[:] = backend.to_device(sec["bn_params"], device)
    if reg and sec["reg"] is not None:
        model.reg = float(sec["reg"])
    return model


def _sizes(value):
    """The layer sizes in a stored constructor argument: its ints (bools
    aside), and in a Sequential's stored layers the arguments each layer
    class declares as sizing a parameter (``Layer.size_args``: a Conv2d's
    channels and kernel size, an LSTM's input and hidden sizes, ...), in
    nested layers (a Residual's body and shortcut) too."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [n for item in value for n in _sizes(item)]
    if isinstance(value, dict):
        cls = layer_class(value.get("type"))
        sized = cls.size_args if cls is not None else ()
        return [n for k, v in value.items()
                for n in (_sizes(v) if k in sized or isinstance(v, (list, dict)) else [])]
    return []


def build_stored_model(path, sec, kwargs):
    """The model of a stored section (:func:`read_model_section`), built from
    its class and ``kwargs`` (its constructor arguments), weights not yet
    loaded. A layer size can never exceed the number of values the file
    stores for the whole model: a larger one (crafted or foreign metadata,
    e.g. a 10^7 x 10^7 layer) is refused before anything is allocated."""
    stored = sum(int(np.prod(v.shape)) for v in sec["params"].values())
    for key, value in (kwargs or {}).items():
        too_big = [n for n in _sizes(value) if n > max(stored, 1)]
        if key not in ("seed", "rng") and too_big:
            raise ValueError(f"{path!r}: model setting {key} asks for a size of {max(too_big)}, "
                             f"more than the {stored} parameter values the file holds; the "
                             "metadata is not this file's (nothing was allocated)")
    try:
        return build_model(sec["class"], kwargs)
    except MemoryError:
        raise ValueError(f"{path!r}: its model settings {kwargs} ask for more memory than "
                         f"there is; the file holds {stored} parameter values") from None
    except TypeError as exc:
        raise ValueError(f"{path!r}: its model settings do not build a {sec['class']}: "
                         f"{exc}") from None


def read_best_stats(path, meta, arrays, entries):
    """The batch-norm running statistics a checkpoint stores with its best
    params (``best_bn_stats``), checked against the model's stored entries
    ``entries`` (one dict per layer, same shapes, cast to their dtype);
    None where the checkpoint has none (older ones, models without batch
    norm)."""
    try:
        stats = unflatten_state(meta.get("best_bn_stats"), arrays)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path!r}: best_bn_stats refers to a missing array ({exc})") from None
    if stats is None:
        return None
    if not isinstance(stats, list) or len(stats) != len(entries):
        raise ValueError(f"{path!r}: best_bn_stats does not match the model's "
                         f"{len(entries)} batch-norm layers")
    out = []
    for i, (entry, saved) in enumerate(zip(entries, stats)):
        if not isinstance(saved, dict) or not isinstance(entry, dict):
            raise ValueError(f"{path!r}: best_bn_stats[{i}] is not a layer's statistics")
        checked = {}
        for k, v in saved.items():
            old = entry.get(k)
            v = np.asarray(v)
            if old is None or np.shape(old) != v.shape or v.dtype.kind != "f":
                raise ValueError(f"{path!r}: best_bn_stats[{i}][{k!r}] has shape {v.shape} "
                                 f"({v.dtype}); the layer's is {np.shape(old)}")
            checked[k] = v.astype(np.asarray(old).dtype)
        out.append(checked)
    return out


def load_model(path, best=False):
    """A model from :func:`save_model` or from a Solver checkpoint, on the
    active backend, with its shapes (shrunk ones too) and masks. From a
    checkpoint, ``best=True`` takes the params of the best validation
    accuracy so far (those ``xpnn train`` reports at its end) instead of the
    last epoch's; ``model.loaded_params`` says which were taken."""
    meta, arrays = load_npz(path)
    if meta.get("format") not in ("xpnn-model-1", "xpnn-checkpoint-1") or \
            not isinstance(meta.get("model"), dict):
        raise ValueError(f"{path!r} holds neither an xpnn model nor a solver checkpoint")
    sec = read_model_section(path, meta, arrays)
    which = "the saved model's params"
    if meta.get("format") == "xpnn-checkpoint-1":
        which = f"the params of epoch {meta.get('epoch')} (the last the checkpoint holds)"
        stored = unflatten_state(meta.get("best_params") or {}, arrays) if best else {}
        if isinstance(stored, dict) and stored and set(stored) == set(sec["params"]):
            sec = {**sec, "params": {k: np.asarray(v) for k, v in stored.items()}}
            stats = read_best_stats(path, meta, arrays, sec["bn_params"])
            if stats is not None:
                sec["bn_params"] = [{**e, **st} for e, st in zip(sec["bn_params"], stats)]
            which = (f"the params of the best validation accuracy, "
                     f"{float(meta.get('best_val_acc', float('nan'))):.4f} (those xpnn train "
                     f"reports at its end)")
    kwargs = sec["init_kwargs"] if isinstance(sec["init_kwargs"], dict) else {}
    model = build_stored_model(path, sec, {**kwargs, "rng": 0})
    try:
        check_fits(model, sec)
    except ValueError as exc:
        raise ValueError(f"{path!r} does not fit a {sec['class']} built from its stored "
                         f"arguments: {exc}") from None
    model = restore_model(model, sec)
    model.loaded_params = which
    return model
