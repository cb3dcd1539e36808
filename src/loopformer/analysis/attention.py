"""Attention distances: mean attention distance (MAD) for ViTs, token distance for text.

MAD (RingFormer spec, section 7): per head and level, the attention weights among patches
(the cls row and column dropped, weights not renormalised) times the pixel distance
between patch centres on the grid, summed over keys and averaged over queries and images.

For text, the distance between query ``i`` and key ``j`` is ``|i - j|`` tokens, averaged
over non-padding queries; a SpiralFormer latent of iteration ``t`` stands for ``g_t``
tokens, so its latent distances are multiplied by ``g_t`` to stay in token units.
"""

from __future__ import annotations

import torch
from torch import Tensor


def patch_distances(grid: int, patch: int) -> Tensor:
    """(P, P) pixel distances between patch centres of a ``grid`` x ``grid`` patch grid."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([ys.flatten(), xs.flatten()], dim=1).double() * patch
    return torch.cdist(centres, centres)


def mean_attention_distance(weights: Tensor, grid: int, patch: int) -> Tensor:
    """(B, H, 1 + P, 1 + P) ViT attention with the cls token first -> per-head MAD (H,)."""
    w = weights[:, :, 1:, 1:].double()
    dist = patch_distances(grid, patch).to(w.device)
    per_query = (w * dist).sum(-1)  # (B, H, P)
    return per_query.mean(dim=(0, 2))


def token_attention_distance(weights: Tensor, query_mask: Tensor | None = None, unit: float = 1.0) -> Tensor:
    """(B, H, T, S) attention -> per-head mean distance (H,) in tokens (``unit`` per position).

    Queries are the last T of S positions; ``query_mask``
    (B, T) marks queries to average over (True = real token)."""
    b, h, t, s = weights.shape
    offset = s - t
    q = torch.arange(t, device=weights.device)[:, None] + offset
    k = torch.arange(s, device=weights.device)[None, :]
    dist = (q - k).abs().double() * unit
    per_query = (weights.double() * dist).sum(-1)  # (B, H, T)
    if query_mask is None:
        return per_query.mean(dim=(0, 2))
    m = query_mask[:, None, :].double()
    return (per_query * m).sum(dim=(0, 2)) / m.sum(dim=(0, 2)).clamp(min=1)
