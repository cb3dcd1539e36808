"""Position information: fixed sinusoid, learned table, rotary, and the Universal
Transformer's 2-D (position, level) sinusoid."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoid_table(n_positions: int, dim: int) -> Tensor:
    """The Transformer sinusoid: sin on even dims, cos on odd dims, positions from 0."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(n_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv)[:, : dim // 2]
    return table.float()


class SinusoidalPositions(nn.Module):
    """Fixed table added to the embeddings; a buffer, so it is not a parameter and is
    not saved (it is rebuilt from the config)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoid_table(max_len, dim), persistent=False)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        if offset + length > self.max_len:
            raise ValueError(f"sequence of {offset + length} positions exceeds max_len {self.max_len}")
        return self.table[offset : offset + length]


class LearnedPositions(nn.Module):
    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        if offset + length > self.max_len:
            raise ValueError(f"sequence of {offset + length} positions exceeds max_len {self.max_len}")
        return self.weight[offset : offset + length]


class RotaryPositions(nn.Module):
    """cos/sin tables for rotary embeddings on the first ``rotary_dims`` of each head."""

    def __init__(self, max_len: int, rotary_dims: int, base: float = 10000.0) -> None:
        super().__init__()
        self.max_len = max_len
        inv = 1.0 / (base ** (torch.arange(0, rotary_dims, 2, dtype=torch.float64) / rotary_dims))
        angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inv[None]
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, length: int, offset: int = 0) -> tuple[Tensor, Tensor]:
        if offset + length > self.max_len:
            raise ValueError(f"sequence of {offset + length} positions exceeds max_len {self.max_len}")
        return self.cos[offset : offset + length], self.sin[offset : offset + length]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, hd) by position; dims beyond the table's width pass through.

    Pairs are (i, i + half) within the rotary part (GPT-NeoX layout)."""
    rot = cos.shape[-1] * 2
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    half = rot // 2
    x1, x2 = x_rot[..., :half], x_rot[..., half:]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    rotated = torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)
    if x_pass.shape[-1] == 0:
        return rotated
    return torch.cat([rotated, x_pass], dim=-1)


def universal_timing_table(max_len: int, n_levels: int, dim: int) -> Tensor:
    """The 2-D sinusoid of the Universal Transformer as the RingFormer authors ran it.

    Entry [j, i, k] is added before iteration j (0-based here) at position i. With
    1-based position p = i + 1, level t = j + 1 and dimension m = k + 1:
    even m: sin(p / 10000^(2m/d)) + sin(t / 10000^(2m/d)); odd m: the same with cos.
    """
    m = torch.arange(1, dim + 1, dtype=torch.float64)
    denom = torch.pow(10000.0, 2.0 * m / dim)
    pos = torch.arange(1, max_len + 1, dtype=torch.float64)[:, None] / denom
    lev = torch.arange(1, n_levels + 1, dtype=torch.float64)[:, None] / denom
    even = (m % 2 == 0)
    pos_part = torch.where(even, torch.sin(pos), torch.cos(pos))  # (L, d)
    lev_part = torch.where(even, torch.sin(lev), torch.cos(lev))  # (N, d)
    return (lev_part[:, None, :] + pos_part[None, :, :]).float()
