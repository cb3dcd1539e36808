"""Where training runs: one place that turns the ``device`` setting into a torch device.

Models are built on the CPU (so construction and seeding are the same everywhere) and the
trainer moves them; batches are made on the CPU by the task and moved per step. Evaluation
code asks the model where it lives (:func:`module_device`) instead of being told, so the
same task code serves CPU tests, a GPU run and a checkpoint loaded for inference.
"""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def check_device_name(name: str) -> None:
    """Validate the spelling only (whether the device exists is checked when it is used)."""
    if name in ("auto", "cpu", "cuda"):
        return
    if name.startswith("cuda:") and name[5:].isdigit():
        return
    raise ConfigError(f"device must be one of {DEVICE_CHOICES}; got {name!r}")


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` is the GPU when one is visible, else the CPU. Under ``torchrun`` every rank
    takes the GPU of its ``LOCAL_RANK``."""
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but no CUDA GPU is visible; use device=cpu")
        if name == "cuda":
            rank = local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", "0"))
            name = f"cuda:{rank}"
        index = int(name[5:])
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) visible")
    return torch.device(name)


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
