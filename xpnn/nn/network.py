"""The engine of every layered xpnn model.

:class:`Network` runs a list of layer objects (:mod:`xpnn.nn.layers`):
shape inference, parameter initialisation in layer order, ``loss``,
pruning's view of the graph, a summary table. :class:`~xpnn.nn.Sequential`
and the course models (:mod:`xpnn.models`) are both Networks; what every
model holds (params, running statistics, pruning state, their moves between
backends) is :class:`~xpnn.nn.model.DeviceModel`.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import device as _device

from ..layers import softmax_loss, temporal_softmax_loss
from .layers import Linear, TemporalAffine, _back, _run
from .model import DeviceModel

__all__ = ["DeviceModel", "Network", "draw_normal", "init_weight"]


def draw_normal(rng, shape):
    """Standard normals from ``rng`` (a NumPy Generator/RandomState) or, when
    None, from NumPy's global RandomState in call order, as the course does."""
    if rng is None:
        return np.random.randn(*shape)
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(shape)
    return rng.randn(*shape)


def init_weight(rng, shape, fan_in, weight_scale=None):
    """Normal weights of ``shape``: std ``weight_scale``, or He's
    sqrt(2 / fan_in) when it is None; drawn as :func:`draw_normal` draws."""
    scale = np.sqrt(2.0 / fan_in) if weight_scale is None else float(weight_scale)
    return scale * draw_normal(rng, shape)


def _as_rng(seed_or_rng):
    if seed_or_rng is None or isinstance(seed_or_rng, (np.random.Generator,
                                                       np.random.RandomState)):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def _is_sequence(layer):
    return isinstance(layer, TemporalAffine)


def _walk(layers, prefix=""):
    """(model-name prefix, layer) for every layer, containers' children too."""
    for i, layer in enumerate(layers):
        yield from _walk_child(layer, f"{prefix}{i}.")


def _walk_child(layer, p):
    yield p, layer
    for branch, j, child in layer.children():
        yield from _walk_child(child, f"{p}{branch}.{j}.")


class Network(DeviceModel):
    """The engine of every layered xpnn model: a list of layer objects, the
    flat ``params`` dict they read, shape inference at construction, and
    ``loss``. :class:`Sequential` builds one from any layers; the course
    models (``FullyConnectedNet``, ``ThreeLayerConvNet``...) build one from
    their constructor arguments and keep the course's parameter names."""

    def _build(self, layers, input_shape, rng=None, weight_scale=None, names=None):
        """Infer shapes through ``layers`` from ``input_shape`` (per sample),
        then draw the parameters in layer order. ``names``: optional
        {top-level layer index: {local name: param name}} (``W1``...);
        otherwise params are named ``<index>.<local name>``."""
        self.modules = list(layers)
        self.input_shape = tuple(input_shape)
        shape = self.input_shape
        for i, layer in enumerate(self.modules):
            try:
                shape = layer.in_shape_out(shape)
            except ValueError as exc:
                raise ValueError(f"layer {i}: {exc}") from None
        if len(shape) != 1 and not (len(shape) == 2 and _is_sequence(self.modules[-1])):
            raise ValueError(f"the last layer {self.modules[-1]!r} outputs {shape}; class scores "
                             "must be 1-D per sample (end with Flatten/GlobalAvgPool2d and Linear), "
                             "or (T, classes) per sample from a TemporalAffine")
        for i, layer in enumerate(self.modules[1:], 1):
            if getattr(layer, "takes_indices", False):
                raise ValueError(f"layer {i}: {layer!r} reads word indices, so it must be the "
                                 f"first layer (it gets the model's input as it is)")
        #: (T, classes) scores per sample: a class per time step, the loss summed
        #: over the steps (the course's temporal softmax loss)
        self.sequence_scores = len(shape) == 2
        self.index_input = getattr(self.modules[0], "takes_indices", False)
        self.num_classes = shape[-1]
        top = {id(layer): i for i, layer in enumerate(self.modules)}
        for prefix, layer in _walk(self.modules):
            layer._bind(self, prefix, (names or {}).get(top.get(id(layer))))
            for name, (pshape, init) in layer.param_shapes.items():
                if init[0] == "normal":
                    value = init_weight(rng, pshape, init[1], weight_scale)
                elif init[0] == "full":
                    value = np.full(pshape, init[1])
                else:
                    value = (np.ones if init[0] == "ones" else np.zeros)(pshape)
                self.params[layer._names[name]] = value
            entry = layer.new_bn_param()
            if entry is not None:  # one entry per normalisation layer, as the course
                layer._bn_index = len(self.bn_params)
                self.bn_params.append(entry)

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
        the params of the layer right after it that a zero channel needs
        masked to stay zero, a batch norm's gamma and beta)."""
        for chain in self._chains():
            for i, layer in enumerate(chain):
                if layer.weights and layer._names.get("W") == name:
                    comps = [layer._names["b"]]
                    nxt = chain[i + 1] if i + 1 < len(chain) else None
                    if nxt is not None and nxt.channels == "same":
                        comps += [nxt._names[k] for k in nxt.zero_needs or ()]
                    return layer.out_dim, comps
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

    def _rebuilt(self, layer_specs, out_sizes):
        """A fresh model of this kind with the layers ``layer_specs`` (what
        ``shrink`` keeps); ``out_sizes``: weight name -> its new number of
        outputs. Each kind of model says how it is rebuilt."""
        raise ValueError(f"{type(self).__name__} cannot be rebuilt at another size")

    # ------------------------------------------------ the model
    def loss(self, X, y=None):
        """Scores (N, num_classes) when y is None (test mode); else
        (loss, grads): softmax cross-entropy plus ``0.5 * reg * sum(W**2)``
        over every weight, grads keyed like params. A model whose scores are
        (N, T, classes) takes labels (N, T) and sums the loss over the steps."""
        self._sync_device()
        xp, h, y = self._input(X, y)
        got = tuple(h.shape[1:])
        # a first Linear flattens what it gets, as the course's affine layer does
        if got != self.input_shape and not (isinstance(self.modules[0], Linear) and
                                            int(np.prod(got)) == int(np.prod(self.input_shape))):
            raise ValueError(f"X has shape {tuple(h.shape)}; this model takes "
                             f"(N, {', '.join(map(str, self.input_shape))})")
        scores, caches = _run(self.modules, h, y is not None)
        if y is None:
            return scores
        if self.sequence_scores:
            loss, dscores = temporal_softmax_loss(scores, y, xp.ones(y.shape, dtype=xp.bool,
                                                                  device=_device(y)))
        else:
            loss, dscores = softmax_loss(scores, y)
        # nothing reads the input's gradient: the first layer may skip it
        _, grads = _back(self.modules, dscores, caches, need_input_grad=False)
        if self.reg:  # no work (on a GPU, no kernel launches) when reg == 0
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

    def summary(self):
        """A table: layer, output shape, params and multiply-adds per sample."""
        rows = [("layer", "output shape", "params", "multiply-adds")]
        for name, layer, out, n, macs in self.summary_rows():
            depth = name.count(".") // 2
            label = type(layer).__name__ if layer.children() else repr(layer)
            rows_cut, cols_cut = getattr(layer, "unused", (0, 0))
            if rows_cut or cols_cut:   # PyTorch's floor rule: said, not silent
                label += f" (floor: last {rows_cut} row{'s' * (rows_cut != 1)}, " \
                         f"{cols_cut} column{'s' * (cols_cut != 1)} unused)"
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

    def __repr__(self):
        """A course model shows how it was made: ``ConvNet(conv_blocks=...)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "init_kwargs", {}).items())
        return f"{type(self).__name__}({args})"
