"""End-to-end translation runs (what ``loopformer train translation`` does)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_bytes, load_model
from ..config import ModelConfig
from ..data.tokenizer import BPETokenizer
from ..errors import ConfigError
from ..models import build_model
from ..registry import get_config
from ..train.config import TrainConfig
from ..train.distributed import setup_from_env
from ..train.state import resolve
from ..train.trainer import Trainer
from .settings import prepare_out_dir, read_settings, run_name
from .translation import TranslationConfig, TranslationTask, load_task_config

SETTINGS = {"model": ModelConfig, "train": TrainConfig, "task": TranslationConfig}


def train_translation(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False,
) -> dict[str, Any]:
    settings = read_settings(pairs, config_file, SETTINGS)
    name = run_name(model_name, preset)
    out_dir = Path(out or f"runs/translation/{name}")
    train_cfg = TrainConfig(**settings["train"])
    dist_info = setup_from_env()
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    last = resolve(out_dir / "last")
    if last is not None and not resume:
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    prepare_out_dir(out_dir)
    if last is not None:
        task_cfg = load_task_config(last)
        task = TranslationTask(task_cfg, BPETokenizer.load(last))
    else:
        task_cfg = TranslationConfig(**settings["task"])
        task = TranslationTask.prepare(task_cfg)
    model_cfg = get_config(name, **{**task.model_overrides(), **settings["model"]})
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    trainer = Trainer(task, model, train_cfg, out_dir)
    resumed = trainer.resume() if last is not None else False
    started = time.time()
    summary = trainer.fit()
    summary["wall_seconds_this_run"] = time.time() - started
    summary["resumed"] = resumed
    if not dist_info.is_main:  # rank 0 evaluates and reports
        return {"rank": dist_info.rank, "train": summary}
    best = resolve(out_dir / "best") or resolve(out_dir / "last")
    final_model = load_model(best)
    results = {"model": name, "out": str(out_dir), "checkpoint": str(best), "train": summary,
               "parameters": _params(final_model)}
    for split in task_cfg.splits_to_test:
        t0 = time.time()
        res = task.test_bleu(final_model, split)
        res["seconds"] = time.time() - t0
        results[split] = res
    atomic_write_bytes(out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results


def _params(model) -> dict[str, int]:
    from ..analysis.params import count_parameters

    c = count_parameters(model)
    return {"non_embedding": c.non_embedding, "total": c.total}


def load_translation_checkpoint(path: str) -> tuple[torch.nn.Module, TranslationTask]:
    folder = Path(path)
    model = load_model(folder)
    task = TranslationTask(load_task_config(folder), BPETokenizer.load(folder))
    if task.tok.vocab_size != model.config.vocab_size:
        from ..errors import CheckpointError

        raise CheckpointError(
            f"{folder / 'tokenizer.json'} has {task.tok.vocab_size} tokens but the model expects "
            f"{model.config.vocab_size}"
        )
    return model.eval(), task
