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


def test_with_no_path_a_figure_comes_back_for_a_notebook():
    """plot_history(h, None) once raised a TypeError; with no path each plot
    returns its Figure (a notebook draws it inline), nothing written."""
    from matplotlib.figure import Figure
    from xpnn.vis import plot_pruning
    h = {"loss_history": [2.0, 1.0], "train_acc_history": [0.5], "val_acc_history": [0.4]}
    for fig in (plot_history(h), plot_history(h, None),
                plot_filters(np.random.randn(4, 3, 3, 3)),
                plot_pruning([(0.5, 0.5, 0.9)], 0.95)):
        assert isinstance(fig, Figure) and fig.axes
    with pytest.raises(TypeError, match="path must be a file name .* or None"):
        plot_history(h, 3)


def test_the_loss_legend_says_what_the_mean_is_of():
    h = {"loss_history": list(np.linspace(2, 0.1, 90)), "train_acc_history": [0.1, 0.9],
         "val_acc_history": [0.1, 0.8]}
    labels = [t.get_text() for t in plot_history(h).axes[0].get_legend().get_texts()]
    assert labels == ["each iteration", "mean of the last 4 iterations"]


def test_filters_are_large_and_their_separators_are_not_black():
    """filters.png was 328x349 px with black separators that read as black
    weights: now ~600 px across on a white ground; uniform mid-grey filters
    leave almost no black pixel (the title's text only)."""
    fig = plot_filters(np.ones((16, 1, 5, 5)))
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    assert rgba.shape[1] >= 550
    black = np.all(rgba[..., :3] < 40, axis=-1).mean()
    assert black < 0.01, black


def test_pruning_labels_stay_inside_the_axes():
    """The right-most label ("80%") was clipped at the plot's edge."""
    from xpnn.vis import plot_pruning
    rows = [(a, a, 0.98 - a * a) for a in (0.1, 0.3, 0.5, 0.7, 0.8)]
    fig = plot_pruning(rows, 0.99)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    box = ax.get_window_extent(renderer)
    for t in ax.texts:
        b = t.get_window_extent(renderer)
        assert box.x0 <= b.x0 and b.x1 <= box.x1 and box.y0 <= b.y0 and b.y1 <= box.y1, \
            t.get_text()


def test_the_accuracy_panel_is_on_an_accuracy_scale():
    """A run stopped before its first epoch ended drew its one point on an
    axis from 0.100 to 0.1175; accuracy now runs from the lowest tenth
    reached to 1, and the panel says no epoch has finished."""
    one = plot_history({"loss_history": [2.3, 2.2], "train_acc_history": [0.11],
                        "val_acc_history": [0.1125]}).axes[1]
    assert one.get_ylim() == (0.1, 1.02)
    assert "no epoch finished yet" in [t.get_text() for t in one.texts]
    many = plot_history({"loss_history": [1.0] * 30, "train_acc_history": [0.2, 0.95, 0.99],
                         "val_acc_history": [0.15, 0.93, 0.97]}).axes[1]
    assert many.get_ylim() == (0.1, 1.02) and not many.texts
    good = plot_history({"loss_history": [1.0], "train_acc_history": [0.95, 0.99],
                         "val_acc_history": [0.96, 0.98]}).axes[1]
    assert good.get_ylim() == (0.9, 1.02)
