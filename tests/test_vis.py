"""Plots are written as real PNG files; the grid helper tiles images."""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.vis import plot_filters, plot_history, visualize_grid


def test_visualize_grid():
    Xs = np.random.RandomState(0).rand(5, 4, 3, 2)
    g = visualize_grid(Xs, ubound=1.0, padding=1)
    assert g.shape == (3 * 4 + 2, 3 * 3 + 2, 2)
    assert g.max() == pytest.approx(1.0) and g.min() == 0.0
    with pytest.raises(ValueError, match=r"expects \(N, H, W, C\)"):
        visualize_grid(np.zeros((2, 3)))


def test_plots_are_png(tmp_path):
    h = {"loss_history": list(np.linspace(2, 0.1, 50)), "train_acc_history": [0.1, 0.5, 0.9],
         "val_acc_history": [0.1, 0.4, 0.8]}
    for path in (plot_history(h, str(tmp_path / "a" / "h.png")),
                 plot_filters(np.random.randn(6, 1, 3, 3), str(tmp_path / "f.png"))):
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
