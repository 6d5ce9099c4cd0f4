"""Shrinking a pruned network (a Sequential or a course model): removing the
output channels (units) that structured pruning zeroed, together with
everything that reads or follows them, along the graph.

Channels live in *spaces*: a layer of channel rule "new" (Conv2d, Linear)
makes one for its outputs; "same" layers (batch norms, activations, pools,
dropout, Flatten) act within the space they get; a Residual's add ties its
body's output space to its shortcut's (or, with the identity shortcut, to
its own input's), so those are one space (Torch-Pruning's dependency group).
Each layer says which by :meth:`~xpnn.nn.layers.Layer.trace_channels`; one
that declares no rule is refused, by name. A channel of a space can go only
when every layer producing that space has pruned it (``ln_structured``
along its outputs, which also masks the bias: a pruned channel then carries
exactly zero, and a batch norm after it is masked with it). The network's
input and class scores, and spaces an "all" layer (layer or group norm)
reads, are kept whole.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..nn.network import _walk as _walk_named
from ._masks import as_host64, mask_of, np_dtype


class _Spaces:
    """Union-find over channel spaces; ``whole``: root -> why the space must
    keep all its channels."""

    def __init__(self):
        self.parent, self.size, self.whole = [], [], {}

    def new(self, size):
        self.parent.append(len(self.parent))
        self.size.append(int(size))
        return len(self.parent) - 1

    def find(self, s):
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            if b in self.whole:
                self.whole.setdefault(a, self.whole[b])
        return a

    def keep_whole(self, s, why):
        self.whole.setdefault(self.find(s), why)


class _Tracer:
    """What :meth:`Layer.trace_channels` tells: for each layer the spaces it
    reads and writes (``info``), over the union-find ``spaces``."""

    def __init__(self, spaces):
        self.spaces, self.info = spaces, {}

    def new(self, size):
        return self.spaces.new(size)

    def union(self, a, b):
        return self.spaces.union(a, b)

    def keep_whole(self, space, why):
        self.spaces.keep_whole(space, why)

    def record(self, layer, space_in, space_out):
        self.info[id(layer)] = (space_in, space_out)
        return space_out

    def trace(self, layers, space):
        """Trace ``layers`` applied in order from ``space``; the last space."""
        for layer in layers:
            space = layer.trace_channels(self, space)
        return space


def _walk(layers):
    """Every layer, a Residual's body and shortcut too, in model order."""
    return [layer for _, layer in _walk_named(layers)]


def model_stats(model):
    """{'params': number of parameters, 'flops': multiply-adds per sample
    (of the conv and affine layers; 0 for a model without a layer list)}."""
    params = sum(int(np.prod(v.shape)) for v in model.params.values())
    flops = sum(la.macs() for la in model.modules) if hasattr(model, "modules") else 0
    return {"params": params, "flops": int(flops)}


def shrink_network(model):
    """A smaller model of the same kind computing what the masked one
    computes; see the module docstring for what is removed."""
    sp = _Spaces()
    tracer = _Tracer(sp)
    first = sp.new(model.input_shape[0])
    sp.keep_whole(first, "reads the network's input")
    last = tracer.trace(model.modules, first)
    info = tracer.info
    sp.keep_whole(last, "is the output layer: its units are the class scores and cannot be "
                  "removed")
    layers = _walk(model.modules)
    producers = [la for la in layers if la.channels == "new"]
    # a space's removable channels: pruned along the outputs of every producer of it
    dead: dict = {}
    for la in producers:
        s = sp.find(info[id(la)][1])
        b = la.param_names["b"]
        kind = str(model.prune_kinds.get(b, ""))
        d = set(np.flatnonzero(mask_of(model, b) == 0).tolist()) \
            if kind.startswith("companion:") else set()
        dead[s] = d if s not in dead else dead[s] & d
    # a batch norm maps a zero channel to its beta (less gamma times the running
    # mean): the channel stays zero only where its gamma and beta are masked too
    for la in layers:
        if la.channels == "same" and la.zero_needs:
            s = sp.find(info[id(la)][0])
            if s in dead:
                for k in la.zero_needs:
                    dead[s] &= set(np.flatnonzero(mask_of(model, la.param_names[k]) == 0)
                                   .tolist())
    keep = {}
    for s, d in dead.items():
        if not d:
            continue
        if s in sp.whole:
            names = [la.param_names["W"] for la in producers if sp.find(info[id(la)][1]) == s]
            raise ValueError(f"{', '.join(names)} {sp.whole[s]}")
        if len(d) == sp.size[s]:
            group = [la for la in producers if sp.find(info[id(la)][1]) == s]
            names = [la.param_names["W"] for la in group]
            raise ValueError(f"every {group[0].unit} of {', '.join(names)} is pruned, so nothing "
                             "would be left to pass on; prune a fraction below 1")
        keep[s] = np.array(sorted(set(range(sp.size[s])) - d))
    if not keep:
        _why_nothing(model, producers)
        raise ValueError("nothing to shrink: no output channel is pruned (ln_structured along "
                         "the outputs) in every layer that produces it; channels joined by a "
                         "residual add go only when pruned in both branches")

    def kept(space):
        return keep.get(sp.find(space))

    def size(space):
        return sp.size[sp.find(space)]

    def respec(layer):
        """The layer's spec with the kept channels; a container's children too."""
        if layer.children():
            spec = layer.spec()
            for branch in dict.fromkeys(b for b, _, _ in layer.children()):
                spec[branch] = [respec(c) for b, _, c in layer.children() if b == branch]
            return spec
        sin, sout = info[id(layer)]
        return layer.shrunk_spec(kept(sin), kept(sout), size(sin))

    def cut(layer, local, arr):
        sin, sout = info[id(layer)]
        return layer.shrunk_param(local, arr, kept(sin), kept(sout), size(sin))

    out_sizes = {la.param_names["W"]: len(kept(info[id(la)][1])) for la in producers
                 if kept(info[id(la)][1]) is not None}
    new = model._rebuilt([respec(la) for la in model.modules], out_sizes)
    new.reg = model.reg
    dev = backend.backend_of(next(iter(model.params.values())))
    params, masks, kinds = {}, {}, {}
    for old, nl in zip(layers, _walk(new.modules)):
        for local, name in old.param_names.items():
            v = model.params[name]
            params[name] = backend.to_device(cut(old, local, as_host64(v)).astype(np_dtype(v)),
                                             dev)
            if name in model.masks:
                cm = cut(old, local, mask_of(model, name))
                if not cm.all():
                    masks[name] = backend.to_device(cm.astype(np_dtype(v)), dev)
                    kind = model.prune_kinds[name]
                    kinds[name] = kind if kind.startswith("companion:") else (
                        "unstructured" if kind == "mixed" or kind.startswith("structured")
                        else kind)
        if hasattr(old, "_bn_index"):
            ob, nb = model.bn_params[old._bn_index], new.bn_params[nl._bn_index]
            for key in ("running_mean", "running_var"):
                if key not in ob:  # a layer norm's entry holds no statistics
                    continue
                v = as_host64(ob[key])
                nb[key] = backend.to_device(cut(old, "gamma", v).astype(np_dtype(ob[key])), dev)
    new.params = params
    new.masks, new.prune_kinds = masks, kinds
    before, after = model_stats(model), model_stats(new)
    removed = {la.param_names["W"]: la.num_outputs - out_sizes[la.param_names["W"]]
               for la in producers if la.param_names["W"] in out_sizes}
    new.shrink_report = {"params_before": before["params"], "params_after": after["params"],
                         "flops_before": before["flops"], "flops_after": after["flops"],
                         "removed": removed}
    return new


def _why_nothing(model, producers):
    """When nothing can be removed because a weight was pruned some other
    way, say which and how to prune it instead."""
    for la in producers:
        name = la.param_names["W"]
        kind = model.prune_kinds.get(name)
        unit, od = la.unit + "s", la.out_dim
        if kind is None or kind == f"structured:{od}":  # along its outputs: not the reason
            continue
        what = ("an unstructured mask" if kind in ("unstructured", "mixed")
                else f"a mask along dim {kind.split(':')[-1]}")
        raise ValueError(f"{name} has {what}; shrink removes whole {unit} only "
                         f"(prune.ln_structured(model, {name!r}, amount, dim={od})). "
                         "Call prune.remove to keep other zeros in place instead.")
