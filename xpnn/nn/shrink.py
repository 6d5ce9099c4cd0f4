"""Shrinking a pruned network (a Sequential or a course model): removing the
output channels (units) that structured pruning zeroed, together with
everything that reads or follows them, along the graph.

Channels live in *spaces*: a Conv2d or Linear makes a new one for its
outputs; batch norms, activations, pools and dropout act within the space
they get; a Residual's add ties its body's output space to its shortcut's
(or, with the identity shortcut, to its own input's), so those are one space
(Torch-Pruning's dependency group). A channel of a space can go only when
every layer producing that space has pruned it (``ln_structured`` along its
outputs, which also masks the bias: a pruned channel then carries exactly
zero, and a batch norm after it is masked with it). The network's input and
class scores, and spaces a LayerNorm or GroupNorm spans, are kept whole.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .layers import (BatchNorm1d, BatchNorm2d, Conv2d, GroupNorm, LayerNorm, Linear, PReLU,
                     Residual)


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


def _trace(layers, space, sp, info):
    """Record for each layer the spaces it reads and writes; returns the
    space of the last output."""
    for layer in layers:
        if isinstance(layer, (Conv2d, Linear)):
            out = sp.new(layer.out_channels if isinstance(layer, Conv2d) else
                         layer.out_features)
            info[id(layer)] = (space, out)
            space = out
        elif isinstance(layer, Residual):
            a = _trace(layer.body, space, sp, info)
            b = _trace(layer.shortcut, space, sp, info)  # no shortcut layers: the input
            space = sp.union(a, b)
        else:
            if isinstance(layer, (LayerNorm, GroupNorm)):
                kind = "layer" if isinstance(layer, LayerNorm) else "group"
                sp.keep_whole(space, f"feeds a {kind} norm, whose statistics span all its "
                              "channels: removing pruned ones would change the others' outputs")
            info[id(layer)] = (space, space)
    return space


def _walk(layers):
    """Every layer, a Residual's body and shortcut too, in model order."""
    from .network import _walk as walk_named
    return [layer for _, layer in walk_named(layers)]


def shrink_network(model):
    """A smaller model of the same kind computing what the masked one
    computes; see the module docstring for what is removed."""
    from ..prune import _as_host64, _mask_of, _np_dtype, model_stats
    sp, info = _Spaces(), {}
    first = sp.new(model.input_shape[0])
    sp.keep_whole(first, "reads the network's input")
    last = _trace(model.modules, first, sp, info)
    sp.keep_whole(last, "is the output layer: its units are the class scores and cannot be "
                  "removed")
    producers = [la for la in _walk(model.modules) if isinstance(la, (Conv2d, Linear))]
    # a space's removable channels: pruned along the outputs of every producer of it
    dead: dict = {}
    for la in producers:
        s = sp.find(info[id(la)][1])
        b = la.param_names["b"]
        kind = str(model.prune_kinds.get(b, ""))
        d = set(np.flatnonzero(_mask_of(model, b) == 0).tolist()) \
            if kind.startswith("companion:") else set()
        dead[s] = d if s not in dead else dead[s] & d
    # a batch norm maps a zero channel to its beta (less gamma times the running
    # mean): the channel stays zero only where its gamma and beta are masked too
    for la in _walk(model.modules):
        if isinstance(la, (BatchNorm1d, BatchNorm2d)):
            s = sp.find(info[id(la)][0])
            if s in dead:
                g, be = (_mask_of(model, la.param_names[k]) for k in ("gamma", "beta"))
                dead[s] &= set(np.flatnonzero((g == 0) & (be == 0)).tolist())
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
            unit = "filter" if isinstance(group[0], Conv2d) else "unit"
            raise ValueError(f"every {unit} of {', '.join(names)} is pruned, so nothing would be "
                             "left to pass on; prune a fraction below 1")
        keep[s] = np.array(sorted(set(range(sp.size[s])) - d))
    if not keep:
        _why_nothing(model, producers)
        raise ValueError("nothing to shrink: no output channel is pruned (ln_structured along "
                         "the outputs) in every layer that produces it; channels joined by a "
                         "residual add go only when pruned in both branches")

    def kept(space):
        return keep.get(sp.find(space))

    # the new architecture: sizes from the kept channels
    def respec(layer):
        spec = layer.spec()
        if isinstance(layer, Residual):
            spec["body"] = [respec(la) for la in layer.body]
            spec["shortcut"] = [respec(la) for la in layer.shortcut] or None
            return spec
        sin, sout = info[id(layer)]
        kin, kout = kept(sin), kept(sout)
        if isinstance(layer, Conv2d):
            spec["in_channels"] = len(kin) if kin is not None else layer.in_channels
            spec["out_channels"] = len(kout) if kout is not None else layer.out_channels
        elif isinstance(layer, Linear):
            block = layer.in_features // sp.size[sp.find(sin)]
            spec["in_features"] = len(kin) * block if kin is not None else layer.in_features
            spec["out_features"] = len(kout) if kout is not None else layer.out_features
        elif isinstance(layer, (BatchNorm1d, BatchNorm2d)) and kin is not None:
            spec["num_features"] = len(kin)
        elif isinstance(layer, PReLU) and layer.num_parameters > 1 and kin is not None:
            spec["num_parameters"] = len(kin)
        return spec

    def cut(layer, local, arr):
        """The part of param ``local`` of ``layer`` that stays."""
        sin, sout = info[id(layer)]
        kin, kout = kept(sin), kept(sout)
        if isinstance(layer, Conv2d) and local == "W":
            arr = arr[kout] if kout is not None else arr
            return arr[:, kin] if kin is not None else arr
        if isinstance(layer, Linear) and local == "W":
            if kin is not None:
                block = layer.in_features // sp.size[sp.find(sin)]
                arr = arr[(kin[:, None] * block + np.arange(block)[None, :]).ravel()]
            return arr[:, kout] if kout is not None else arr
        k = kout if isinstance(layer, (Conv2d, Linear)) else kin
        if k is None or isinstance(layer, (LayerNorm, GroupNorm)) or \
                (isinstance(layer, PReLU) and layer.num_parameters == 1):
            return arr
        return arr[k]

    out_sizes = {la.param_names["W"]: len(kept(info[id(la)][1])) for la in producers
                 if kept(info[id(la)][1]) is not None}
    new = model._rebuilt([respec(la) for la in model.modules], out_sizes)
    new.reg = model.reg
    dev = backend.backend_of(next(iter(model.params.values())))
    old_layers, new_layers = _walk(model.modules), _walk(new.modules)
    params, masks, kinds = {}, {}, {}
    for old, nl in zip(old_layers, new_layers):
        for local, name in old.param_names.items():
            v = model.params[name]
            params[name] = backend.to_device(cut(old, local, _as_host64(v)).astype(_np_dtype(v)), dev)
            if name in model.masks:
                cm = cut(old, local, _mask_of(model, name))
                if not cm.all():
                    masks[name] = backend.to_device(cm.astype(_np_dtype(v)), dev)
                    kind = model.prune_kinds[name]
                    kinds[name] = kind if kind.startswith("companion:") else (
                        "unstructured" if kind == "mixed" or kind.startswith("structured")
                        else kind)
        if hasattr(old, "_bn_index"):
            ob, nb = model.bn_params[old._bn_index], new.bn_params[nl._bn_index]
            for key in ("running_mean", "running_var"):
                if key not in ob:  # a layer norm's entry holds no statistics
                    continue
                v = _as_host64(ob[key])
                nb[key] = backend.to_device(cut(old, "gamma", v).astype(_np_dtype(ob[key])), dev)
    new.params = params
    new.masks, new.prune_kinds = masks, kinds
    before, after = model_stats(model), model_stats(new)
    removed = {la.param_names["W"]: (la.out_channels if isinstance(la, Conv2d) else
                                     la.out_features) - out_sizes[la.param_names["W"]]
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
        unit, od = ("filters", 0) if isinstance(la, Conv2d) else ("units", 1)
        if kind is None or kind == f"structured:{od}":  # along its outputs: not the reason
            continue
        what = ("an unstructured mask" if kind in ("unstructured", "mixed")
                else f"a mask along dim {kind.split(':')[-1]}")
        raise ValueError(f"{name} has {what}; shrink removes whole {unit} only "
                         f"(prune.ln_structured(model, {name!r}, amount, dim={od})). "
                         "Call prune.remove to keep other zeros in place instead.")
