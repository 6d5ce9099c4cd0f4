"""``Sequential``: a model composed of layer objects, usable wherever a
course model is (``params``, ``loss(X, y=None)``, the Solver, ``to_device``)."""
from __future__ import annotations

import numpy as np

from ..layers import softmax_loss
from ..models.base import DeviceModel, _as_rng, init_weight
from .layers import (BatchNorm2d, Conv2d, Dropout, Flatten, Layer, Linear, MaxPool2d, ReLU,
                     _back, _run, layer_from_spec)

__all__ = ["Sequential", "challenge_net", "load_arch"]


def _walk(layers, prefix=""):
    """(model-name prefix, layer) for every layer, containers' children too."""
    for i, layer in enumerate(layers):
        yield from _walk_child(layer, f"{prefix}{i}.")


def _walk_child(layer, p):
    yield p, layer
    for branch, j, child in layer.children():
        yield from _walk_child(child, f"{p}{branch}.{j}.")


class Sequential(DeviceModel):
    """Layers applied in order, ending in class scores; softmax loss.

    ``Sequential(*layers, input_shape=(C, H, W), num_classes=None,
    dtype=np.float32, seed=None, reg=0.0, weight_scale=None)``.
    Shapes are inferred layer by layer at construction: a mismatch is a
    ValueError naming the layer and both shapes. ``num_classes`` is the
    last layer's output size; when given it is checked. Weights are drawn
    N(0, weight_scale^2), He-scaled (sqrt(2 / fan_in)) when weight_scale is
    None, from ``seed`` (a NumPy Generator) or, when None, from NumPy's
    global RandomState in layer order, as the course models do.
    Params are named ``<index>.<name>``: ``"0.W"``, ``"1.gamma"``, and
    ``"3.body.0.W"`` inside a Residual; ``model[0].W`` is ``params["0.W"]``.
    """

    def __init__(self, *layers, input_shape, num_classes=None, dtype=np.float32, seed=None,
                 reg=0.0, weight_scale=None):
        super().__init__(reg, dtype)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {i} is {layer!r}, not an xpnn.nn layer")
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"Sequential: input_shape must be a tuple of ints such as (C, H, W), "
                            f"got {input_shape!r}") from None
        if not shape or min(shape) < 1:
            raise ValueError(f"Sequential: input_shape must be positive sizes, got {input_shape}")
        self.modules = list(layers)
        self.input_shape = shape
        for i, layer in enumerate(self.modules):
            try:
                shape = layer.in_shape_out(shape)
            except ValueError as exc:
                raise ValueError(f"layer {i}: {exc}") from None
        if len(shape) != 1:
            raise ValueError(f"the last layer {self.modules[-1]!r} outputs {shape}; class scores "
                             "must be 1-D per sample (end with Flatten/GlobalAvgPool2d and Linear)")
        if num_classes is not None and int(num_classes) != shape[0]:
            raise ValueError(f"num_classes={num_classes} but the last layer "
                             f"{self.modules[-1]!r} outputs {shape[0]} scores")
        self.num_classes = shape[0]
        rng = _as_rng(seed)
        for prefix, layer in _walk(self.modules):
            layer._bind(self, prefix)
            for name, (pshape, init) in layer.param_shapes.items():
                if init[0] == "normal":
                    value = init_weight(rng, pshape, init[1], weight_scale)
                elif init[0] == "full":
                    value = np.full(pshape, init[1])
                else:
                    value = (np.ones if init[0] == "ones" else np.zeros)(pshape)
                self.params[prefix + name] = value
            if getattr(layer, "running", False):
                layer._bn_index = len(self.bn_params)
                self.bn_params.append(layer.new_bn_param())
        self.init_kwargs = {"layers": [la.spec() for la in self.modules],
                            "input_shape": list(self.input_shape), "dtype": self.dtype.name,
                            "reg": self.reg}
        self._finish_init()

    @classmethod
    def from_config(cls, layers, input_shape, num_classes=None, dtype="float32", reg=0.0,
                    seed=None, rng=None, weight_scale=None):
        """A Sequential from JSON data: ``layers`` a list of layer specs (as
        ``init_kwargs`` stores them and ``xpnn train --arch`` reads them)."""
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"an architecture needs \"layers\": a non-empty list, got "
                             f"{layers!r}")
        built = [layer_from_spec(s, f"layer {i}") for i, s in enumerate(layers)]
        return cls(*built, input_shape=input_shape, num_classes=num_classes, dtype=dtype,
                   reg=reg, seed=seed if rng is None else rng, weight_scale=weight_scale)

    # ------------------------------------------------ container protocol
    def __getitem__(self, i):
        return self.modules[i]

    def __len__(self):
        return len(self.modules)

    def __iter__(self):
        return iter(self.modules)

    def weight_names(self):
        """The params that are weights (L2-regularised): every W of a Conv2d or Linear."""
        return [layer._names[w] for _, layer in _walk(self.modules) for w in layer.weights]

    def prune_companions(self, name):
        """For pruning along outputs: (the output dim of weight ``name``, the
        params whose entries belong to those outputs: the layer's bias and
        the gamma/beta of a batch norm directly after it)."""
        from .layers import _Norm
        for chain in self._chains():
            for i, layer in enumerate(chain):
                if layer.weights and layer._names.get("W") == name:
                    comps = [layer._names["b"]]
                    nxt = chain[i + 1] if i + 1 < len(chain) else None
                    if isinstance(nxt, _Norm) and nxt.running:
                        comps += [nxt._names["gamma"], nxt._names["beta"]]
                    return (0 if isinstance(layer, Conv2d) else 1), comps
        return None, []

    def _chains(self):
        """Every list of layers applied in sequence: the model's own, and
        each Residual's body and shortcut."""
        chains = [self.modules]
        for _, layer in _walk(self.modules):
            for branch in ("body", "shortcut"):
                if getattr(layer, branch, None):
                    chains.append(getattr(layer, branch))
        return chains

    # ------------------------------------------------ the model
    def loss(self, X, y=None):
        """Scores (N, num_classes) when y is None (test mode); else
        (loss, grads): softmax cross-entropy plus ``0.5 * reg * sum(W**2)``
        over every weight, grads keyed like params."""
        self._sync_device()
        xp, h, y = self._input(X, y)
        if tuple(h.shape[1:]) != self.input_shape:
            raise ValueError(f"X has shape {tuple(h.shape)}; this model takes "
                             f"(N, {', '.join(map(str, self.input_shape))})")
        scores, caches = _run(self.modules, h, y is not None)
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        _, grads = _back(self.modules, dscores, caches)
        if self.reg:
            for name in self.weight_names():
                W = self.params[name]
                loss = loss + 0.5 * self.reg * xp.sum(W * W)
                grads[name] = grads[name] + self.reg * W
        return loss, grads

    # ------------------------------------------------ description
    def summary_rows(self):
        """(name, layer, output shape, params, multiply-adds) per layer."""
        rows = []
        for prefix, layer in _walk(self.modules):
            own = sum(int(np.prod(self.params[n].shape)) for n in layer._names.values())
            rows.append((prefix[:-1], layer, layer.out_shape, own,
                         0 if layer.children() else layer.macs()))
        return rows

    def __repr__(self):
        if not hasattr(self, "init_kwargs"):  # failed while being built
            return "Sequential(<not built>)"
        rows = [("layer", "output shape", "params", "multiply-adds")]
        for name, layer, out, n, macs in self.summary_rows():
            depth = name.count(".") // 2
            label = type(layer).__name__ if layer.children() else repr(layer)
            rows.append(("  " * depth + f"{name} {label}", "x".join(map(str, out)),
                         f"{n:,}" if n else "", f"{macs:,}" if macs else ""))
        total_p = sum(int(np.prod(v.shape)) for v in self.params.values())
        total_m = sum(la.macs() for la in self.modules)
        rows.append(("total (input " + "x".join(map(str, self.input_shape)) + ")", "",
                     f"{total_p:,}", f"{total_m:,} per sample"))
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        line = lambda r: "  ".join((r[0].ljust(w[0]), r[1].rjust(w[1]), r[2].rjust(w[2]),  # noqa
                                    r[3].rjust(w[3]))).rstrip()
        sep = "-" * len(line(rows[0]))
        return "\n".join([line(rows[0]), sep, *map(line, rows[1:-1]), sep, line(rows[-1])])


def challenge_net(input_shape=(3, 32, 32), num_classes=6, **kwargs):
    """The seed notebook's answer to its open-ended challenge:
    [conv-BN-ReLU-maxpool-dropout] x 3 with 64/128/256 filters (5x5, then
    3x3, size-preserving padding; drop 0.2/0.3/0.4), flatten, Linear 512,
    ReLU, dropout 0.5, Linear to the classes. ``kwargs`` go to Sequential
    (dtype, reg for weight decay, seed)."""
    C, H, W = (int(d) for d in input_shape)
    layers = []
    for cin, cout, k, drop in ((C, 64, 5, 0.2), (64, 128, 3, 0.3), (128, 256, 3, 0.4)):
        layers += [Conv2d(cin, cout, k, padding=k // 2), BatchNorm2d(cout), ReLU(), MaxPool2d(2),
                   Dropout(drop=drop)]
        H, W = H // 2, W // 2
    layers += [Flatten(), Linear(256 * H * W, 512), ReLU(), Dropout(drop=0.5),
               Linear(512, num_classes)]
    return Sequential(*layers, input_shape=(C, int(input_shape[1]), int(input_shape[2])),
                      num_classes=num_classes, **kwargs)


def load_arch(path, input_shape=None, num_classes=None, **kwargs):
    """A Sequential from a JSON file: a list of layer specs, or an object
    with "layers" (and optionally "input_shape", "num_classes"); the given
    ``input_shape``/``num_classes`` fill what the file leaves out."""
    import json
    try:
        with open(path, encoding="utf-8") as f:
            arch = json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read architecture file {path!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"architecture file {path!r} is not JSON: {exc}") from None
    if isinstance(arch, list):
        arch = {"layers": arch}
    if not isinstance(arch, dict) or set(arch) - {"layers", "input_shape", "num_classes"}:
        raise ValueError(f"architecture file {path!r}: expected a list of layers or an object "
                         "with \"layers\" and optionally \"input_shape\", \"num_classes\"")
    shape = arch.get("input_shape") or input_shape
    if shape is None:
        raise ValueError(f"architecture file {path!r} gives no input_shape")
    try:
        return Sequential.from_config(arch.get("layers"), input_shape=shape,
                                      num_classes=arch.get("num_classes", num_classes), **kwargs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"architecture file {path!r}: {exc}") from None
