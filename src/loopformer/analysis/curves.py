"""Training curves of runs, read from their ``metrics.jsonl`` and drawn side by side.

A log is read as the trainer leaves it: a run killed while writing may end in half a
line, which is dropped; anything else that is not a record is an error naming the line.
A resumed run appends to its log, and after a crash it re-logs the steps past its last
checkpoint; the later records of a step win, so each curve shows the history of the
weights that were kept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..files import JSON_LIMIT, read_bytes

LOG_NAME = "metrics.jsonl"
# the task metric an evaluation record carries, and whether more is better
TASK_METRICS = {"val_bleu": ("validation BLEU", True), "val_accuracy": ("validation accuracy", True),
                "val_ppl": ("validation perplexity", False)}
X_AXES = {"step": "optimizer step", "tokens": "training tokens (images for vision)",
          "minutes": "training minutes (evaluation excluded)"}
# the train-record field behind an axis, and its unit in that field's
X_FIELDS = {"tokens": ("tokens_seen", 1.0), "minutes": ("train_seconds", 60.0)}


@dataclass
class Run:
    label: str
    path: Path  # its metrics.jsonl
    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def metric(self) -> str | None:
        """The task metric of the run's evaluations (None before its first evaluation)."""
        found = [m for m in TASK_METRICS if any(m in r for r in self.evals)]
        return found[0] if found else None

    @property
    def last_step(self) -> int:
        return max(r["step"] for r in self.train + self.evals)


def log_path(target: str | Path) -> Path:
    """A run directory's log, or the log file itself."""
    path = Path(target)
    return path / LOG_NAME if path.is_dir() else path


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a log in file order; a last line without its newline that does not
    parse is a write cut short, and dropped."""
    data = read_bytes(path, "metrics log", ConfigError, JSON_LIMIT)
    lines = data.split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            if number == len(lines):  # the last line, with no newline after it
                continue
            raise ConfigError(f"{path}, line {number}: not a JSON record") from None
        records.append(check_record(record, path, number))
    return records


def check_record(record: Any, path: Path, number: int) -> dict[str, Any]:
    """A record as the plots need it: a step, a kind, and a number where one is drawn."""
    where = f"{path}, line {number}"
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: a record must be a JSON object")
    step = record.get("step")
    if type(step) is not int or step < 0:
        raise ConfigError(f"{where}: a record needs a step (an integer >= 0), got {str(step)[:24]!r}")
    if not isinstance(record.get("kind"), str):
        raise ConfigError(f"{where}: a record needs a kind (train or eval)")
    needed = {"train": ["loss"], "eval": []}.get(record["kind"], [])
    drawn = needed + [k for k in ("val_loss", *TASK_METRICS, *(f for f, _ in X_FIELDS.values())) if k in record]
    for key in drawn:
        if not isinstance(record.get(key), (int, float)) or isinstance(record.get(key), bool):
            raise ConfigError(f"{where}: {key} must be a number")
    return record


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop what was logged again. A step that goes back starts a resumed session, whose
    records replace every older one from that step on; a kind logged twice at one step
    (the final evaluation repeats the last periodic one) replaces only that record."""
    kept: list[dict[str, Any]] = []
    for record in records:
        step, kind = record["step"], record["kind"]
        if kept and kept[-1]["step"] > step:
            while kept and kept[-1]["step"] >= step:
                kept.pop()
        else:
            start = len(kept)
            while start and kept[start - 1]["step"] == step:  # the records of this step end ``kept``
                start -= 1
            kept[start:] = [k for k in kept[start:] if k["kind"] != kind]
        kept.append(record)
    return kept


def read_run(target: str | Path, label: str) -> Run:
    path = log_path(target)
    records = latest(read_records(path))
    run = Run(label, path, [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"])
    if not run.train and not run.evals:
        raise ConfigError(f"{path} holds no training or evaluation records")
    return run


def default_labels(targets: Sequence[str | Path]) -> list[str]:
    """The run directories' names, with as many parent folders as tell equal names apart
    (``x/run``, ``y/run``); the same run given twice is numbered."""
    dirs = [log_path(t).resolve().parent for t in targets]

    def short(folder: Path) -> str:
        for depth in range(1, len(folder.parts) + 1):
            tail = folder.parts[-depth:]
            if not any(other != folder and other.parts[-depth:] == tail for other in dirs):
                return str(Path(*tail))
        return str(folder)

    labels, seen = [], {}
    for folder in dirs:
        label = short(folder)
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return labels


def read_runs(targets: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[Run]:
    """Every run's curves; runs of different tasks cannot share the metric panel."""
    if labels is not None and len(labels) != len(targets):
        raise ConfigError(f"{len(labels)} labels for {len(targets)} runs; give one label per run")
    runs = [read_run(t, label) for t, label in zip(targets, labels or default_labels(targets))]
    metrics = {run.metric for run in runs} - {None}
    if len(metrics) > 1:
        found = ", ".join(f"{run.path} has {run.metric}" for run in runs if run.metric)
        raise ConfigError(f"cannot plot runs of different tasks together ({found})")
    return runs


def x_values(run: Run, records: list[dict[str, Any]], axis: str) -> list[float]:
    """Where records sit on the x axis. Evaluation records carry only their step: their
    tokens or minutes are interpolated between the training records around them."""
    if axis == "step":
        return [float(r["step"]) for r in records]
    key, unit = X_FIELDS[axis]
    if not run.train:
        raise ConfigError(f"{run.path} has no training record yet to place its evaluations by {axis}; "
                          "plot it with --x step")
    if any(key not in r for r in run.train):
        raise ConfigError(f"{run.path}: its training records have no {key} (a log written before loopformer "
                          "recorded it); plot it with --x step")
    import numpy as np

    steps = [0.0] + [float(r["step"]) for r in run.train]
    values = [0.0] + [float(r[key]) / unit for r in run.train]
    rate = values[-1] / steps[-1] if steps[-1] else 0.0  # past the last training record
    return [float(np.interp(r["step"], steps, values)) if r["step"] <= steps[-1] else r["step"] * rate
            for r in records]


def best(run: Run) -> tuple[float, int] | None:
    """The run's best task metric and its step (None without one)."""
    metric = run.metric
    if metric is None:
        return None
    higher = TASK_METRICS[metric][1]
    points = [(r[metric], r["step"]) for r in run.evals if metric in r and math.isfinite(r[metric])]
    if not points:
        return None
    return max(points) if higher else min(points, key=lambda p: (p[0], -p[1]))


def summary(run: Run) -> str:
    """One line: how far the run went, where its loss ended, its best metric."""
    parts = [f"{run.label}: {run.last_step:,} steps"]
    if run.train:
        parts.append(f"last train loss {run.train[-1]['loss']:.4f}")
    top = best(run)
    if top is not None:
        parts.append(f"best {run.metric} {top[0]:.4f} at step {top[1]:,}")
    elif not run.evals:
        parts.append("no evaluation yet")
    return ", ".join(parts)


def plot_curves(runs: Sequence[Run], path: str | Path, axis: str = "step") -> Path:
    """Training loss, validation loss and the task metric, one colour per run, on one
    shared x axis; written atomically as a PNG."""
    from .plots import new_figure, save_figure

    if axis not in X_AXES:
        raise ConfigError(f"the x axis is one of {', '.join(X_AXES)}; got {axis!r}")
    metric = next((run.metric for run in runs if run.metric), None)
    panels = [("train", "loss", "training loss"), ("eval", "val_loss", "validation loss"),
              ("eval", metric, TASK_METRICS[metric][0] if metric else "task metric")]
    fig = new_figure(7.5, 8.0)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (kind, key, title) in zip(axes, panels):
        drawn = 0
        for i, run in enumerate(runs):
            rows = [r for r in (run.train if kind == "train" else run.evals) if key is not None and key in r]
            if rows:
                marker = "o" if kind == "eval" and len(rows) < 40 else None
                ax.plot(x_values(run, rows, axis), [r[key] for r in rows], color=f"C{i % 10}", marker=marker,
                        markersize=3, linewidth=1.2, label=run.label)
                drawn += 1
        ax.set_ylabel(title, fontsize=9)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {title} in these logs", ha="center", va="center", transform=ax.transAxes)
    axes[-1].set_xlabel(X_AXES[axis], fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
