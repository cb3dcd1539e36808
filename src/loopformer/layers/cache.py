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

    def reorder(self, index: Tensor, fixed: bool | Tensor = True) -> None:
        """Select batch rows: every self-attention entry and the padding mask follow ``index``.

        ``fixed`` says what the cross-attention entries do: follow ``index`` too (True),
        stay as they are (False: beam search moves rows only among the beams of one
        sentence, which share its encoder output), or follow an index of their own (beam
        search keeps one encoder row per sentence; dropping finished sentences selects
        those rows while ``index`` selects their beams).

        When ``index`` keeps the row count and every row it moves comes from a row that
        stays put (what beam search's slot assignment arranges), only the moved rows are
        copied, in place: a step where most beams continue themselves copies little."""
        moves = _moves(index, self._rows())
        for entry in self._entries.values():
            for i in (0, 1):
                entry[i] = _reorder_buffer(entry[i], entry[2], index, moves)
        if fixed is True or isinstance(fixed, Tensor):
            pick = index if fixed is True else fixed
            self._fixed = {k: (a.index_select(0, pick), b.index_select(0, pick)) for k, (a, b) in self._fixed.items()}
        if self.padding_mask is not None:
            self.padding_mask = self.padding_mask.index_select(0, index)

    def _rows(self) -> int | None:
        entry = next(iter(self._entries.values()), None)
        return None if entry is None else entry[0].shape[0]

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


def _moves(index: Tensor, rows: int | None) -> tuple[Tensor, Tensor] | None:
    """(targets, sources) when ``index`` can be applied in place by copying only the
    rows it moves: same row count, and no moved row is the source of another. CPU only:
    on a GPU the full gather is cheap and the checks would wait for the device."""
    if rows is None or index.numel() != rows or index.device.type != "cpu":
        return None
    moved = index.ne(torch.arange(rows, device=index.device))
    targets = moved.nonzero()[:, 0]
    sources = index.index_select(0, targets)
    if bool(moved.index_select(0, sources).any()):
        return None
    return targets, sources


def _reorder_buffer(buf: Tensor, filled: int, index: Tensor, moves: tuple[Tensor, Tensor] | None) -> Tensor:
    if moves is not None:
        targets, sources = moves
        if targets.numel():
            part = buf[:, :, :filled]
            part.index_copy_(0, targets, part.index_select(0, sources))
        return buf
    return buf.index_select(0, index) if filled == buf.shape[2] else _select(buf, filled, index)


def _select(buf: Tensor, filled: int, index: Tensor) -> Tensor:
    """Rows ``index`` of a buffer, keeping its spare room (only the filled part is copied)."""
    new = buf.new_empty(len(index), *buf.shape[1:])
    torch.index_select(buf[:, :, :filled], 0, index, out=new[:, :, :filled])
    return new
