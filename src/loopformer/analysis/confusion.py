"""Confusion-matrix figure (rows: true class, columns: predicted), row-normalised colours."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    """Write a PNG; uses matplotlib's object API so no global pyplot state is touched."""
    import numpy as np

    from .plots import new_figure, save_figure

    m = np.asarray(matrix, dtype=float)
    rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    fig = new_figure(1.0 + 0.62 * k, 0.8 + 0.58 * k)
    ax = fig.add_subplot()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels=classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
