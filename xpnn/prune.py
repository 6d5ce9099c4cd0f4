"""Magnitude pruning that really shrinks the model.

Masks sit beside the weights in ``model.masks`` (0/1 arrays on the model's
backend) until :func:`remove` makes the zeros permanent; the Solver
re-applies them after every update, so fine-tuning keeps pruned weights at
exactly zero. :func:`shrink` then removes structurally pruned conv filters
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

import copy

import numpy as np

from . import backend
from .checkpoint import model_class_name
from .layers._util import is_number

__all__ = ["l1_unstructured", "random_unstructured", "ln_structured", "global_unstructured",
           "remove", "is_pruned", "sparsity", "apply_masks", "shrink", "model_stats",
           "prunable_names"]


# ----------------------------------------------------------------- helpers
def _state(model):
    if not hasattr(model, "params"):
        raise TypeError(f"expected an xpnn model with a params dict, got {type(model).__name__}")
    if not hasattr(model, "masks"):
        model.masks = {}
    if not hasattr(model, "prune_kinds"):
        model.prune_kinds = {}
    return model


def prunable_names(model):
    """The conv and affine weight names, in layer order."""
    if hasattr(model, "weight_names"):  # an xpnn.nn Sequential knows its own
        return model.weight_names()
    if getattr(model, "layers", None):
        return [spec["W"] for spec in model.layers]
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


def _host(x):
    return np.asarray(backend.to_numpy(x), dtype=np.float64)


def _mask_of(model, name):
    m = model.masks.get(name)
    return np.ones(tuple(model.params[name].shape)) if m is None else _host(m)


def _set_mask(model, name, new_mask, kind):
    """Combine ``new_mask`` (host 0/1) with the existing one and zero the weight."""
    combined = _mask_of(model, name) * new_mask
    p = model.params[name]
    dev = backend.backend_of(p)
    model.masks[name] = backend.to_device(combined.astype(_np_dtype(p)), dev)
    old = model.prune_kinds.get(name)
    model.prune_kinds[name] = kind if old in (None, kind) else "mixed"
    model.params[name] = p * model.masks[name]


def _np_dtype(a):
    """NumPy dtype of an array of any backend ('array_api_strict.float32' too)."""
    return np.dtype(str(a.dtype).rsplit(".", 1)[-1])


def _layer_of(model, name):
    for i, spec in enumerate(getattr(model, "layers", [])):
        if name == spec["W"]:
            return i, spec
    return None, None


def _out_dim(spec):
    return 0 if spec["kind"] == "conv" else 1


# ----------------------------------------------------------------- pruning
def l1_unstructured(model, name, amount):
    """Mask the ``amount`` smallest-magnitude unpruned entries of params[name]
    (among equal magnitudes, the lowest flat index goes first)."""
    _state(model)
    _check_name(model, name)
    w, m = np.abs(_host(model.params[name])), _mask_of(model, name)
    alive = np.flatnonzero(m)
    k = _count(amount, alive.size, f"entries of {name}")
    new = np.ones_like(m)
    new.flat[alive[np.argsort(w.flat[alive], kind="stable")[:k]]] = 0
    _set_mask(model, name, new, "unstructured")
    return model


def random_unstructured(model, name, amount, seed=None):
    """Mask ``amount`` unpruned entries of params[name] chosen at random
    (``seed`` for repeatability; NumPy's global state is not touched)."""
    _state(model)
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
    _state(model)
    _check_name(model, name)
    w = _host(model.params[name])
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
    li, spec = _layer_of(model, name)
    if spec is None:
        return None, []
    return _out_dim(spec), [spec[k] for k in ("b", "gamma", "beta") if k in spec]


def global_unstructured(model, amount, names=None):
    """Mask the ``amount`` smallest-magnitude unpruned entries across the
    weights ``names`` together (default: every conv and affine weight), so
    the fraction refers to the whole set, not to each layer."""
    _state(model)
    names = list(prunable_names(model) if names is None else names)
    if not names:
        raise ValueError("no weights to prune")
    for nm in names:
        _check_name(model, nm)
    mags, owners, flat = [], [], []
    for j, nm in enumerate(names):
        alive = np.flatnonzero(_mask_of(model, nm))
        mags.append(np.abs(_host(model.params[nm])).ravel()[alive])
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
    """Zero the masked entries again (the Solver calls this after updates)."""
    for name, m in getattr(model, "masks", {}).items():
        model.params[name] = model.params[name] * m
    return model


def remove(model, name=None):
    """Make pruning permanent: the zeros stay, the masks go (all of them, or
    those of ``name`` and the bias/BN entries pruned with it)."""
    _state(model)
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
        w = _host(model.params[nm])
        z = int(np.count_nonzero(w == 0))
        per[nm] = z / w.size if w.size else 0.0
        zeros, total = zeros + z, total + w.size
    return {"per_param": per, "global": zeros / total if total else 0.0}


# ----------------------------------------------------------------- shrinking
def _geometry(model):
    """Walk the layers once from the input size. Per layer: (pixels of a conv
    layer's output before pooling, (C, H, W) after its pooling), or
    (None, None) for affine layers."""
    from .layers._util import out_size
    dims = model.init_kwargs.get("input_dim")
    h = w = None
    if isinstance(dims, (list, tuple)):
        _, h, w = dims
    geo = []
    for spec in model.layers:
        if spec["kind"] != "conv":
            geo.append((None, None))
            continue
        F, _, kh, kw = model.params[spec["W"]].shape
        s, p = spec["conv_param"]["stride"], spec["conv_param"]["pad"]
        h, w = out_size(h + 2 * p, kh, s), out_size(w + 2 * p, kw, s)
        pixels = h * w
        if spec["pool"] is not None:
            q = spec["pool"]
            h, w = out_size(h, q["pool_height"], q["stride"]), out_size(w, q["pool_width"],
                                                                        q["stride"])
        geo.append((pixels, (F, 1, 1) if spec["global_pool"] else (F, h, w)))
    return geo


def model_stats(model):
    """{'params': number of parameters, 'flops': multiply-adds per sample}."""
    params = sum(int(np.prod(v.shape)) for v in model.params.values())
    if hasattr(model, "modules"):  # an xpnn.nn Sequential counts its own
        return {"params": params, "flops": int(sum(la.macs() for la in model.modules))}
    flops = 0
    layers = getattr(model, "layers", [])
    for spec, (pixels, _) in zip(layers, _geometry(model) if layers else []):
        W = model.params[spec["W"]]
        if spec["kind"] == "conv":
            flops += int(np.prod(W.shape)) * pixels
        else:
            flops += int(W.shape[0]) * int(W.shape[1])
    return {"params": params, "flops": int(flops)}


def _new_kwargs(model, keep):
    kw = copy.deepcopy(model.init_kwargs)
    sizes = {i: len(k) for i, k in keep.items()}
    cls = model_class_name(model)
    if cls == "FullyConnectedNet":
        kw["hidden_dims"] = [sizes.get(i, h) for i, h in enumerate(kw["hidden_dims"])]
    elif cls == "TwoLayerNet":
        kw["hidden_dim"] = sizes.get(0, kw["hidden_dim"])
    elif cls == "ThreeLayerConvNet":
        kw["num_filters"] = sizes.get(0, kw["num_filters"])
        kw["hidden_dim"] = sizes.get(1, kw["hidden_dim"])
    elif cls == "ConvNet":
        i, blocks = 0, []
        for block in kw["conv_blocks"]:
            blocks.append([sizes.get(i + j, f) for j, f in enumerate(block)])
            i += len(block)
        kw["conv_blocks"] = blocks
        kw["hidden_dims"] = [sizes.get(i + j, h) for j, h in enumerate(kw["hidden_dims"])]
    else:
        raise ValueError(f"shrink supports FullyConnectedNet, TwoLayerNet, ThreeLayerConvNet "
                         f"and ConvNet, not {cls}")
    return kw


def shrink(model):
    """A smaller model of the same class without the structurally pruned conv
    filters and hidden units (ln_structured along the output dimension):
    their weights, bias, batch-norm gamma/beta/running statistics and the
    next layer's matching input channels or rows (the flatten into the first
    affine layer included) are removed. Its outputs equal the masked model's.
    The new model's ``shrink_report`` holds params and FLOPs before/after."""
    from .models import build_model
    _state(model)
    if hasattr(model, "prune_companions"):  # an xpnn.nn Sequential: along its graph
        from .nn.shrink import shrink_sequential
        return shrink_sequential(model)
    layers = getattr(model, "layers", None)
    if not layers:
        raise ValueError("shrink needs a model with an explicit layer list "
                         "(FullyConnectedNet, TwoLayerNet, ThreeLayerConvNet, ConvNet) or an "
                         "xpnn.nn Sequential")
    keep = {}
    for li, spec in enumerate(layers):
        # removable outputs are those pruned by ln_structured along the output
        # dimension: it masks the bias too ("companion"), so they output zero
        if not model.prune_kinds.get(spec["b"], "").startswith("companion:"):
            continue
        if li == len(layers) - 1:
            raise ValueError(f"{spec['W']} is the output layer: its units are the class "
                             "scores and cannot be removed")
        if spec["norm"] == "layernorm":
            raise ValueError(f"{spec['W']} feeds a layer norm, whose statistics span all its "
                             "units: removing pruned units would change the others' outputs")
        keep[li] = np.flatnonzero(_mask_of(model, spec["b"]))
        if keep[li].size == 0:
            unit = "filter" if spec["kind"] == "conv" else "unit"
            raise ValueError(f"every {unit} of {spec['W']} is pruned, so nothing would be "
                             f"left to pass on; prune a fraction below 1")
    if not keep:
        for spec in layers:
            kind = model.prune_kinds.get(spec["W"])
            unit, od = ("filters", 0) if spec["kind"] == "conv" else ("units", 1)
            if kind is None:
                continue
            what = ("an unstructured mask" if kind in ("unstructured", "mixed")
                    else f"a mask along dim {kind.split(':')[-1]}")
            raise ValueError(f"{spec['W']} has {what}; shrink removes whole {unit} only "
                             f"(prune.ln_structured(model, {spec['W']!r}, amount, dim={od})). "
                             "Call prune.remove to keep other zeros in place instead.")
        raise ValueError("nothing to shrink: no layer has filters or units pruned with "
                         "ln_structured along its output dimension")
    shapes = [shape for _, shape in _geometry(model)]
    owner = {}  # param name -> layer index
    for li, spec in enumerate(layers):
        for key in ("W", "b", "gamma", "beta"):
            if key in spec:
                owner[spec[key]] = li

    def cut(name, arr):
        li = owner.get(name)
        if li is None:
            return arr
        spec = layers[li]
        if li in keep:  # this layer's outputs
            idx = keep[li]
            arr = arr[idx] if (name != spec["W"] or spec["kind"] == "conv") else arr[:, idx]
        if name == spec["W"] and li - 1 in keep:  # this layer's inputs
            prev, idx = layers[li - 1], keep[li - 1]
            if spec["kind"] == "conv":
                arr = arr[:, idx]
            elif prev["kind"] == "conv":  # flatten of (C, H, W): keep whole channel blocks
                _, h, w = shapes[li - 1]
                rows = (idx[:, None] * (h * w) + np.arange(h * w)[None, :]).ravel()
                arr = arr[rows]
            else:
                arr = arr[idx]
        return arr

    before = model_stats(model)
    kwargs = _new_kwargs(model, keep)
    new = build_model(model_class_name(model), {**kwargs, "rng": 0})
    dev = backend.backend_of(next(iter(model.params.values())))
    new.params = backend.to_device(
        {k: cut(k, _host(v)).astype(_np_dtype(v)) for k, v in model.params.items()}, dev)
    new.reg = model.reg
    for li, spec in enumerate(layers):
        if "bn_index" in spec:
            old_bn = model.bn_params[spec["bn_index"]]
            nb = new.bn_params[spec["bn_index"]]
            for key in ("running_mean", "running_var"):
                if key in old_bn:
                    v = _host(old_bn[key])
                    nb[key] = backend.to_device(
                        (v[keep[li]] if li in keep else v).astype(_np_dtype(old_bn[key])), dev)
    new.masks, new.prune_kinds = {}, {}
    for name, m in model.masks.items():  # what is left of each mask, cut to size
        cm = cut(name, _host(m))
        if not cm.all():
            kind = model.prune_kinds[name]
            new.masks[name] = backend.to_device(cm.astype(_np_dtype(m)), dev)
            new.prune_kinds[name] = "unstructured" if owner.get(name) in keep else kind
    after = model_stats(new)
    new.shrink_report = {"params_before": before["params"], "params_after": after["params"],
                         "flops_before": before["flops"], "flops_after": after["flops"],
                         "removed": {layers[li]["W"]: _out_size(model, li) - len(k)
                                     for li, k in keep.items()}}
    return new


def _out_size(model, li):
    spec = model.layers[li]
    return int(model.params[spec["W"]].shape[_out_dim(spec)])
