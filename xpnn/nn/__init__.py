"""Networks composed of layer objects: ``Sequential(Conv2d(...), ...)``.

Each layer class wraps the forward/backward functions of
:mod:`xpnn.layers` (no second implementation); a ``Sequential`` is a model
like the course ones: ``params``, ``loss(X, y=None)``, the Solver,
``to_device``.
"""
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers
from .network import Network
from .sequential import Sequential, challenge_net, load_arch

__all__ = [*_layers, "Network", "Sequential", "challenge_net", "load_arch"]
