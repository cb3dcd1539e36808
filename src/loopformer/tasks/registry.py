"""The tasks by name: what loads a checkpoint of each, so callers dispatch through one table
instead of comparing task names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .task_file import task_name


def _translation(folder):
    from .translation_run import load_translation_checkpoint

    return load_translation_checkpoint(folder)


def _vision(folder):
    from .vision_run import load_vision_checkpoint

    return load_vision_checkpoint(folder)


def _language(folder):
    from .language_run import load_language_checkpoint

    return load_language_checkpoint(folder)


# task name -> loader returning (model, task); the run modules are imported on first use
LOADERS: dict[str, Callable[[Any], tuple[Any, Any]]] = {
    "translation": _translation, "vision": _vision, "language": _language,
}


def load_checkpoint(folder: str | Path) -> tuple[Any, Any, str]:
    """(model in eval mode, its task, the task's name) for any checkpoint folder."""
    kind = task_name(folder)
    model, task = LOADERS[kind](folder)
    return model.eval(), task, kind
