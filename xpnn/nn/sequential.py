"""``Sequential``: a model composed of layer objects, usable wherever a
course model is (``params``, ``loss(X, y=None)``, the Solver, ``to_device``)."""
from __future__ import annotations

import numpy as np

from .layers import (BatchNorm2d, Conv2d, Dropout, Flatten, Layer, Linear, MaxPool2d, ReLU,
                     layer_from_spec)
from .network import Network, _as_rng

__all__ = ["Sequential", "challenge_net", "load_arch"]


class Sequential(Network):
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
    ``print(model)`` gives the :meth:`summary` table.
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
        self._build(layers, shape, _as_rng(seed), weight_scale)
        if num_classes is not None and int(num_classes) != self.num_classes:
            raise ValueError(f"num_classes={num_classes} but the last layer "
                             f"{self.modules[-1]!r} outputs {self.num_classes} scores")
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

    def _rebuilt(self, layer_specs, out_sizes):
        return Sequential.from_config(layer_specs, input_shape=self.input_shape,
                                      dtype=self.dtype.name, reg=self.reg, seed=0)

    def __repr__(self):
        if not hasattr(self, "init_kwargs"):  # failed while being built
            return "Sequential(<not built>)"
        return self.summary()


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
    from .._json import read_json
    arch = read_json(path, "architecture file")
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
