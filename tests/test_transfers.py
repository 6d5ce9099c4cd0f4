"""Training on a device never waits for the device every step: losses are
read back in one batched copy per print point, accuracy once per check.
array-api-strict's simulated device stands in for a GPU on the host; the
count is of device-to-host copies only (host-to-device moves, such as each
minibatch's index array, are not read-backs)."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn import backend
from xpnn.data import get_digits_data
from xpnn.models import FullyConnectedNet
from xpnn.solver import Solver

from conftest import DEVICE_BACKENDS


@pytest.mark.parametrize("name", DEVICE_BACKENDS)
def test_training_reads_back_only_when_printing(name):
    data = get_digits_data()
    flat = {k: (v.reshape(len(v), -1) if k.startswith("X") else v) for k, v in data.items()}
    with backend.use_backend(name):
        np.random.seed(0)
        model = FullyConnectedNet([32], input_dim=64, num_classes=10, dtype=np.float32)
        solver = Solver(model, flat, batch_size=50, num_epochs=1, print_every=8,
                        verbose=False, update_rule="sgd")
        before = backend.transfers["to_host"]
        solver.train()
        copies = backend.transfers["to_host"] - before
    iters = len(solver.loss_history)                 # 25
    prints = len(range(0, iters, 8))                 # 4: iterations 1, 9, 17, 25
    checks = len(solver.val_acc_history)             # 2: first and last iteration
    # one batched loss read per print point; per check, two accuracy reads
    # (train and val) and one that the params are finite; one final loss read
    assert copies <= prints + 3 * checks + 1, copies
    assert copies < iters
    assert all(isinstance(v, float) for v in solver.loss_history)


def test_host_to_device_moves_are_not_counted():
    with backend.use_backend("array_api_strict"):
        before = backend.transfers["to_host"]
        dev = backend.to_device({"a": np.ones(3), "b": [np.zeros(2)]})
        assert backend.transfers["to_host"] == before
        backend.to_numpy(dev)
        assert backend.transfers["to_host"] == before + 2


def test_device_scalars_are_read_only_through_the_batched_copy(monkeypatch, capsys):
    """A loss on the device is turned into a float only by the one batched
    copy per print point: never by float() of each loss (a device sync
    apiece on a GPU), not even for the printed line."""
    from array_api_strict._array_object import Array
    reads = []
    real = Array.__float__
    monkeypatch.setattr(Array, "__float__", lambda self: reads.append(1) or real(self))
    data = get_digits_data()
    flat = {k: (v[:200].reshape(200, -1) if k.startswith("X") else v[:200])
            for k, v in data.items()}
    with backend.use_backend("array_api_strict"):
        np.random.seed(0)
        model = FullyConnectedNet([16], input_dim=64, num_classes=10, dtype=np.float64)
        solver = Solver(model, flat, batch_size=20, num_epochs=2, print_every=3,
                        verbose=True, update_rule="sgd")
        solver.train()
    assert reads == []
    assert "(Iteration 4 / 20) loss:" in capsys.readouterr().out
    assert all(type(v) is float for v in solver.loss_history)
