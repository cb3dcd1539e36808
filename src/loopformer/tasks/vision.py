"""Image classification on Fashion-MNIST: batches with augmentation, loss, accuracy.

The normalisation statistics are measured on the training split once and stored in the
checkpoint's ``task.json`` with the class names, so evaluation and ``classify`` apply
exactly what training applied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes
from ..config import Limit, check_fields
from ..data.augment import normalize, random_crop, random_hflip
from ..data.fashion_mnist import CLASSES, load_fashion_mnist
from ..device import module_device
from ..errors import ConfigError
from .task_file import TASK_FILE, read_task_config


@dataclass
class VisionConfig:
    dataset: str = "fashion-mnist"
    batch_size: int = 128
    val_size: int = 5000
    crop_padding: int = 2
    hflip: bool = True
    eval_batch_size: int = 500
    mean: float | None = None
    std: float | None = None
    test_split: str = "test"

    # mean and std are of pixel values scaled to [0, 1]
    LIMITS: ClassVar[dict[str, Limit]] = {
        "batch_size": Limit(1, 1 << 16), "val_size": Limit(1, 10**8), "crop_padding": Limit(0, 256),
        "eval_batch_size": Limit(1, 1 << 16), "mean": Limit(0.0, 1.0), "std": Limit(0.0, 1.0, open_lo=True),
    }

    def __post_init__(self) -> None:
        check_fields(self, "vision")
        if self.dataset != "fashion-mnist":
            raise ConfigError(f"vision dataset must be fashion-mnist, got {self.dataset!r}")
        if self.test_split not in ("val", "test"):
            raise ConfigError(f"test_split must be val or test, got {self.test_split!r}")


class VisionTask:
    classes = CLASSES
    image_size = 28
    in_channels = 1

    def __init__(self, cfg: VisionConfig, splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """``splits`` supplies in-memory (uint8 images (N, H, W), labels) per split instead of the dataset."""
        self._arrays = dict(splits or {})
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.cfg = cfg
        if cfg.mean is None or cfg.std is None:
            images = self.split("train")[0].float() / 255.0
            self.cfg = replace(cfg, mean=float(images.mean()), std=float(images.std()))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 1, H, W) and int64 labels of a split, loaded once."""
        if name not in self._tensors:
            images, labels = self._arrays[name] if name in self._arrays else load_fashion_mnist(name, self.cfg.val_size)
            self._tensors[name] = (torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1),
                                   torch.from_numpy(np.asarray(labels, dtype=np.int64)))
        return self._tensors[name]

    input_files: tuple[str, ...] = ()  # images are images: nothing to agree on

    def analysis_batches(self, split: str | None, batch_size: int):
        """Normalised image batches of a split (every position is real: no masks)."""
        images, _ = self.split(split or "test")
        for i in range(0, len(images), batch_size):
            yield (self.prepare_images(images[i : i + batch_size]),), {"encoder": None}

    def model_overrides(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "in_channels": self.in_channels, "num_classes": len(self.classes)}

    def save_assets(self, folder: Path) -> None:
        info = {"task": "vision", **asdict(self.cfg), "classes": list(self.classes)}
        atomic_write_bytes(Path(folder) / TASK_FILE, json.dumps(info, indent=2).encode())

    # --- preprocessing ------------------------------------------------------------------------

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float."""
        return normalize(images.float() / 255.0, self.cfg.mean, self.cfg.std)

    # --- training interface -------------------------------------------------------------------

    def batch_plan(self, epoch: int, seed: int) -> list[tuple[list[int], int]]:
        n = len(self.split("train")[1])
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        b = self.cfg.batch_size
        base = (seed * 1_000_003 + epoch) * 100_003
        return [(order[i : i + b], base + k) for k, i in enumerate(range(0, n - b + 1, b))] or (
            [(order, base)] if n else []
        )

    def make_batch(self, item: tuple[list[int], int]) -> dict[str, torch.Tensor]:
        indices, aug_seed = item
        images, labels = self.split("train")
        idx = torch.as_tensor(indices)
        x = images[idx].float() / 255.0
        g = torch.Generator().manual_seed(aug_seed)
        x = random_crop(x, self.cfg.crop_padding, g)
        if self.cfg.hflip:
            x = random_hflip(x, 0.5, g)
        return {"images": normalize(x, self.cfg.mean, self.cfg.std), "labels": labels[idx]}

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["labels"].numel())

    def loss(self, model, batch, label_smoothing: float) -> tuple[torch.Tensor, int]:
        logits = model(batch["images"])
        loss = F.cross_entropy(logits.float(), batch["labels"], label_smoothing=label_smoothing)
        return loss, int(batch["labels"].numel())

    @torch.no_grad()
    def predict(self, model, images: torch.Tensor) -> torch.Tensor:
        """Logits for uint8 images (N, C, H, W), in evaluation batches."""
        was_training = model.training
        model.eval()
        try:
            device = module_device(model)
            out = [model(self.prepare_images(images[i : i + self.cfg.eval_batch_size]).to(device)).float().cpu()
                   for i in range(0, len(images), self.cfg.eval_batch_size)]
        finally:
            model.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))

    def evaluate(self, model) -> dict[str, float]:
        images, labels = self.split("val")
        logits = self.predict(model, images)
        loss = F.cross_entropy(logits, labels).item()
        acc = float((logits.argmax(-1) == labels).float().mean()) * 100
        return {"val_loss": loss, "val_accuracy": acc, "score": acc}

    def test_accuracy(self, model, split: str | None = None) -> dict[str, Any]:
        """Accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
        split = split or self.cfg.test_split
        images, labels = self.split(split)
        pred = self.predict(model, images).argmax(-1)
        k = len(self.classes)
        matrix = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
        per_class = (matrix.diag().float() / matrix.sum(1).clamp(min=1).float() * 100).tolist()
        return {"split": split, "accuracy": float((pred == labels).float().mean()) * 100,
                "per_class": dict(zip(self.classes, per_class)), "confusion": matrix.tolist(),
                "images": int(len(labels))}


def load_vision_config(folder: Path) -> VisionConfig:
    return read_task_config(folder, VisionConfig, "vision")
