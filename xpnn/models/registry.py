"""The model classes by name, for what is rebuilt from stored data
(checkpoints, saved models, shrink): ``build_model(class name, init_kwargs)``."""
from __future__ import annotations

__all__ = ["MODELS", "register", "build_model", "model_class_name"]

#: the course model classes by name (filled by :func:`register`)
MODELS: dict = {}


def register(cls):
    """Make model class ``cls`` buildable by its name."""
    MODELS[cls.__name__] = cls
    return cls


def model_class_name(model) -> str:
    """The xpnn model class that rebuilds ``model`` from its init_kwargs (a
    course edition's variant names the xpnn class it stands for)."""
    return getattr(model, "checkpoint_class", type(model).__name__)


def build_model(class_name, init_kwargs):
    """Rebuild a model from its class name and constructor arguments (as a
    checkpoint stores them); the weights are then loaded separately."""
    if class_name == "Sequential":
        if not isinstance(init_kwargs, dict):
            raise ValueError("no architecture stored for the Sequential")
        from ..nn import Sequential
        return Sequential.from_config(**init_kwargs)
    if class_name not in MODELS:
        raise ValueError(f"unknown model class {class_name!r}; known: "
                         f"{', '.join(MODELS)}, Sequential")
    if not isinstance(init_kwargs, dict):
        raise ValueError(f"no constructor arguments stored for {class_name}")
    return MODELS[class_name](**init_kwargs)
