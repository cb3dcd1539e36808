"""SpiralFormer's loop schedule: iterations at different sequence resolutions.

Iteration ``t`` pools the token states into chunks of ``g_t`` tokens (``models/chunks.py``),
runs the shared core causally over the chunk latents, spreads each latent back over its
chunk's token slots and shifts the result right by ``g_t - 1`` tokens. After the shift a
token only receives chunks that closed at or before it, so the model is exactly causal; a
trailing chunk that has not closed never delivers anything, and ``g_t = 1`` is an
ordinary loop step. Any level adapter composes with it: the core's layers get the
adapter's hooks whatever resolution they run at.

Decoding keeps, per level, a latent KV cache (one entry per closed chunk), the token
states of the chunk still open, and the outputs of the latest closed chunks: the core of
a level runs only when the current token closes one of its chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.block import SharedInputs
from ..layers.cache import KVCache
from ..layers.masks import AttnMask, build_mask
from ..layers.positions import RotaryPositions
from .chunks import SpiralLevel
from .schedules import CoreFn, LoopSchedule


@dataclass
class LevelState:
    """Decoding state of one iteration of a spiral loop."""

    cache: KVCache = field(default_factory=KVCache)  # latent keys/values, one per closed chunk
    pending: list[Tensor] = field(default_factory=list)  # token states of the open chunk
    outputs: dict[int, Tensor] = field(default_factory=dict)  # chunk index -> (B, g, d) slots
    closed: int = 0


class SpiralCache(KVCache):
    """Decoding state of a spiral loop: the token KV cache itself (for prelude and coda)
    and, per level, a :class:`LevelState`."""

    def __init__(self, n_levels: int) -> None:
        super().__init__()
        self.levels = [LevelState() for _ in range(n_levels)]

    def extend_padding(self, new_mask: Tensor | None, batch: int, steps: int, device) -> None:
        if new_mask is not None and bool(new_mask.any()):
            raise ValueError("SpiralFormer decoding needs unpadded batches (chunks are counted from position 0)")
        return None

    def reorder(self, index: Tensor, fixed: bool = True) -> None:
        super().reorder(index, fixed)
        for st in self.levels:
            st.cache.reorder(index, fixed)
            st.pending = [p.index_select(0, index) for p in st.pending]
            st.outputs = {c: o.index_select(0, index) for c, o in st.outputs.items()}


class SpiralSchedule(LoopSchedule, nn.ModuleList):
    """The list of each iteration's :class:`SpiralLevel`. Saved as the stack's ``levels``
    (with the adapter as ``adapter``), the names SpiralFormer checkpoints have always used.
    Core keys ``(t, j)`` then carry latents, so observers also see ``("level", t)``."""

    state_names = ("levels", "adapter")
    reports_token_states = True

    def __init__(self, levels: list[SpiralLevel], latent_rotary: RotaryPositions | None = None,
                 latent_positions: str = "index") -> None:
        super().__init__(levels)
        self.position_kind = latent_positions  # latent rotary positions: chunk index or last token
        self.register_buffer("latent_cos", latent_rotary.cos if latent_rotary else None, persistent=False)
        self.register_buffer("latent_sin", latent_rotary.sin if latent_rotary else None, persistent=False)

    def new_cache(self, loops: int) -> SpiralCache:
        return SpiralCache(loops)

    def iterate(self, t: int, level: int, h: Tensor, shared: SharedInputs, core: CoreFn) -> Tensor:
        """Iteration ``t`` at the resolution (and with the parameters) of trained level ``level``."""
        lv = self[level]
        if shared.cache is not None:
            if not isinstance(shared.cache, SpiralCache) or t >= len(shared.cache.levels):
                raise TypeError("a spiral loop decodes with the cache its model's new_cache() makes, for its loops")
            st, i = shared.cache.levels[t], shared.position_offset
            step = (t, level)
            if h.shape[1] == 1:
                return self._step(step, lv, h, st, i, core)
            return torch.cat([self._step(step, lv, h[:, k : k + 1], st, i + k, core) for k in range(h.shape[1])], 1)
        if lv.identity:
            return core(t, level, h, shared)
        return self._pooled((t, level), lv, h, core)

    # --- the full sequence -------------------------------------------------------------

    def _pooled(self, step: tuple[int, int], level: SpiralLevel, h: Tensor, core: CoreFn) -> Tensor:
        b, length, d = h.shape
        left, right = level.layout(length)
        n = (left + length + right) // level.g
        chunks = F.pad(h, (0, 0, left, right)).reshape(b, n, level.g, d)
        slot = torch.arange(n * level.g, device=h.device)
        present = ((slot >= left) & (slot < left + length)).reshape(n, level.g)
        z = level.down(chunks, present)
        rope = None
        if self.latent_cos is not None:
            pos = level.latent_positions(n, length, self.position_kind, h.device)
            rope = (self.latent_cos[pos], self.latent_sin[pos])
        latent_shared = SharedInputs(self_mask=AttnMask(is_causal=True), rope=rope)
        u = level.up(core(*step, z, latent_shared)).reshape(b, n * level.g, d)[:, left : left + length]
        s = min(level.shift, length)
        return torch.cat([u.new_zeros(b, s, d), u[:, : length - s]], dim=1)

    # --- one token at a time -------------------------------------------------------------

    def _step(self, step: tuple[int, int], level: SpiralLevel, h: Tensor, st: LevelState, i: int,
              core: CoreFn) -> Tensor:
        """Token ``i`` (B, 1, d) through iteration ``step = (t, level)``: the core runs if
        it closes a chunk."""
        b, _, d = h.shape
        if level.identity:
            out = core(*step, h, self._latent_shared(st, i, h.device))
            st.cache.advance(1)
            st.closed += 1
            return out
        g, w = level.g, level.w
        st.pending.append(h[:, 0])
        c = (i + w) // g
        if (i + w) % g == g - 1:  # token i closes chunk c
            first_slot = g - len(st.pending)
            chunk = h.new_zeros(b, 1, g, d)
            chunk[:, 0, first_slot:] = torch.stack(st.pending, dim=1)
            present = torch.zeros(1, g, dtype=torch.bool, device=h.device)
            present[0, first_slot:] = True
            z = core(*step, level.down(chunk, present), self._latent_shared(st, i, h.device))
            st.cache.advance(1)
            st.closed += 1
            st.outputs[c] = level.up(z)[:, 0]
            for old in [k for k in st.outputs if k < c - 1]:
                del st.outputs[old]
            st.pending = []
        p = i - level.shift
        if p < 0:
            return h.new_zeros(b, 1, d)
        cp, slot = divmod(p + w, g)
        return st.outputs[cp][:, slot : slot + 1]

    def _latent_shared(self, st: LevelState, i: int, device) -> SharedInputs:
        """Inputs of the core for the latent that closes now (one query on the level's cache)."""
        mask = build_mask(1, st.closed + 1, None, True, device)
        rope = None
        if self.latent_cos is not None:
            pos = st.closed if self.position_kind == "index" else i
            rope = (self.latent_cos[pos : pos + 1], self.latent_sin[pos : pos + 1])
        return SharedInputs(self_mask=mask, rope=rope, cache=st.cache)
