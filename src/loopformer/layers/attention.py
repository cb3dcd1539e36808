"""Multi-head attention on ``scaled_dot_product_attention`` with an incremental cache.

The fused projections are split into Q/K/V by a callable the caller may pass (a layer's
hooks: what a level adds to Q/K/V enters there), so the shared projections stay untouched
and the same module serves every model in the library.
"""

from __future__ import annotations

from typing import Callable, Hashable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cache import KVCache
from .masks import AttnMask
from .positions import apply_rotary


def _heads(x: Tensor, n_heads: int) -> Tensor:
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    b, h, t, hd = x.shape
    return x.transpose(1, 2).reshape(b, t, h * hd)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, bias: bool, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attn_dropout = attn_dropout
        self.qkv_proj = nn.Linear(dim, 3 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: Tensor,
        mask: AttnMask,
        split: Callable[[Tensor], tuple[Tensor, ...]] | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: KVCache | None = None,
        cache_key: Hashable | None = None,
        probe: Callable[[Tensor], None] | None = None,
    ) -> Tensor:
        qkv = self.qkv_proj(x)
        parts = split(qkv) if split is not None else qkv.chunk(3, dim=-1)
        q, k, v = (_heads(t, self.n_heads) for t in parts)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.append(cache_key, k, v)
        out = attend(q, k, v, mask, self.attn_dropout if self.training else 0.0, probe)
        return self.out_proj(_merge(out))

    def append_kv(self, k: Tensor, v: Tensor, rope: tuple[Tensor, Tensor] | None, cache: KVCache,
                  cache_key: Hashable) -> None:
        """Append keys and values (B, T, d), as this module's projection splits them, to
        the cache without attending (what a position that exited a loop leaves deeper)."""
        k, v = _heads(k, self.n_heads), _heads(v, self.n_heads)
        if rope is not None:
            k = apply_rotary(k, *rope)
        cache.append(cache_key, k, v)


class CrossAttention(nn.Module):
    """Queries from the decoder, keys/values from the encoder output (computed once per
    level and cached during decoding)."""

    def __init__(self, dim: int, n_heads: int, bias: bool, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attn_dropout = attn_dropout
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: AttnMask,
        q_split: Callable[[Tensor], tuple[Tensor, ...]] | None = None,
        kv_split: Callable[[Tensor], tuple[Tensor, ...]] | None = None,
        cache: KVCache | None = None,
        cache_key: Hashable | None = None,
        probe: Callable[[Tensor], None] | None = None,
    ) -> Tensor:
        q = self.q_proj(x)
        if q_split is not None:
            (q,) = q_split(q)
        q = _heads(q, self.n_heads)
        cached = cache.get(cache_key) if cache is not None else None
        if cached is None:
            kv = self.kv_proj(memory)
            parts = kv_split(kv) if kv_split is not None else kv.chunk(2, dim=-1)
            k, v = (_heads(t, self.n_heads) for t in parts)
            if cache is not None:
                cache.put(cache_key, k, v)
        else:
            k, v = cached
        dropout = self.attn_dropout if self.training else 0.0
        groups = q.shape[0] // k.shape[0]
        if groups > 1:
            out = _attend_grouped(q, k, v, mask, dropout, probe, groups)
        else:
            out = attend(q, k, v, mask, dropout, probe)
        return self.out_proj(_merge(out))


def _attend_grouped(q: Tensor, k: Tensor, v: Tensor, mask: AttnMask, dropout: float,
                    probe: Callable[[Tensor], None] | None, groups: int) -> Tensor:
    """Cross-attention where each memory row serves ``groups`` consecutive query rows
    (beam search keeps one encoder output per sentence for all its beams).

    The group's queries attend together as one longer query block: one matmul per
    sentence against its keys instead of one per beam against copies of them, which
    are neither made nor read ``groups`` times (on the CPU a single-query attention
    costs nearly as much as a block of a few queries). ``mask`` is per memory row."""
    b, h, t, d = q.shape
    if b != groups * k.shape[0]:
        raise ValueError(f"{b} query rows do not split evenly over {k.shape[0]} memory rows")
    if mask.mask is not None and mask.mask.shape[0] not in (1, k.shape[0]):
        raise ValueError("a cross-attention mask shared across query groups needs one row per memory row")
    q = q.view(k.shape[0], groups, h, t, d).transpose(1, 2).reshape(k.shape[0], h, groups * t, d)
    out = attend(q, k, v, mask, dropout, probe and _ungroup_probe(probe, groups, t))
    return out.view(k.shape[0], h, groups, t, d).transpose(1, 2).reshape(b, h, t, d)


def _ungroup_probe(probe: Callable[[Tensor], None], groups: int, t: int) -> Callable[[Tensor], None]:
    """Hand a probe the (B, H, T, S) weights it would have seen without grouping."""

    def ungrouped(weights: Tensor) -> None:
        m, h, _, s = weights.shape
        probe(weights.view(m, h, groups, t, s).transpose(1, 2).reshape(m * groups, h, t, s))

    return ungrouped


# On CPU in bf16/fp16, SDPA's flash kernel is several times slower than two batched
# matmuls for the short key lengths of translation and ViT (fwd+bwd, 32 keys: ~4x);
# from a few hundred keys on it wins and needs no (T, S) weights. Measured, torch 2.13.
EXPLICIT_MAX_KEYS = 128


def attend(
    q: Tensor, k: Tensor, v: Tensor, mask: AttnMask, dropout: float,
    probe: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """SDPA in the common case; explicit weights when a probe wants them, or for short
    reduced-precision attention on the CPU (faster there; softmax kept in fp32)."""
    explicit = probe is not None or (
        q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and k.shape[-2] <= EXPLICIT_MAX_KEYS
    )
    if not explicit:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask.mask, dropout_p=dropout, is_causal=mask.is_causal
        )
    weights = attention_weights(q, k, mask)
    if probe is not None:
        probe(weights)
    if dropout:
        weights = F.dropout(weights, dropout)
    return weights.to(v.dtype) @ v


def attention_weights(q: Tensor, k: Tensor, mask: AttnMask) -> Tensor:
    """Softmax attention weights (B, H, T, S) in fp32 (at least), masked as SDPA would be."""
    if k.is_contiguous():
        scores = q @ k.transpose(-2, -1)
    else:
        # a decoding cache hands out views of longer buffers: as the right operand such a
        # view is copied by every call (bf16 on the CPU: 2.5x the product's time), as the
        # left one it is read in place; the products are the same
        scores = (k @ q.transpose(-2, -1)).transpose(-2, -1)
    scores = scores.float() * q.shape[-1] ** -0.5
    if mask.is_causal:
        t, s = scores.shape[-2:]
        allowed = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
        scores = scores.masked_fill(~allowed, float("-inf"))
    elif mask.mask is not None:
        scores = scores.masked_fill(~mask.mask, float("-inf"))
    return scores.softmax(dim=-1)
