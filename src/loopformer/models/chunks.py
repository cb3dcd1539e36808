"""One SpiralFormer iteration's change of resolution: causal chunk pooling before the
shared core and up-scaling after it (the core itself is shared and lives in the stack).

Iteration ``t`` groups tokens into chunks of ``g_t`` (token ``i`` falls in chunk
``(i + w_t) // g_t``, so chunk 0 may be partial), pools each chunk into one latent
(``spiral_pool``: mean or learned self-aggregation) and spreads each core output back
over its chunk's token slots (``spiral_upscale``: copy, uniform or learned allocation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..config import ModelConfig


class SpiralLevel(nn.Module):
    """Down- and up-scaling of one iteration (the core itself is shared)."""

    def __init__(self, cfg: ModelConfig, chunk: int, offset: int) -> None:
        super().__init__()
        self.g, self.w = chunk, offset
        self.pool = cfg.spiral_pool
        self.upscale = cfg.spiral_upscale
        self.shift = chunk - 1 if cfg.spiral_shift == "overlap" else chunk
        # g = 1 without shift is an ordinary loop step: no pooling or allocation weights at all,
        # so an all-ones schedule has exactly the full-resolution loop's parameters.
        # Zero init: self-aggregation starts as mean pooling, learned allocation as uniform.
        pooled = not self.identity
        # (no bias: a softmax over the chunk ignores it, so it could never learn anything)
        self.scorer = nn.Linear(cfg.d_model, 1, bias=False) if pooled and cfg.spiral_pool == "self" else None
        self.allocation = nn.Linear(cfg.d_model, chunk) if pooled and cfg.spiral_upscale == "learned" else None
        for lin in (self.scorer, self.allocation):
            if lin is not None:
                nn.init.zeros_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        self.gain = math.sqrt(chunk)

    @property
    def identity(self) -> bool:
        """g = 1 with no shift: pooling and up-scaling are exact identities, skip them."""
        return self.g == 1 and self.shift == 0

    def layout(self, length: int) -> tuple[int, int]:
        """(left pad, right pad) that align chunk boundaries for ``length`` tokens."""
        padded = -(-(length + self.w) // self.g) * self.g
        return self.w, padded - length - self.w

    def down(self, chunks: Tensor, present: Tensor) -> Tensor:
        """(B, n, g, d) token states with (n, g) presence -> (B, n, d) latents."""
        if self.pool == "mean":
            weights = present.to(chunks.dtype) / present.sum(-1, keepdim=True).clamp(min=1).to(chunks.dtype)
            return torch.einsum("ng,bngd->bnd", weights, chunks)
        scores = self.scorer(chunks).squeeze(-1).float().masked_fill(~present, float("-inf"))
        alpha = scores.softmax(-1).nan_to_num(0.0).to(chunks.dtype)  # an all-absent chunk gets zeros
        return torch.einsum("bng,bngd->bnd", alpha, chunks)

    def up(self, latents: Tensor) -> Tensor:
        """(B, n, d) core outputs -> (B, n, g, d) token slots."""
        b, n, d = latents.shape
        if self.upscale == "copy":
            return latents[:, :, None, :].expand(b, n, self.g, d)
        if self.upscale == "uniform":
            return (latents * (self.gain / self.g))[:, :, None, :].expand(b, n, self.g, d)
        beta = self.allocation(latents).float().softmax(-1).to(latents.dtype)  # (B, n, g)
        return self.gain * beta[..., None] * latents[:, :, None, :]

    def latent_positions(self, n: int, length: int, kind: str, device) -> Tensor:
        j = torch.arange(n, device=device)
        if kind == "index":
            return j
        return ((j + 1) * self.g - self.w - 1).clamp(max=length - 1)
