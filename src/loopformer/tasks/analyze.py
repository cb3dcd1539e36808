"""Analyses of checkpoints: load through the task registry, take the inputs from the
checkpoint's own task, and hand model and batches to :mod:`loopformer.analysis`.

Inputs come from the task (teacher-forced test pairs for translation, test images for
vision, validation windows for language models), so two checkpoints of the same task see
exactly the same examples."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import torch

from ..analysis.compare import attention_distances_of, cka_of, paired_states
from ..analysis.probe import probe_pairs
from ..errors import ConfigError
from .registry import load_checkpoint


def batches(task, split: str | None, batch_size: int, max_batches: int | None) -> Iterator:
    """The task's analysis batches, at most ``max_batches`` of them."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    return islice(task.analysis_batches(split, batch_size), max_batches or None)


def _pair(path_a: str, path_b: str):
    model_a, task, kind = load_checkpoint(path_a)
    model_b, _, kind_b = load_checkpoint(path_b)
    if kind != kind_b:
        raise ConfigError(f"cannot compare a {kind} checkpoint with a {kind_b} one")
    for name in task.input_files:
        fa, fb = Path(path_a) / name, Path(path_b) / name
        if fa.is_file() and fb.is_file() and fa.read_bytes() != fb.read_bytes():
            raise ConfigError("the two checkpoints use different tokenizers; the comparison needs the same "
                              "inputs for both")
    return model_a, model_b, task


@torch.no_grad()
def compare_cka(path_a: str, path_b: str, split: str | None = None, batch_size: int = 64,
                max_batches: int | None = None) -> dict[str, Any]:
    """CKA between every layer application of A and of B, per stack (encoder / decoder)."""
    model_a, model_b, task = _pair(path_a, path_b)
    return cka_of(paired_states(model_a, model_b, batches(task, split, batch_size, max_batches)))


@torch.no_grad()
def probe_levels(path_a: str, path_b: str, split: str | None = None, batch_size: int = 64,
                 max_batches: int | None = None, l2: float = 1e-3) -> dict[str, Any]:
    """Per stack: held-out probe accuracy for each level i (A's i-th vs B's i-th application)."""
    model_a, model_b, task = _pair(path_a, path_b)
    return probe_pairs(paired_states(model_a, model_b, batches(task, split, batch_size, max_batches)), l2)


@torch.no_grad()
def attention_distances(path: str, split: str | None = None, batch_size: int = 64,
                        max_batches: int | None = None) -> dict[str, Any]:
    """Per stack, per layer application: mean attention distance per head (pixels for ViTs
    (MAD), tokens otherwise) and its mean over heads."""
    model, task, _ = load_checkpoint(path)
    return attention_distances_of(model, batches(task, split, batch_size, max_batches))


@torch.no_grad()
def signal_norms(path: str, split: str | None = None, batch_size: int = 64,
                 max_batches: int | None = None) -> list[dict[str, Any]]:
    """RingFormer checkpoints: per signal module, level and kind, E||signal|| / E||base||
    on a data split (see :mod:`loopformer.analysis.signal_norms`)."""
    from ..analysis.signal_norms import record_signal_norms

    model, task, _ = load_checkpoint(path)
    if not model.config.has_signals:
        raise ConfigError(f"{path} is a {model.config.arch} model; level signals exist in ringformer models only")
    if model.config.signal_mode != "dynamic":
        raise ConfigError(f"{path} has static level signals; their size does not depend on the input")
    with record_signal_norms(model) as norms:
        for inputs, _ in batches(task, split, batch_size, max_batches):
            model(*inputs)
    return norms.table()
