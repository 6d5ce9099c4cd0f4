"""The array-api-strict backend: the standard and nothing else, on a
simulated device.

It stands in for a GPU in the tests: its arrays live on a separate device
("device1"), which (like CuPy) refuses ``np.asarray`` and any mixing with
host arrays, and it has no kernels, so every layer runs its portable path.
Code that forgets a device move, or uses something NumPy-only, fails on the
host exactly as it would on a GPU.
"""
from __future__ import annotations

import importlib

import numpy as np

from ._base import Backend, transfers

__all__ = ["StrictBackend", "BACKEND", "DEVICE_NAME"]

DEVICE_NAME = "device1"


def _xps():
    return importlib.import_module("array_api_strict")


class StrictBackend(Backend):
    name = "array_api_strict"
    array_module = "array_api_strict"

    def load(self, device=None):
        super().load(device)
        try:
            _xps()
        except ImportError as exc:
            raise RuntimeError(
                f"the 'array_api_strict' backend (a simulated device, for testing) needs "
                f"array-api-strict, which is not installed ({exc}); install it with: pip "
                f"install 'array-api-strict>=2.2' (xpnn's [test] extra brings it)") from None

    def namespace(self):
        return _xps()

    def device(self):
        return _xps().Device(DEVICE_NAME)

    def resident(self, x):
        return x.device == self.device()

    def to_host(self, x):
        transfers["to_host"] += 1
        xps = _xps()
        return np.asarray(x.to_device(xps.Device("CPU_DEVICE")))

    def from_host(self, a):
        return _xps().asarray(a, device=self.device())


BACKEND = StrictBackend()
