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
    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Tensor, Tensor]] = {}
        self.length = 0
        self.padding_mask: Tensor | None = None  # (B, length), True = padding

    def append(self, key: Hashable, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add new keys/values (B, H, T, hd) to ``key``'s entry and return the whole entry."""
        old = self._entries.get(key)
        if old is not None:
            k = torch.cat([old[0], k], dim=2)
            v = torch.cat([old[1], v], dim=2)
        self._entries[key] = (k, v)
        return k, v

    def get(self, key: Hashable) -> tuple[Tensor, Tensor] | None:
        return self._entries.get(key)

    def put(self, key: Hashable, k: Tensor, v: Tensor) -> None:
        """Store a fixed entry (cross-attention keys/values of the encoder output)."""
        self._entries[key] = (k, v)

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

    def reorder(self, index: Tensor) -> None:
        """Select batch rows (beam search): every entry and the padding mask follow ``index``."""
        self._entries = {k: (a.index_select(0, index), b.index_select(0, index)) for k, (a, b) in self._entries.items()}
        if self.padding_mask is not None:
            self.padding_mask = self.padding_mask.index_select(0, index)

    def keys(self):
        return self._entries.keys()

    def __len__(self) -> int:
        return len(self._entries)
