"""Course models: params dicts and ``loss(X, y=None)``; assignment 1's k-NN and
linear classifiers (``knn``, ``linear``); assignment 3's CaptioningRNN (``rnn``)."""
from .cnn import ConvNet, ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet
from .knn import KNearestNeighbor
from .linear import LinearClassifier, LinearSVM, Softmax
from .rnn import CaptioningRNN
from .registry import MODELS, build_model

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "ConvNet", "MODELS",
           "build_model", "KNearestNeighbor", "LinearClassifier", "LinearSVM", "Softmax",
           "CaptioningRNN"]
