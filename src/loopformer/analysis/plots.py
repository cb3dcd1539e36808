"""Figures for the analyses (matplotlib object API with the Agg canvas: no global state)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # writers in parallel never share a temporary
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def plot_cka(result: dict[str, Any], path: str | Path, name_a: str = "A", name_b: str = "B") -> Path:
    """One heatmap per stack: rows = A's layer applications, columns = B's, colour = CKA."""
    import numpy as np

    stacks = list(result)
    sizes = [np.asarray(result[s]["cka"]) for s in stacks]
    width = sum(max(3.2, 0.55 * m.shape[1] + 2.0) for m in sizes)
    height = max(3.2, 0.45 * max(m.shape[0] for m in sizes) + 1.8)
    fig = new_figure(width, height)
    axes = fig.subplots(1, len(stacks), squeeze=False)[0]
    for ax, stack, m in zip(axes, stacks, sizes):
        image = ax.imshow(m, cmap="magma", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(m.shape[1]), labels=result[stack]["b_layers"], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(m.shape[0]), labels=result[stack]["a_layers"], fontsize=7)
        ax.set_xlabel(name_b, fontsize=8)
        ax.set_ylabel(name_a, fontsize=8)
        ax.set_title(f"{stack}: linear CKA", fontsize=9)
        if m.size <= 196:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if m[i, j] > 0.6 else "white")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="CKA")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_distances(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Per stack: each head's mean attention distance per layer application, and their mean."""
    stacks = list(result["stacks"])
    fig = new_figure(4.2 * len(stacks) + 0.6, 3.4)
    axes = fig.subplots(1, len(stacks), squeeze=False)[0]
    for ax, stack in zip(axes, stacks):
        rows = result["stacks"][stack]
        xs = range(len(rows))
        for x, row in zip(xs, rows):
            ax.scatter([x] * len(row["per_head"]), row["per_head"], s=10, alpha=0.6, color="tab:blue")
        ax.plot(list(xs), [r["mean"] for r in rows], color="tab:red", marker="o", label="mean over heads")
        ax.set_xticks(list(xs), labels=[r["layer"] for r in rows], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(f"mean attention distance ({result['unit']})", fontsize=8)
        ax.set_title(f"{title} {stack}".strip(), fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def format_matrix(rows: Sequence[str], cols: Sequence[str], values) -> str:
    width = max(len(r) for r in rows)
    head = " " * width + "  " + " ".join(f"{c[:8]:>8}" for c in cols)
    lines = [head] + [f"{r:<{width}}  " + " ".join(f"{v:8.3f}" for v in row) for r, row in zip(rows, values)]
    return "\n".join(lines)
