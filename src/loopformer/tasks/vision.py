"""Image classification on Fashion-MNIST or on a folder of your images: batches with
augmentation, loss, accuracy.

The data decide the classes, the image size and the channel count (a folder's from its
class folders and image headers, see :mod:`loopformer.data.image_folder`); they are saved
in the checkpoint's ``task.json`` with the normalisation statistics, measured on the
training split once, so evaluation and ``classify`` apply exactly what training applied.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes
from ..config import Limit, check_fields
from ..data.augment import normalize, random_crop, random_hflip
from ..data.download import DataError
from ..data.fashion_mnist import CLASSES, load_fashion_mnist
from ..data.image_folder import BAD_IMAGES, SPLIT_FOLDERS, ImageTree, infer_format, read_split, scan_tree
from ..device import module_device
from ..errors import CheckpointError, ConfigError
from ..files import read_json
from .task_file import TASK_FILE, TASK_FILE_LIMIT, read_task_config

BUILTIN = "fashion-mnist"
BUILTIN_FORMAT = {"image_size": 28, "channels": 1}
CHANNELS = (1, 3)
# Up to this many pixel values the statistics are one float32 pass, as the first runs
# measured them (so Fashion-MNIST runs reproduce bit for bit); beyond, float64 sums chunk
# by chunk, so that memory does not grow by four bytes a pixel.
EXACT_STATS_VALUES = 1 << 28
STATS_CHUNK = 1 << 12  # images per chunk


@dataclass
class VisionConfig:
    data: str = BUILTIN  # fashion-mnist, or a folder DIR/train/<class>/... (saved as an absolute path)
    batch_size: int = 128
    val_size: int = 5000
    crop_padding: int = 2
    hflip: bool = True
    eval_batch_size: int = 500
    mean: float | None = None
    std: float | None = None
    test_split: str = "test"
    image_size: int | None = None  # folder: the side images are resized to (unset: from the images)
    channels: int | None = None  # folder: 1 or 3 (unset: 1 when every training image is greyscale)
    bad_images: str = "error"  # folder: error, or skip unreadable files and count them

    # mean and std are of pixel values scaled to [0, 1]
    LIMITS: ClassVar[dict[str, Limit]] = {
        "batch_size": Limit(1, 1 << 16), "val_size": Limit(1, 10**8), "crop_padding": Limit(0, 256),
        "eval_batch_size": Limit(1, 1 << 16), "mean": Limit(0.0, 1.0), "std": Limit(0.0, 1.0, open_lo=True),
        "image_size": Limit(1, 16384),
    }

    def __post_init__(self) -> None:
        check_fields(self, "vision")
        if not self.data:
            raise ConfigError(f"vision data must be {BUILTIN} or a folder of images (DIR/train/<class>/...)")
        if self.test_split not in ("val", "test"):
            raise ConfigError(f"test_split must be val or test, got {self.test_split!r}")
        if self.channels is not None and self.channels not in CHANNELS:
            raise ConfigError(f"channels must be 1 (greyscale) or 3 (RGB), got {self.channels!r}")
        if self.bad_images not in BAD_IMAGES:
            raise ConfigError(f"bad_images must be {' or '.join(BAD_IMAGES)}, got {self.bad_images!r}")
        if self.data == BUILTIN:
            wrong = [f"{k}={getattr(self, k)}" for k, v in BUILTIN_FORMAT.items() if getattr(self, k) not in (None, v)]
            wrong += ["bad_images=skip"] if self.bad_images != "error" else []
            if wrong:
                raise ConfigError(f"{', '.join(wrong)} does not apply to {BUILTIN} (28x28 greyscale, every "
                                  "image readable); these settings are for data=DIR, a folder of your images")


class VisionTask:
    input_files: tuple[str, ...] = ()  # images are images: nothing to agree on

    def __init__(self, cfg: VisionConfig, splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 classes: tuple[str, ...] | None = None, tree: ImageTree | None = None,
                 patch_size: int | None = None) -> None:
        """``splits`` supplies in-memory (uint8 images (N, H, W) or (N, C, H, W), labels)
        per split instead of the data; ``classes`` are a checkpoint's; ``patch_size`` is the
        one the model would use, which :meth:`model_overrides` replaces when it does not
        divide the image size. Use :meth:`prepare` for a training run."""
        self._arrays = dict(splits or {})
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._tree = tree
        self.classes = tuple(classes) if classes is not None else (tree.classes if tree is not None else CLASSES)
        self.patch_size = patch_size
        self.skipped: dict[str, list[str]] = {}  # split -> one message per file left out (bad_images=skip)
        self.cfg = cfg
        if cfg.mean is None or cfg.std is None:
            mean, std = pixel_stats(self.split("train")[0])
            self.cfg = replace(cfg, mean=mean, std=std)

    @classmethod
    def prepare(cls, cfg: VisionConfig, splits: dict[str, Any] | None = None, default_size: int = 28,
                patch_size: int | None = None) -> "VisionTask":
        """The task of a new run: classes, image size and channels from the data, and a
        folder's layout (and its ``test/`` when it is the test split) checked before any
        decoding. ``default_size`` is the image size of images that are not all one square."""
        if splits is not None:
            shape = np.shape(splits["train"][0])
            fmt = {"image_size": int(shape[-1]), "channels": int(shape[1]) if len(shape) == 4 else 1}
            return cls(replace(cfg, **fmt), splits, patch_size=patch_size)
        if cfg.data == BUILTIN:
            return cls(replace(cfg, **BUILTIN_FORMAT), patch_size=patch_size)
        tree = scan_tree(data_path(cfg.data), cfg.val_size)
        if cfg.test_split == "test" and "test" not in tree.files:
            raise DataError(f"{tree.root / 'test'} does not exist: put the test images there (one folder per "
                            "class), or set test_split=val to report the validation accuracy")
        size, channels = infer_format(tree.files["train"], cfg.image_size, cfg.channels, default_size,
                                      cfg.bad_images)
        cfg = replace(cfg, data=str(tree.root), image_size=size, channels=channels)
        return cls(cfg, tree=tree, patch_size=patch_size)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size or BUILTIN_FORMAT["image_size"]  # unset in files older than the field

    @property
    def in_channels(self) -> int:
        return self.cfg.channels or BUILTIN_FORMAT["channels"]

    @property
    def tree(self) -> ImageTree:
        """The folder's listing (read on first use: ``classify`` needs no data at all)."""
        if self._tree is None:
            tree = scan_tree(self.cfg.data, self.cfg.val_size)
            if tree.classes != self.classes:
                raise DataError(f"{tree.root / 'train'} has classes {list(tree.classes)[:10]} but the run was "
                                f"trained on {list(self.classes)[:10]}")
            self._tree = tree
        return self._tree

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, C, H, W) and int64 labels of a split, loaded once."""
        if name not in self._tensors:
            images, labels = self._arrays[name] if name in self._arrays else self.read(name)
            x = torch.from_numpy(np.ascontiguousarray(images))
            self._tensors[name] = (x.unsqueeze(1) if x.dim() == 3 else x,
                                   torch.from_numpy(np.asarray(labels, dtype=np.int64)))
        return self._tensors[name]

    def read(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A split from the data (Fashion-MNIST's files or the folder's images)."""
        if self.cfg.data == BUILTIN:
            return load_fashion_mnist(name, self.cfg.val_size)
        if name not in SPLIT_FOLDERS:
            raise DataError(f"unknown split '{name}'; choose from {', '.join(SPLIT_FOLDERS)}")
        tree = self.tree
        held = name == "val" and tree.held_out
        where = f"{tree.root / 'train'} (its held-out validation part)" if held else tree.root / name
        decoded = read_split(tree.split_files(name), self.image_size, self.in_channels, self.cfg.bad_images, where)
        self.skipped[name] = decoded.skipped
        return decoded.images, decoded.labels

    def data_summary(self) -> dict[str, Any]:
        """What the run read, for ``results.json``: classes, format, images per split, skips."""
        messages = [m for split in self.skipped.values() for m in split]
        return {"data": self.cfg.data, "classes": len(self.classes), "image_size": self.image_size,
                "channels": self.in_channels, "images": {k: int(len(v[1])) for k, v in self._tensors.items()},
                "skipped": {k: len(v) for k, v in self.skipped.items()}, "skipped_files": messages[:20]}

    def analysis_batches(self, split: str | None, batch_size: int):
        """Normalised image batches of a split (every position is real: no masks)."""
        images, _ = self.split(split or self.cfg.test_split)
        for i in range(0, len(images), batch_size):
            yield (self.prepare_images(images[i : i + batch_size]),), {"encoder": None}

    def model_overrides(self) -> dict[str, Any]:
        out = {"image_size": self.image_size, "in_channels": self.in_channels, "num_classes": len(self.classes)}
        if self.patch_size is not None and self.image_size % self.patch_size:
            out["patch_size"] = dividing_patch(self.image_size, self.patch_size)
        return out

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


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation (unbiased) of uint8 pixels scaled to [0, 1]."""
    if images.numel() <= EXACT_STATS_VALUES:
        x = images.float() / 255.0
        return float(x.mean()), float(x.std())
    total = squares = 0.0
    for i in range(0, len(images), STATS_CHUNK):
        x = images[i : i + STATS_CHUNK].double() / 255.0
        total += float(x.sum())
        squares += float((x * x).sum())
    n = images.numel()
    mean = total / n
    return mean, max((squares - n * mean * mean) / (n - 1), 0.0) ** 0.5


def dividing_patch(image_size: int, patch_size: int) -> int:
    """The largest patch side that divides ``image_size`` and is at most ``patch_size``."""
    return max(d for d in range(1, min(patch_size, image_size) + 1) if image_size % d == 0)


def data_path(source: str) -> str:
    """A folder as an absolute path (the built-in name unchanged): a relative path would
    name another folder when the run is evaluated from another directory."""
    return source if source == BUILTIN else os.path.abspath(os.path.expanduser(source))


def absolute_data(settings: dict[str, Any]) -> dict[str, Any]:
    """Task settings with ``data`` as :func:`data_path` stores it."""
    return {**settings, "data": data_path(settings["data"])} if "data" in settings else settings


def load_vision_config(folder: Path) -> VisionConfig:
    return read_task_config(folder, VisionConfig, "vision")


def saved_classes(folder: str | Path) -> tuple[str, ...]:
    """The class names a checkpoint was trained on (Fashion-MNIST's for a file without them)."""
    path = Path(folder) / TASK_FILE
    data = read_json(path, "task file", CheckpointError, TASK_FILE_LIMIT)
    classes = data.get("classes") if isinstance(data, dict) else None
    if classes is None:
        return CLASSES
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)
            and len(set(classes)) == len(classes)):
        raise CheckpointError(f"{path}: classes must be a non-empty list of distinct class names")
    return tuple(classes)
