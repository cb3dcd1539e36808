"""The task settings a checkpoint folder carries (``task.json``) next to its weights.

Reading it is the first thing evaluation and resuming do, so every way it can be wrong
(missing, corrupt, another task's, unknown values) ends in one CheckpointError line.
The file is read through :mod:`loopformer.files`: only a regular file, of bounded size.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from ..errors import CheckpointError, ConfigError
from ..files import MiB, read_json

TASK_FILE = "task.json"
TASKS = ("translation", "vision", "language")
TASK_FILE_LIMIT = 16 * MiB  # a few hundred bytes; class names of a large label set fit
T = TypeVar("T")


def task_name(folder: str | Path, missing: str | None = None) -> str:
    """Which task wrote ``folder``: one of :data:`TASKS`.

    A file without a ``task`` key is a translation run's (the first task to write one);
    ``missing`` is the answer when there is no file at all (None: that is an error)."""
    path = Path(folder) / TASK_FILE
    if not os.path.lexists(path):
        if missing is not None:
            return missing
        raise CheckpointError(f"{folder} has no {TASK_FILE}: not a checkpoint written by the trainer")
    data = read_json(path, "task file", CheckpointError, TASK_FILE_LIMIT)
    kind = data.get("task", "translation") if isinstance(data, dict) else None
    if kind not in TASKS:
        raise CheckpointError(f"{path} names no known task (one of {', '.join(TASKS)}): {kind!r}")
    return kind


def read_task_config(folder: Path, cls: type[T], what: str, task: str | None = None,
                     missing_ok: bool = False) -> T:
    """``cls`` from ``folder/task.json`` (unknown keys ignored, for older and newer files).

    ``task`` requires the file to name that task; ``missing_ok`` returns the defaults when
    there is no file (checkpoints written before the file existed)."""
    path = Path(folder) / TASK_FILE
    if not os.path.lexists(path):
        if missing_ok:
            return cls()
        raise CheckpointError(f"{folder} has no {TASK_FILE}; it is not a {what} checkpoint")
    data = read_json(path, "task file", CheckpointError, TASK_FILE_LIMIT)
    if not isinstance(data, dict) or (task is not None and data.get("task") != task):
        raise CheckpointError(f"{path} does not describe a {what} run")
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
