"""Page specs: what a table page trains and where its records and page live.

A page is data (its rows, recipe, folders and budget) plus one render function; the
runner in :mod:`reports.runner` does the rest the same way for every page, so adding a
row is one line and a recipe change is one YAML edit in ``configs/tables/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .paths import RECIPES


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the task that trains with it and its YAML file (``train:`` and
    ``task:`` sections, read by the library exactly like ``loopformer train --config``)."""

    task: str  # translation, vision or language
    file: Path

    @classmethod
    def named(cls, task: str, name: str) -> Recipe:
        """The recipe ``configs/tables/<name>.yaml``."""
        return cls(task, RECIPES / f"{name}.yaml")

    def settings(self) -> dict[str, Any]:
        """Every key of the file, whatever its section: what a page quotes from the recipe."""
        import yaml

        data = yaml.safe_load(self.file.read_text()) or {}
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(value if isinstance(value, dict) else {key: value})
        return flat


@dataclass(frozen=True)
class Row:
    """One row of a table: which model it trains and what it changes in the recipe."""

    family: str  # --model: vanilla, ringformer, universal, looped, spiral, ...
    preset: str  # --preset: mt-small, vit-tiny, lm-char, ...
    recipe: Recipe
    overrides: tuple[str, ...] = ()  # key=value settings after the recipe's (they win)
    about: str = ""  # what the row is, for pages that describe their rows
    steps: int | None = None  # a budget of its own that --steps does not change


@dataclass(frozen=True)
class PageSpec:
    """A table page: rows by name (the names are the record and run-directory names), the
    folder of its JSON records, the page file (relative to ``docs/results``), the folder of
    its run directories, the default step budget and the function that renders the page
    from the records (``render(spec, steps, seeds, out)``; figures go under ``out``)."""

    name: str
    rows: dict[str, Row]
    results: Path
    page: str
    runs: Path
    default_steps: int
    render: Callable[..., str] = field(compare=False)

    def record_path(self, name: str, seed: int) -> Path:
        """A run's record: its existence is what marks the run finished."""
        return self.results / f"{name}-s{seed}.json"

    def run_dir(self, name: str, seed: int) -> Path:
        """A run's checkpoints: resumed from when the run was interrupted."""
        return self.runs / f"{name}-s{seed}"


def load_records(folder: Path) -> list[dict]:
    """Every JSON record directly in ``folder``, in file-name order (so pages list runs in
    a stable order), or none when the folder does not exist yet."""
    import json

    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
