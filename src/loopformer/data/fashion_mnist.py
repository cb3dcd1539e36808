"""Fashion-MNIST: 28x28 greyscale clothing images in 10 classes.

``train`` and ``val`` partition the 60,000 official training images (``val_size`` held
out by a fixed permutation, so the split is the same on every machine and for every
seed); ``test`` is the official 10,000-image test set, never used for model selection.
"""

from __future__ import annotations

import numpy as np

from .download import DataError, fetch
from .idx import read_idx

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SPLITS = ("train", "val", "test")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SPLIT_SEED = 20170825  # fixed: the validation images must not depend on the training seed


def _load_file_pair(which: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = _FILES[which]
    images = read_idx(fetch("fashion-mnist", images_name))
    labels = read_idx(fetch("fashion-mnist", labels_name))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(
            f"Fashion-MNIST {which}: images {images.shape} and labels {labels.shape} do not pair up"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"Fashion-MNIST {which}: labels outside 0..{len(CLASSES) - 1}")
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


def load_fashion_mnist(split: str, val_size: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 28, 28), labels int64 (N,))`` of ``split``."""
    if split not in SPLITS:
        raise DataError(f"unknown Fashion-MNIST split '{split}'; choose from {', '.join(SPLITS)}")
    if split == "test":
        return _load_file_pair("test")
    images, labels = _load_file_pair("train")
    if not 0 < val_size < len(labels):
        raise DataError(f"val_size must be between 1 and {len(labels) - 1}, got {val_size}")
    order = np.random.RandomState(_SPLIT_SEED).permutation(len(labels))
    idx = np.sort(order[:val_size] if split == "val" else order[val_size:])
    return images[idx], labels[idx]
