"""End-to-end vision runs (``loopformer train vision``), evaluation and single-image classification."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_model
from ..config import ModelConfig
from ..data.download import DataError
from ..errors import CheckpointError, ConfigError
from ..registry import get_config
from ..train.config import TrainConfig
from .runner import Run, open_run, parameters, train_best, write_results
from .vision import BUILTIN, VisionConfig, VisionTask, absolute_data, load_vision_config, saved_classes

# The task comes first: ``image_size`` is a setting of both the task and the model, and
# the task's (what the images are resized to) decides the model's.
SETTINGS = {"task": VisionConfig, "model": ModelConfig, "train": TrainConfig}


def train_vision(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False, splits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, then evaluate the best checkpoint on the test split. ``splits`` injects in-memory data."""
    run = open_run("vision", SETTINGS, model_name, preset, pairs, config_file, out, resume,
                   load_task=load_vision_config, normalize_task=absolute_data)
    with run:
        return _train(run, splits)


def _train(run: Run, splits: dict[str, Any] | None) -> dict[str, Any]:
    task = _prepare_task(run, splits)
    summary, best, final_model = train_best(run, task, "vit")
    if final_model is None:
        return {"rank": run.dist.rank, "train": summary}
    t0 = time.time()
    test = task.test_accuracy(final_model)
    test["seconds"] = time.time() - t0
    return write_results(run, {"model": run.name, "out": str(run.out_dir), "checkpoint": str(best),
                               "train": summary, "parameters": parameters(final_model), "test": test,
                               "data": task.data_summary()})


def _prepare_task(run: Run, splits: dict[str, Any] | None) -> VisionTask:
    """The run's task, its data checked before any training: the preset's image size for
    images of mixed sizes, and the patch size the model would use (the user's, the saved
    one on resume, else the preset's) so that the task can pick one that divides."""
    preset = get_config(run.name)
    if preset.task != "vit":
        raise ConfigError(f"preset '{run.name}' is a {preset.task} model; this task needs task=vit")
    patch = run.settings["model"].get("patch_size", preset.patch_size)
    task = VisionTask.prepare(VisionConfig(**run.settings["task"]), splits, preset.image_size, patch)
    if run.last is not None and splits is None and saved_classes(run.last) != task.classes:
        raise DataError(f"the classes of {task.cfg.data} are not those the run in {run.out_dir} was trained on")
    return task


def load_vision_checkpoint(path: str | Path) -> tuple[torch.nn.Module, VisionTask]:
    folder = Path(path)
    model = load_model(folder)
    cfg = load_vision_config(folder)
    if cfg.mean is None or cfg.std is None:
        raise CheckpointError(f"{folder / 'task.json'} lacks the normalisation statistics (mean, std)")
    if model.config.task != "vit":
        raise CheckpointError(f"{folder} holds a {model.config.task} model, not an image classifier")
    task = VisionTask(cfg, {}, classes=saved_classes(folder))
    found = (len(task.classes), task.image_size, task.in_channels)
    need = (model.config.num_classes, model.config.image_size, model.config.in_channels)
    if found != need:
        raise CheckpointError(f"{folder / 'task.json'} describes {found[0]} classes of {found[1]}x{found[1]} "
                              f"images with {found[2]} channel(s); the model takes {need[0]} of "
                              f"{need[1]}x{need[1]} with {need[2]}")
    return model.eval(), task


def default_invert(task: VisionTask) -> str:
    """How ``classify`` treats a light-bordered greyscale picture unless told: inverted
    for Fashion-MNIST (light objects on black), as is for a folder's images (the model
    saw them as they are)."""
    return "auto" if task.cfg.data == BUILTIN else "no"


def classify_images(model, task: VisionTask, paths: list[str], invert: str | None = None,
                    top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes with probabilities for each image file (``invert``: see :func:`default_invert`)."""
    from ..data.images import load_image

    cfg = model.config
    invert = invert or default_invert(task)
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
    lines = [f"\ncheckpoint: {results['checkpoint']}",
             f"{test['split']} accuracy: {test['accuracy']:.2f}% on {test['images']:,} images"]
    skipped = sum(results.get("data", {}).get("skipped", {}).values())
    if skipped:
        lines.append(f"skipped {skipped:,} unreadable image file(s) (bad_images=skip; listed in results.json)")
    return lines
