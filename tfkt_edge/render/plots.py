"""PNG figures: training curves and predicted-vs-label scatter plots (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(rows: list[dict], path: Path, title: str = "") -> Path:
    """Train loss (and validation MSE) against epoch on the left, validation overall on the right."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    epochs = [r["epoch"] for r in rows]
    left.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train loss")
    if any("val_mse" in r for r in rows):
        left.plot([r["epoch"] for r in rows if "val_mse" in r], [r["val_mse"] for r in rows if "val_mse" in r],
                  marker="s", label="validation MSE")
    left.set_xlabel("epoch")
    left.set_yscale("log")
    left.legend()
    if any("overall" in r for r in rows):
        right.plot([r["epoch"] for r in rows if "overall" in r], [r["overall"] for r in rows if "overall" in r],
                   marker="o", color="tab:green")
        right.set_ylabel("validation PLCC+SROCC+KROCC")
    right.set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def scatter(predicted, labels, path: Path, title: str = "") -> Path:
    """Predicted score against label, with the identity line, both on the 0-4 scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=100)
    ax.plot([0, 4], [0, 4], color="0.6", linewidth=1, linestyle="--")
    ax.scatter(np.asarray(labels), np.asarray(predicted), s=10, alpha=0.6)
    ax.set_xlim(-0.1, 4.1)
    ax.set_ylim(-0.1, 4.1)
    ax.set_xlabel("label")
    ax.set_ylabel("predicted score")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
