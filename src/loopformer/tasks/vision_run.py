"""End-to-end vision runs (``loopformer train vision``), evaluation and single-image classification."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_model
from ..config import ModelConfig
from ..errors import CheckpointError
from ..train.config import TrainConfig
from .runner import Run, open_run, parameters, train_best, write_results
from .vision import VisionConfig, VisionTask, load_vision_config

SETTINGS = {"model": ModelConfig, "train": TrainConfig, "task": VisionConfig}


def train_vision(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False, splits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, then evaluate the best checkpoint on the test split. ``splits`` injects in-memory data."""
    run = open_run("vision", SETTINGS, model_name, preset, pairs, config_file, out, resume,
                   load_task=load_vision_config)
    with run:
        return _train(run, splits)


def _train(run: Run, splits: dict[str, Any] | None) -> dict[str, Any]:
    task = VisionTask(VisionConfig(**run.settings["task"]), splits)
    summary, best, final_model = train_best(run, task, "vit")
    if final_model is None:
        return {"rank": run.dist.rank, "train": summary}
    t0 = time.time()
    test = task.test_accuracy(final_model)
    test["seconds"] = time.time() - t0
    return write_results(run, {"model": run.name, "out": str(run.out_dir), "checkpoint": str(best),
                               "train": summary, "parameters": parameters(final_model), "test": test})


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


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The end of a training run, for the console (empty on a non-zero torchrun rank)."""
    if "test" not in results:
        return []
    test = results["test"]
    return [f"\ncheckpoint: {results['checkpoint']}",
            f"{test['split']} accuracy: {test['accuracy']:.2f}% on {test['images']:,} images"]
