"""Attention masks: built once per forward by the model wrapper, shared by all layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class AttnMask:
    """What ``scaled_dot_product_attention`` needs: a boolean mask (True = may attend) or
    the fast ``is_causal`` flag, or neither."""

    mask: Tensor | None = None
    is_causal: bool = False


def build_mask(
    q_len: int,
    k_len: int,
    key_padding_mask: Tensor | None,
    causal: bool,
    device: torch.device,
) -> AttnMask:
    """Mask for ``q_len`` queries that are the last ``q_len`` of ``k_len`` positions.

    ``key_padding_mask`` is (B, k_len) with True at padding. In the causal case a query
    may always see its own position, so a left-padded row is never fully masked (which
    would make softmax produce NaN); such rows are padding and are ignored downstream.
    """
    if not causal:
        if key_padding_mask is None:
            return AttnMask()
        return AttnMask(mask=(~key_padding_mask)[:, None, None, :])
    if key_padding_mask is None:
        if q_len == k_len:
            return AttnMask(is_causal=True)
        if q_len == 1:
            return AttnMask()
    offset = k_len - q_len
    q_pos = torch.arange(q_len, device=device)[:, None] + offset
    k_pos = torch.arange(k_len, device=device)[None, :]
    allowed = k_pos <= q_pos  # (q, k)
    if key_padding_mask is None:
        return AttnMask(mask=allowed)
    allowed = allowed[None] & ~key_padding_mask[:, None, :]
    allowed = allowed | (k_pos == q_pos)[None]
    return AttnMask(mask=allowed[:, None])
