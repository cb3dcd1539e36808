"""FSDP2 (``fully_shard``) for the trainer, under ``torchrun`` with ``fsdp=true``.

Units: the shared core of every looped stack is one unit (its layers grouped, so the
weights reused at every level are gathered once per forward and kept until backward),
each prelude/coda or vanilla layer is its own unit, and the root module holds the rest
(embeddings, level signals, per-level norms, SpiralFormer's pooling and allocation).

Checkpoints stay in the library's one format: all ranks gather the full model and
optimizer state (collectives), rank 0 writes them exactly as a single process would, and
resuming loads that full state into the shards. So a run can move between FSDP, DDP and a
single process, and between world sizes. Rank 0 evaluates on an unsharded copy refreshed
from the gathered state (a sharded model cannot run forward on one rank alone).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def shard_model(model: nn.Module) -> None:
    from torch.distributed.fsdp import fully_shard

    from ..layers.block import TransformerLayer

    grouped: set[int] = set()
    for module in model.modules():
        core = getattr(module, "core", None)
        if isinstance(core, nn.ModuleList) and len(core) and all(isinstance(m, TransformerLayer) for m in core):
            fully_shard(list(core), reshard_after_forward=False)  # reused at every level
            grouped.update(id(m) for m in core)
    for module in model.modules():
        if isinstance(module, TransformerLayer) and id(module) not in grouped:
            fully_shard(module)
    fully_shard(model)


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Collective: the unsharded state dict on rank 0 (CPU tensors), empty elsewhere."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(cpu_offload=True))


def full_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, names: list[str]) -> dict[str, Any]:
    """Collective: the unsharded optimizer state on rank 0, in ``opt.state_dict()`` form
    (keyed by parameter index in the order of ``names``), empty elsewhere."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, opt, options=_options(cpu_offload=True))
    if not sd:
        return {}
    index = {n: i for i, n in enumerate(names)}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in sd["param_groups"]]
    return {"state": {index[n]: entry for n, entry in sd["state"].items()}, "param_groups": groups}


def load_full_state(model: nn.Module, opt: torch.optim.Optimizer, model_sd: dict[str, torch.Tensor],
                    opt_sd: dict[str, Any], names: list[str]) -> None:
    """Every rank: load a full (unsharded) model and optimizer state into the shards."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, model_sd, options=_options())
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in opt_sd["param_groups"]]
    by_name = {"state": {names[int(i)]: entry for i, entry in opt_sd["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(model, opt, by_name, options=_options())
