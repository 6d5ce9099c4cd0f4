"""Course models: params dicts and ``loss(X, y=None)``."""
from .cnn import ConvNet, ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet
from .registry import MODELS, build_model

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "ConvNet", "MODELS",
           "build_model"]
