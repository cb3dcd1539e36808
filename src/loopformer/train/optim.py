"""The optimizer every training path uses (trainer, `loopformer bench`, result-page runs): AdamW with weight decay
on matrices only, in the fastest implementation the parameters allow."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig


def decay_groups(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """(decayed, not decayed) named parameters: matrices (embeddings included) decay;
    vectors (biases, norms) and the low-rank signal factors (``*_up``/``*_down``, small and
    level-specific) do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and not name.endswith(("_up", "_down")) else no_decay).append((name, p))
    return decay, no_decay


def build_optimizer(model: nn.Module, cfg: TrainConfig, sharded: bool = False) -> tuple[torch.optim.AdamW, list[str]]:
    """AdamW over ``model`` and the parameter names in the optimizer's index order.

    The fused kernel (one pass over each parameter instead of about ten elementwise
    passes) is used on CPU and CUDA; it computes the same update up to rounding. Sharded
    (FSDP) parameters keep the multi-tensor implementation."""
    decay, no_decay = decay_groups(model)
    params = [p for _, p in decay + no_decay]
    devices = {p.device.type for p in params}
    fused = not sharded and bool(params) and devices <= {"cpu", "cuda"}
    opt = torch.optim.AdamW(
        [{"params": [p for _, p in decay], "weight_decay": cfg.weight_decay},
         {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused or None,
    )
    return opt, [n for n, _ in decay + no_decay]
