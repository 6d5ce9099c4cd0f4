"""Pictures a person would rather look at than read: filters and training
curves, written as PNG (matplotlib's Agg backend; no display needed)."""
from __future__ import annotations

import os
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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def plot_filters(W, path, title="first-layer filters"):
    """Write a PNG of conv filters W (F, C, HH, WW) tiled in a grid."""
    W = np.asarray(to_numpy(W), dtype=np.float64)
    if W.ndim != 4:
        raise ValueError(f"plot_filters expects conv weights (F, C, HH, WW), got {W.shape}")
    grid = visualize_grid(W.transpose(0, 2, 3, 1))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(grid.astype("uint8").squeeze(), cmap="gray" if W.shape[1] == 1 else None,
              interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    _save(fig, path)
    plt.close(fig)
    return path


def plot_history(history, path, title=None):
    """Write a PNG with the training loss per iteration and the train/val
    accuracy per epoch. ``history``: a Solver, or a dict with loss_history,
    train_acc_history and val_acc_history."""
    get = (lambda k: getattr(history, k)) if not isinstance(history, dict) else history.get
    loss = [float(v) for v in to_numpy(list(get("loss_history") or []))]
    tr, va = list(get("train_acc_history") or []), list(get("val_acc_history") or [])
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7))
    a1.plot(loss, "o", markersize=2, alpha=0.6)
    if len(loss) >= 20:
        k = max(len(loss) // 20, 2)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        a1.plot(np.arange(k - 1, len(loss)), smooth, "-", label=f"mean of {k}")
        a1.legend()
    a1.set_xlabel("iteration")
    a1.set_ylabel("training loss")
    a2.plot(tr, "-o", label="train")
    a2.plot(va, "-o", label="val")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.legend(loc="lower right")
    a2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def plot_pruning(rows, base_acc, path, structured=False):
    """Write a PNG of test accuracy against sparsity; rows are
    (amount, sparsity, accuracy) tuples, base_acc the unpruned accuracy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sp = [0.0] + [r[1] for r in rows]
    acc = [base_acc] + [r[2] for r in rows]
    ax.plot(sp, acc, "-o")
    for (a, s, c) in rows:
        ax.annotate(f"{a:.0%}", (s, c), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("sparsity of the conv and affine weights")
    ax.set_ylabel("test accuracy")
    ax.set_title("structured (filters removed)" if structured else "global unstructured L1")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
