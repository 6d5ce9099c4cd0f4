"""Pictures a person would rather look at than read: filters, training
curves, pruning sweeps. Given a path, each is written as a PNG (no display
needed); given none (``plot_history(solver)``), the matplotlib Figure is
returned, which a notebook shows inline."""
from __future__ import annotations

import os
import sys
from math import ceil, sqrt

import numpy as np

from .backend import to_numpy

__all__ = ["visualize_grid", "plot_filters", "plot_history", "plot_pruning"]


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile images Xs (N, H, W, C) into one (G, G, C) grid image, each image
    rescaled to [0, ubound], as the course helper does."""
    Xs = np.asarray(to_numpy(Xs), dtype=np.float64)
    if Xs.ndim != 4:
        raise ValueError(f"visualize_grid expects (N, H, W, C) images, got shape {Xs.shape}")
    N, H, W, C = Xs.shape
    grid_size = int(ceil(sqrt(N)))
    gh, gw = H * grid_size + padding * (grid_size - 1), W * grid_size + padding * (grid_size - 1)
    grid = np.zeros((gh, gw, C))
    for k in range(N):
        r, c = divmod(k, grid_size)
        img = Xs[k]
        lo, hi = img.min(), img.max()
        y0, x0 = r * (H + padding), c * (W + padding)
        grid[y0:y0 + H, x0:x0 + W] = ubound * (img - lo) / (hi - lo) if hi > lo else 0.0
    return grid


def pyplot():
    """matplotlib.pyplot, drawing off screen (Agg) except in a notebook,
    whose own backend shows figures inline."""
    import matplotlib
    if "ipykernel" not in sys.modules:  # a notebook keeps its own (inline) backend
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def finish_figure(fig, path, plt):
    """Write ``fig`` to ``path`` (folders made) and close it with ``plt``
    (:func:`pyplot`), returning the path; with no path, return the open
    Figure (a notebook shows it)."""
    if path is None:
        return fig
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or os.PathLike) or None for the "
                        f"Figure itself, got {type(path).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_filters(W, path=None, title="first-layer filters"):
    """Conv filters W (F, C, HH, WW), each rescaled to its own range and
    drawn as a tile on a white ground with a thin grey frame (no black
    separators to mistake for weights), about 600 px across."""
    W = np.asarray(to_numpy(W), dtype=np.float64)
    if W.ndim != 4:
        raise ValueError(f"plot_filters expects conv weights (F, C, HH, WW), got {W.shape}")
    F, C, HH, WW = W.shape
    tiles = W.transpose(0, 2, 3, 1)
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - lo
    tiles = np.where(span > 0, (tiles - lo) / np.where(span > 0, span, 1), 0.5)
    cols = int(ceil(sqrt(F)))
    rows = int(ceil(F / cols))
    plt = pyplot()
    from matplotlib.patches import Rectangle
    fig, ax = plt.subplots(figsize=(6, 6 * rows / cols + 0.4))
    gap = 0.15
    for k in range(F):
        r, c = divmod(k, cols)
        x0, y0 = c * (1 + gap), (rows - 1 - r) * (1 + gap)
        img = tiles[k] if C == 3 else tiles[k].mean(axis=-1)
        ax.imshow(img, cmap=None if C == 3 else "gray", vmin=0, vmax=1,
                  interpolation="nearest", extent=(x0, x0 + 1, y0, y0 + 1))
        ax.add_patch(Rectangle((x0, y0), 1, 1, fill=False, edgecolor="0.6", linewidth=0.8))
    ax.set_xlim(-gap, cols * (1 + gap))
    ax.set_ylim(-gap, rows * (1 + gap))
    ax.set_aspect("equal")
    ax.set_title(f"{title} ({F} filters, {C}x{HH}x{WW}, each scaled to its own range)")
    ax.axis("off")
    return finish_figure(fig, path, plt)


def plot_history(history, path=None, title=None):
    """The training loss per iteration and the train/val accuracy per
    epoch. ``history``: a Solver, or a dict with loss_history,
    train_acc_history and val_acc_history. Written to ``path`` (PNG), or,
    with none, the Figure returned."""
    get = (lambda k: getattr(history, k)) if not isinstance(history, dict) else history.get
    loss = [float(v) for v in to_numpy(list(get("loss_history") or []))]
    tr, va = list(get("train_acc_history") or []), list(get("val_acc_history") or [])
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7))
    a1.plot(loss, "o", markersize=2, alpha=0.6, label="each iteration")
    if len(loss) >= 20:
        k = max(len(loss) // 20, 2)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        a1.plot(np.arange(k - 1, len(loss)), smooth, "-",
                label=f"mean of the last {k} iterations")
    if loss:
        a1.legend()
    a1.set_xlabel("iteration")
    a1.set_ylabel("training loss")
    a2.plot(tr, "-o", label="train")
    a2.plot(va, "-o", label="val")
    a2.set_xlabel("epoch (0: after the first iteration)")
    a2.set_ylabel("accuracy")
    accs = [float(v) for v in tr + va]
    # accuracy on its own scale: down to the lowest tenth reached, up to 1 (one
    # point alone once got an axis of 0.100 to 0.1175)
    low = np.floor(10 * min(accs)) / 10 if accs else 0.0
    a2.set_ylim(max(0.0, min(low, 0.9)), 1.02)
    a2.set_xlim(-0.25, max(1, len(va) - 1) + 0.25)
    a2.xaxis.get_major_locator().set_params(integer=True)
    if len(va) == 1:
        a2.text(0.5, 0.5, "no epoch finished yet", transform=a2.transAxes, ha="center",
                color="0.4")
    a2.legend(loc="lower right")
    a2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return finish_figure(fig, path, plt)


def plot_pruning(rows, base_acc, path=None, structured=False):
    """Test accuracy against sparsity; rows are (amount, sparsity,
    accuracy) tuples, base_acc the unpruned accuracy. Each point is
    labelled with the amount pruned, inside the axes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sp = [0.0] + [r[1] for r in rows]
    acc = [base_acc] + [r[2] for r in rows]
    ax.plot(sp, acc, "-o")
    right = max(sp) if sp else 1.0
    for (a, s, c) in rows:  # labels of points near the right edge go to their left
        left = s > 0.85 * right
        ax.annotate(f"{a:.0%}", (s, c), textcoords="offset points",
                    xytext=(-6 if left else 4, 4), ha="right" if left else "left", fontsize=8)
    ax.margins(x=0.08, y=0.1)
    ax.set_xlabel("sparsity of the conv and affine weights")
    ax.set_ylabel("validation accuracy")
    ax.set_title("structured (filters removed)" if structured else "global unstructured L1")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return finish_figure(fig, path, plt)
