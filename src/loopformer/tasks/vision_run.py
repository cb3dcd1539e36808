"""End-to-end vision runs (``loopformer train vision``), evaluation and single-image classification."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_bytes, load_model
from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from ..models import build_model
from ..registry import get_config
from ..train.config import TrainConfig
from ..train.distributed import setup_from_env
from ..train.state import resolve
from ..train.trainer import Trainer
from .settings import prepare_out_dir, read_settings, run_name
from .vision import VisionConfig, VisionTask, load_vision_config

SETTINGS = {"model": ModelConfig, "train": TrainConfig, "task": VisionConfig}


def train_vision(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False, splits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, then evaluate the best checkpoint on the test split. ``splits`` injects in-memory data."""
    settings = read_settings(pairs, config_file, SETTINGS)
    name = run_name(model_name, preset)
    out_dir = Path(out or f"runs/vision/{name}")
    train_cfg = TrainConfig(**settings["train"])
    dist_info = setup_from_env()
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    last = resolve(out_dir / "last")
    if last is not None and not resume:
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    prepare_out_dir(out_dir)
    task_cfg = load_vision_config(last) if last is not None else VisionConfig(**settings["task"])
    task = VisionTask(task_cfg, splits)
    model_cfg = get_config(name, **{**task.model_overrides(), **settings["model"]})
    if model_cfg.task != "vit":
        raise ConfigError(f"preset '{name}' is not an image classifier (task {model_cfg.task!r})")
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
    t0 = time.time()
    test = task.test_accuracy(final_model)
    test["seconds"] = time.time() - t0
    results = {"model": name, "out": str(out_dir), "checkpoint": str(best), "train": summary,
               "parameters": _params(final_model), "test": test}
    atomic_write_bytes(out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results


def _params(model) -> dict[str, int]:
    from ..analysis.params import count_parameters

    c = count_parameters(model)
    return {"non_embedding": c.non_embedding, "total": c.total}


def is_vision_checkpoint(path: str | Path) -> bool:
    info = Path(path) / "task.json"
    try:
        return json.loads(info.read_text()).get("task") == "vision"
    except (OSError, ValueError, AttributeError):
        return False


def load_vision_checkpoint(path: str | Path) -> tuple[torch.nn.Module, VisionTask]:
    folder = Path(path)
    model = load_model(folder)
    cfg = load_vision_config(folder)
    if cfg.mean is None or cfg.std is None:
        raise CheckpointError(f"{folder / 'task.json'} lacks the normalisation statistics (mean, std)")
    if model.config.task != "vit":
        raise CheckpointError(f"{folder} holds a {model.config.task} model, not an image classifier")
    return model.eval(), VisionTask(cfg, {})


def classify_images(model, task: VisionTask, paths: list[str], invert: str = "auto",
                    top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes with probabilities for each image file."""
    from ..data.images import load_image

    cfg = model.config
    batch = torch.stack([load_image(p, cfg.image_size, cfg.in_channels, invert) for p in paths])
    probs = task.predict(model, batch).softmax(-1)
    k = min(top_k, probs.shape[-1])
    out = []
    for path, p in zip(paths, probs):
        values, idx = p.topk(k)
        out.append({"image": str(path),
                    "top": [{"class": task.classes[i], "probability": float(v)}
                            for v, i in zip(values.tolist(), idx.tolist())]})
    return out
