"""The task settings a checkpoint folder carries (``task.json``) next to its weights.

Reading it is the first thing evaluation and resuming do, so every way it can be wrong
(missing, corrupt, another task's, unknown values) ends in one CheckpointError line.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from ..errors import CheckpointError, ConfigError

TASK_FILE = "task.json"
TASKS = ("translation", "vision", "language")
T = TypeVar("T")


def task_name(folder: str | Path, missing: str | None = None) -> str:
    """Which task wrote ``folder``: one of :data:`TASKS`.

    A file without a ``task`` key is a translation run's (the first task to write one);
    ``missing`` is the answer when there is no file at all (None: that is an error)."""
    path = Path(folder) / TASK_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if missing is not None:
            return missing
        raise CheckpointError(f"{folder} has no {TASK_FILE}: not a checkpoint written by the trainer") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} is unreadable: {exc.strerror or exc}") from None
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
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if missing_ok:
            return cls()
        raise CheckpointError(f"{folder} has no {TASK_FILE}; it is not a {what} checkpoint") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    if not isinstance(data, dict) or (task is not None and data.get("task") != task):
        raise CheckpointError(f"{path} does not describe a {what} run")
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
