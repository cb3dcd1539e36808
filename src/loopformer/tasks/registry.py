"""The tasks by name: what trains, loads and summarises each, so callers (the CLI, the
analyses) dispatch through one table instead of comparing task names. Each task's run
module is imported on first use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .task_file import task_name


@dataclass(frozen=True)
class TaskEntry:
    name: str
    default_preset: str
    module: str  # loopformer.tasks.<module> holds train_<name>, load_<name>_checkpoint, summary_lines

    def _get(self, attr: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(f"{__package__}.{self.module}"), attr)

    def train(self, family: str, preset: str | None, overrides, config_path, out, resume) -> dict[str, Any]:
        return self._get(f"train_{self.name}")(family, preset or self.default_preset, overrides, config_path, out,
                                                resume)

    def load(self, folder) -> tuple[Any, Any]:
        """(model, task) of a checkpoint folder of this task."""
        return self._get(f"load_{self.name}_checkpoint")(folder)

    def summary(self, results: dict[str, Any]) -> list[str]:
        """What ``train`` prints at the end (nothing on a non-zero rank under torchrun)."""
        return self._get("summary_lines")(results)


TASKS: dict[str, TaskEntry] = {
    "translation": TaskEntry("translation", "mt-small", "translation_run"),
    "vision": TaskEntry("vision", "vit-tiny", "vision_run"),
    "language": TaskEntry("language", "lm-small", "language_run"),
}


def load_checkpoint(folder: str | Path) -> tuple[Any, Any, str]:
    """(model in eval mode, its task, the task's name) for any checkpoint folder."""
    kind = task_name(folder)
    model, task = TASKS[kind].load(folder)
    return model.eval(), task, kind
