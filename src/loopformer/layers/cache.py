"""Key/value cache for incremental decoding.

A looped model applies the same layer at several levels, so a cache keyed by layer
alone would be overwritten on the next loop: entries are keyed by ``(level, layer)``
(plus the attention kind). The cache also remembers how many positions it holds and
the key-padding mask of those positions, so callers only pass what is new.
"""

from __future__ import annotations

from typing import Hashable

import torch
from torch import Tensor


class KVCache:
    """Self-attention keys/values grow in place: each entry is a buffer with room to
    spare (doubling when full), so a decoding step writes its new position instead of
    copying the whole history (``torch.cat`` per step makes decoding quadratic in the
    length). Entries are handed out as views of the filled part."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, list] = {}  # key -> [k buffer, v buffer, filled]
        self._fixed: dict[Hashable, tuple[Tensor, Tensor]] = {}  # cross-attention memory
        self.length = 0
        self.padding_mask: Tensor | None = None  # (B, length), True = padding

    def append(self, key: Hashable, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add new keys/values (B, H, T, hd) to ``key``'s entry and return the whole entry."""
        entry = self._entries.get(key)
        t = k.shape[2]
        if entry is None:
            entry = self._entries[key] = [_buffer(k, max(t, 16)), _buffer(v, max(t, 16)), 0]
        kb, vb, n = entry
        if n + t > kb.shape[2] or kb.dtype != k.dtype:
            room = max(2 * kb.shape[2], n + t)
            kb, vb = _grow(kb, n, room, k.dtype), _grow(vb, n, room, v.dtype)
            entry[0], entry[1] = kb, vb
        kb[:, :, n : n + t] = k
        vb[:, :, n : n + t] = v
        entry[2] = n + t
        return kb[:, :, : n + t], vb[:, :, : n + t]

    def get(self, key: Hashable) -> tuple[Tensor, Tensor] | None:
        if key in self._fixed:
            return self._fixed[key]
        entry = self._entries.get(key)
        return None if entry is None else (entry[0][:, :, : entry[2]], entry[1][:, :, : entry[2]])

    def put(self, key: Hashable, k: Tensor, v: Tensor) -> None:
        """Store a fixed entry (cross-attention keys/values of the encoder output).

        Stored contiguous: the (B, T, H, hd) -> (B, H, T, hd) views of a projection can't
        be batched by the attention matmuls without a copy, which would then be paid at
        every decoding step instead of once."""
        self._fixed[key] = (k.contiguous(), v.contiguous())

    def extend_padding(self, new_mask: Tensor | None, batch: int, steps: int, device) -> Tensor | None:
        """Record the padding of ``steps`` new positions; returns the mask over all positions."""
        if new_mask is None and self.padding_mask is None:
            return None
        if new_mask is None:
            new_mask = torch.zeros(batch, steps, dtype=torch.bool, device=device)
        if self.padding_mask is None:
            past = torch.zeros(batch, self.length, dtype=torch.bool, device=device)
        else:
            past = self.padding_mask
        self.padding_mask = torch.cat([past, new_mask], dim=1)
        return self.padding_mask

    def advance(self, steps: int) -> None:
        self.length += steps

    def reorder(self, index: Tensor, fixed: bool = True) -> None:
        """Select batch rows: every entry and the padding mask follow ``index``.

        ``fixed=False`` leaves the cross-attention entries as they are: beam search only
        moves rows among the beams of one sentence, which share one encoder output, so
        those rows are equal and copying them (as long as the source, at every step) is
        pure waste."""
        for entry in self._entries.values():
            n = entry[2]
            entry[0] = entry[0].index_select(0, index) if n == entry[0].shape[2] else _select(entry[0], n, index)
            entry[1] = entry[1].index_select(0, index) if n == entry[1].shape[2] else _select(entry[1], n, index)
        if fixed:
            self._fixed = {k: (a.index_select(0, index), b.index_select(0, index))
                           for k, (a, b) in self._fixed.items()}
        if self.padding_mask is not None:
            self.padding_mask = self.padding_mask.index_select(0, index)

    def keys(self):
        return [*self._entries.keys(), *self._fixed.keys()]

    def __len__(self) -> int:
        return len(self._entries) + len(self._fixed)


def _buffer(like: Tensor, room: int) -> Tensor:
    b, h, _, d = like.shape
    return like.new_empty(b, h, room, d)


def _grow(buf: Tensor, filled: int, room: int, dtype: torch.dtype) -> Tensor:
    b, h, _, d = buf.shape
    new = buf.new_empty(b, h, room, d, dtype=dtype)
    new[:, :, :filled] = buf[:, :, :filled]
    return new


def _select(buf: Tensor, filled: int, index: Tensor) -> Tensor:
    """Rows ``index`` of a buffer, keeping its spare room (only the filled part is copied)."""
    new = buf.new_empty(len(index), *buf.shape[1:])
    torch.index_select(buf[:, :, :filled], 0, index, out=new[:, :, :filled])
    return new
