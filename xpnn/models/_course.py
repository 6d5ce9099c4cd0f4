"""What the course models share: a :class:`~xpnn.nn.network.Network` whose
parameters keep the course's names and whose constructor arguments describe
it (checkpoints store them; ``shrink`` rebuilds from them)."""
from __future__ import annotations

from ..nn.layers import Conv2d, Linear, _Norm
from ..nn.network import Network, _as_rng
from .registry import build_model, model_class_name

__all__ = ["CourseNet"]


class CourseNet(Network):
    """Subclasses set ``init_kwargs`` and call :meth:`_assemble`."""

    def _assemble(self, blocks, input_shape, rng, weight_scale, keep=1.0, seed=None):
        """Build from ``blocks``: block i (from 1) is a weight layer and what
        follows it; its weight and bias are ``W{i}``, ``b{i}``, a norm's
        ``gamma{i}``, ``beta{i}``. Weights are drawn in block order, from
        ``rng`` or NumPy's global state. ``keep`` < 1: the Dropout layers
        share one ``dropout_param`` (``p`` the keep probability, ``seed``
        reseeding every forward), as the course models do."""
        layers, names = [], {}
        for i, block in enumerate(blocks, 1):
            for layer in block:
                if isinstance(layer, (Conv2d, Linear)):
                    names[len(layers)] = {"W": f"W{i}", "b": f"b{i}"}
                elif isinstance(layer, _Norm):
                    names[len(layers)] = {"gamma": f"gamma{i}", "beta": f"beta{i}"}
                layers.append(layer)
        self.use_dropout = keep != 1
        self.dropout_param = {"mode": "train", "p": keep} if self.use_dropout else {}
        if self.use_dropout and seed is not None:
            self.dropout_param["seed"] = seed
        self._build(layers, tuple(input_shape), _as_rng(rng), weight_scale, names)
        self._finish_init()

    def _rebuilt(self, layer_specs, out_sizes):
        return build_model(model_class_name(self), {**self._resized_kwargs(out_sizes), "rng": 0})

    def _resized_kwargs(self, out_sizes):
        """``init_kwargs`` with the layer sizes ``out_sizes`` (weight name ->
        number of outputs) in place of the current ones."""
        raise ValueError(f"{type(self).__name__} cannot be rebuilt at another size")
