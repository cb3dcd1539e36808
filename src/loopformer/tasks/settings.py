"""Run settings and the run directory.

Settings are a YAML file plus ``key=value`` overrides, routed to the config that owns
each key. The YAML file is read within :data:`~loopformer.files.CONFIG_LIMIT` and may
not use anchors or aliases (settings never need them, and nested aliases expand a few
hundred bytes into gigabytes).

Resuming (``--resume``) continues the run as it was trained: the saved settings are the
base (model: ``last/config.json``, training: ``trainer_state.json``, task:
``task.json``), so nothing needs repeating. A setting given again must equal the saved
one, except the budget and execution settings of :data:`CHANGEABLE_ON_RESUME`, which
decide how long and where the run continues, not what it learns:

* training: ``max_steps``, ``max_minutes``, ``eval_every``, ``log_every``, ``keep_last``,
  ``progress``, ``threads``, ``device``, ``compile``, ``fsdp``, ``find_unused_parameters``,
  ``nonfinite``, ``max_skipped_steps``, ``tensorboard``;
* model: ``activation_checkpointing``;
* task: ``eval_batch_size``, ``eval_batch_sentences`` (the same figures in other batches).

Any other change (``context``, ``batch_size``, ``dataset``, ``lr``, ``d_model``...) is
refused with one line naming each setting and both values.

A run directory is locked (``flock`` on ``<out>/.lock``, holding the writer's pid) while
a run writes it, and a directory that holds any result is only trained into by
``--resume``.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..files import CONFIG_LIMIT, read_text
from ..train.config import split_overrides
from ..train.state import resolve

CHANGEABLE_ON_RESUME: dict[str, frozenset[str]] = {
    "train": frozenset({"max_steps", "max_minutes", "eval_every", "log_every", "keep_last", "progress", "threads",
                        "device", "compile", "fsdp", "find_unused_parameters", "nonfinite", "max_skipped_steps",
                        "tensorboard"}),
    "model": frozenset({"activation_checkpointing"}),
    "task": frozenset({"eval_batch_size", "eval_batch_sentences"}),
}
SECTION_NAMES = {"model": "model config", "train": "training settings", "task": "task settings"}
# what a run leaves in its directory; any of them means the directory holds a result
RESULT_NAMES = ("last", "last.old", "best", "best.old", "results.json", "metrics.jsonl")
LOCK_FILE = ".lock"


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (& and *) are not allowed in a settings file", event.start_mark)
        return super().compose_node(parent, index)


def read_settings(pairs: list[str], config_file: str | None, targets: dict[str, type],
                  defaults: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Merge task defaults, a YAML file (flat, or with sections named like ``targets``) and
    key=value overrides, later ones winning. Every value goes through the same text parser,
    so a YAML file and the command line accept exactly the same spellings.
    """
    merged: list[str] = list(defaults or [])
    if config_file:
        merged += config_pairs(config_file, targets)
    return split_overrides(merged + list(pairs), targets)


def config_pairs(config_file: str, targets: dict[str, type]) -> list[str]:
    """The settings of a YAML file as ``key=value`` strings."""
    text = read_text(config_file, "config file", ConfigError, CONFIG_LIMIT)
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {_yaml_reason(exc)}") from None
    except RecursionError:
        raise ConfigError(f"cannot read config file {config_file}: it is nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{config_file} must hold a mapping of settings")
    pairs = []
    for key, value in data.items():
        if key in targets and isinstance(value, dict):
            pairs += [f"{k}={_as_text(v)}" for k, v in value.items()]
        else:
            pairs.append(f"{key}={_as_text(value)}")
    return pairs


def _yaml_reason(exc: Exception) -> str:
    """A YAML error on one line: the problem and where (PyYAML's text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def merge_settings(base: dict[str, dict[str, Any]], top: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``top``'s values over ``base``'s, section by section."""
    return {label: {**base.get(label, {}), **top.get(label, {})} for label in {**base, **top}}


def resumed_settings(saved: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]],
                     where: Path) -> dict[str, dict[str, Any]]:
    """The saved settings of the run in ``where`` with the given changes of
    :data:`CHANGEABLE_ON_RESUME`; any other given value that differs is refused, all of
    them in one line (a resumed run that silently learned something else would be a lie)."""
    merged = {label: dict(values) for label, values in saved.items()}
    changed = []
    for label, values in given.items():
        diffs = []
        for key, value in values.items():
            if key in CHANGEABLE_ON_RESUME.get(label, ()):
                merged[label][key] = value
            elif saved[label].get(key) != value:
                diffs.append(f"{key}: trained with {saved[label].get(key)!r}, given {value!r}")
        if diffs:
            changed.append(f"different {SECTION_NAMES.get(label, label)} ({'; '.join(diffs)})")
    if changed:
        raise ConfigError(f"cannot resume {where} with {', '.join(changed)}: leave these settings out (the run "
                          "keeps its own) or train into another --out")
    return merged


def _as_text(value: Any) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_name(model_name: str, preset: str) -> str:
    """``--model ringformer --preset vit-tiny`` -> ``ringformer-vit-tiny``; a full name passes through."""
    if model_name.endswith(preset):
        return model_name
    if preset.startswith("vit-"):
        if model_name == "vanilla":
            return preset
        if model_name == "universal":  # the Universal ViT is called UiT
            return "uit-" + preset[len("vit-"):]
    return f"{model_name}-{preset}"


def results_in(out_dir: Path) -> list[str]:
    """The names of the results (checkpoints, logs, snapshots) a run left in ``out_dir``."""
    found = [name for name in RESULT_NAMES if (out_dir / name).exists()]
    return found + sorted(p.name for p in out_dir.glob("step-*") if not p.name.endswith(".tmp"))


def claim_run_dir(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a new run). A new run never goes into a
    directory holding any result (it would replace a better model or mix two runs'
    logs); ``--resume`` needs a resumable ``last/``."""
    found = results_in(out_dir)
    last = resolve(out_dir / "last")
    if not resume:
        if last is not None:
            raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
        if found:
            raise ConfigError(f"{out_dir} already holds results of a run ({', '.join(found[:5])}); "
                              "choose another --out")
        return None
    if last is None:
        held = f"holds {', '.join(found[:5])} but" if found else "has"
        raise ConfigError(f"cannot resume: {out_dir} {held} no resumable last/ checkpoint (a step-* snapshot "
                          "can be copied to last/); choose another --out to train anew")
    return last


class RunLock:
    """An exclusive ``flock`` on ``<out>/.lock`` for as long as a run writes ``out``; the
    file holds the writer's pid. The kernel drops the lock when the process dies, so a
    killed run never leaves a stale lock behind."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with suppress(OSError):
                os.ftruncate(fd, 0)  # no stale pid for the next reader
            os.close(fd)  # closing drops the lock

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run_dir(out_dir: Path) -> RunLock:
    """Lock ``out_dir`` for this process, or refuse in one line when another run holds it."""
    import fcntl

    path = out_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's pid stays readable
    except OSError as exc:
        raise ConfigError(f"cannot lock the run directory {out_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            raise ConfigError(f"another run (pid {holder}) is writing {out_dir}") from None
        raise ConfigError(f"cannot lock the run directory {out_dir}: {exc.strerror or exc}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(fd)


def prepare_out_dir(out_dir: Path) -> None:
    """Create the run directory and prove it is writable before any training starts."""
    import os
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write to the run directory {out_dir}: {exc.strerror or exc}") from None
