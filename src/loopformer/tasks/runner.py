"""What every ``loopformer train <task>`` run does around its task: settings, run
directory (locked while the run writes it), distributed setup, model, trainer, and the
best checkpoint at the end. What may change on ``--resume`` is listed in
:mod:`loopformer.tasks.settings`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import atomic_write_bytes, load_model, read_checkpoint_config
from ..config import check_values
from ..errors import CheckpointError, ConfigError
from ..files import read_json
from ..registry import get_config
from ..train.config import TrainConfig, split_overrides
from ..train.distributed import DistInfo, setup_from_env
from ..train.state import STATE_JSON, resolve
from .settings import (RunLock, claim_run_dir, lock_run_dir, merge_settings, prepare_out_dir, read_settings,
                       resumed_settings, run_name)


@dataclass
class Run:
    name: str  # the preset, e.g. ringformer-vit-tiny
    out_dir: Path
    settings: dict[str, dict[str, Any]]  # model / train / task fields
    train_cfg: TrainConfig
    last: Path | None  # the checkpoint to resume from
    dist: DistInfo
    lock: RunLock = field(default_factory=RunLock)  # held by rank 0 until the run ends

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def open_run(task_name: str, targets: dict[str, type], model_name: str, preset: str, pairs: list[str],
             config_file: str | None, out: str | None, resume: bool, defaults: list[str] | None = None,
             load_task: Callable[[Path], Any] | None = None,
             normalize_task: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Run:
    """Read the settings, lock and claim the run directory (refusing to train into one that
    holds a result without ``resume``) and, on resume, take the run's saved settings
    (``load_task`` reads its task settings). Use the run as ``with run:``, which releases
    the lock however the run ends. ``normalize_task`` puts the given task settings in the
    form they are saved in (an absolute dataset path), for the comparison on resume."""
    given = read_settings(pairs, config_file, targets)
    if normalize_task is not None:
        given["task"] = normalize_task(given["task"])
    name = run_name(model_name, preset)
    out_dir = Path(out or f"runs/{task_name}/{name}")
    fresh = merge_settings(split_overrides(list(defaults or []), targets), given)
    check_values(targets["model"], given["model"], "config")  # bad values fail before any work
    if not resume:
        TrainConfig(**fresh["train"])
        targets["task"](**fresh["task"])
    dist_info = setup_from_env()
    prepare_out_dir(out_dir)
    lock = lock_run_dir(out_dir) if dist_info.is_main else RunLock()  # torchrun: rank 0 writes
    try:
        last = claim_run_dir(out_dir, resume)
        settings = fresh if last is None else _resume_settings(last, name, given, load_task)
        train_cfg = TrainConfig(**settings["train"])
    except BaseException:
        lock.release()
        raise
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    return Run(name, out_dir, settings, train_cfg, last, dist_info, lock)


def _resume_settings(last: Path, name: str, given: dict[str, dict[str, Any]],
                     load_task: Callable[[Path], Any] | None) -> dict[str, dict[str, Any]]:
    """The saved settings of the run in ``last`` with the given changes allowed on resume.
    ``--model`` counts as given: its family must be the run's (an explicit ``arch`` wins)."""
    if load_task is None:
        raise ConfigError("this task cannot resume runs")
    expected = {**given, "model": {"arch": get_config(name).arch, **given.get("model", {})}}
    return resumed_settings(saved_settings(last, load_task), expected, last.parent)


def saved_settings(last: Path, load_task: Callable[[Path], Any]) -> dict[str, dict[str, Any]]:
    """Every setting the run in checkpoint ``last`` was trained with (fields added to the
    configs since take their defaults, which were the behaviour then)."""
    model_cfg, _ = read_checkpoint_config(last)
    path = last / STATE_JSON
    state = read_json(path, "training state", CheckpointError)
    train = state.get("train_config") if isinstance(state, dict) else None
    if not isinstance(train, dict):
        raise CheckpointError(f"{path} holds no train_config: cannot resume from {last}")
    known = {f.name for f in fields(TrainConfig)}
    try:
        train_cfg = TrainConfig(**{k: v for k, v in train.items() if k in known})
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "task": asdict(load_task(last))}


def train_best(run: Run, task, expected_task: str) -> tuple[dict[str, Any], Path | None, torch.nn.Module | None]:
    """Build the model for ``task``, train (or resume) it; returns the trainer's summary and,
    on rank 0, the best checkpoint and its model (``None`` on other ranks)."""
    from ..models import build_model
    from ..train.trainer import Trainer

    model_cfg = get_config(run.name, **task_model_settings(task.model_overrides(), run.settings["model"]))
    if model_cfg.task != expected_task:
        raise ConfigError(f"preset '{run.name}' is a {model_cfg.task} model; this task needs task={expected_task}")
    torch.manual_seed(run.train_cfg.seed)
    trainer = Trainer(task, build_model(model_cfg), run.train_cfg, run.out_dir)
    resumed = trainer.resume() if run.last is not None else False
    started = time.time()
    summary = trainer.fit()
    summary["wall_seconds_this_run"] = time.time() - started
    summary["resumed"] = resumed
    if not run.dist.is_main:  # rank 0 evaluates and reports
        return summary, None, None
    best = resolve(run.out_dir / "best") or resolve(run.out_dir / "last")
    return summary, best, load_model(best).eval().to(trainer.device)  # test on the training device


def task_model_settings(forced: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The model settings of a run: what the data fixes (vocabulary size, image size,
    context) plus the user's. A user setting that contradicts the data would build a model
    that fails at its first batch (an id beyond the vocabulary, a window longer than the
    positions), so it is refused here; ``max_len`` may exceed what the data needs."""
    for key, value in given.items():
        if key not in forced or value == forced[key]:
            continue
        if key == "max_len" and forced[key] is not None and value >= forced[key]:
            continue
        need = f"{key} >= {forced[key]}" if key == "max_len" else f"{key}={forced[key]!r}"
        raise ConfigError(f"{key}={value!r} does not fit the data, which needs {need}; "
                          f"leave {key} unset and the task sets it")
    return {**forced, **given}


def parameters(model) -> dict[str, int]:
    from ..analysis.params import count_parameters

    c = count_parameters(model)
    return {"non_embedding": c.non_embedding, "total": c.total}


def write_results(run: Run, results: dict[str, Any]) -> dict[str, Any]:
    atomic_write_bytes(run.out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results
