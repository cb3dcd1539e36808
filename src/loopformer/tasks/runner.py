"""What every ``loopformer train <task>`` run does around its task: settings, run
directory, distributed setup, model, trainer, and the best checkpoint at the end."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_bytes, load_model
from ..errors import ConfigError
from ..registry import get_config
from ..train.config import TrainConfig
from ..train.distributed import DistInfo, setup_from_env
from ..train.state import resolve
from .settings import prepare_out_dir, read_settings, run_name


@dataclass
class Run:
    name: str  # the preset, e.g. ringformer-vit-tiny
    out_dir: Path
    settings: dict[str, dict[str, Any]]  # model / train / task fields
    train_cfg: TrainConfig
    last: Path | None  # the checkpoint to resume from
    dist: DistInfo


def open_run(task_name: str, targets: dict[str, type], model_name: str, preset: str, pairs: list[str],
             config_file: str | None, out: str | None, resume: bool, defaults: list[str] | None = None) -> Run:
    """Read the settings and claim the run directory (refusing to overwrite a run)."""
    settings = read_settings(pairs, config_file, targets, defaults=defaults)
    name = run_name(model_name, preset)
    out_dir = Path(out or f"runs/{task_name}/{name}")
    train_cfg = TrainConfig(**settings["train"])
    dist_info = setup_from_env()
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    last = resolve(out_dir / "last")
    if last is not None and not resume:
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    prepare_out_dir(out_dir)
    return Run(name, out_dir, settings, train_cfg, last, dist_info)


def train_best(run: Run, task, expected_task: str) -> tuple[dict[str, Any], Path | None, torch.nn.Module | None]:
    """Build the model for ``task``, train (or resume) it; returns the trainer's summary and,
    on rank 0, the best checkpoint and its model (``None`` on other ranks)."""
    from ..models import build_model
    from ..train.trainer import Trainer

    model_cfg = get_config(run.name, **{**task.model_overrides(), **run.settings["model"]})
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


def parameters(model) -> dict[str, int]:
    from ..analysis.params import count_parameters

    c = count_parameters(model)
    return {"non_embedding": c.non_embedding, "total": c.total}


def write_results(run: Run, results: dict[str, Any]) -> dict[str, Any]:
    atomic_write_bytes(run.out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results
