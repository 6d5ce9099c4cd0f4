"""Course models: params dicts and ``loss(X, y=None)``."""
from .cnn import ConvNet, ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet

MODELS = {c.__name__: c for c in (TwoLayerNet, FullyConnectedNet, ThreeLayerConvNet, ConvNet)}

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "ConvNet", "MODELS",
           "build_model"]


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
