"""Data-parallel training under ``torchrun`` (gloo on CPU, NCCL on GPUs).

Every rank builds the same global batch from the shared batch plan and keeps its own
rows (``rank::world``), so N ranks compute exactly the step one process would take on the
whole batch: the loss of each rank is weighted by its share of the global token count,
and DDP's gradient averaging undoes the factor ``world``. Only rank 0 logs, evaluates and
writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_from_env() -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (no-op otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return current()


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def shard(batch: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """This rank's rows of a global batch (every tensor has the batch first)."""
    if not info.enabled:
        return batch
    return {k: v[info.rank :: info.world] for k, v in batch.items()}


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum numbers over ranks (one small collective)."""
    if not info.enabled:
        return values
    on_gpu = dist.get_backend() == "nccl"  # NCCL reduces GPU tensors only
    t = torch.tensor(values, dtype=torch.float64, device="cuda" if on_gpu else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
