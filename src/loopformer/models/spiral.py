"""SpiralFormer: a looped causal LM whose iterations run at different sequence resolutions.

Iteration ``t`` pools the token states into chunks of ``g_t`` tokens (chunk of token
``i``: ``(i + w_t) // g_t``, so chunk 0 may be partial), runs the shared core causally
over the chunk latents, spreads each latent back over its chunk's token slots and
shifts the result right by ``g_t - 1`` tokens. After the shift a token only receives
chunks that closed at or before it, so the model is exactly causal; a trailing chunk
that has not closed never delivers anything, and ``g_t = 1`` is an ordinary loop step.

Decoding keeps, per level, a latent KV cache (one entry per closed chunk), the token
states of the chunk still open, and the outputs of the latest closed chunks: the core of
a level runs only when the current token closes one of its chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..config import ModelConfig
from ..layers.block import SharedInputs, TransformerLayer
from ..layers.cache import KVCache
from ..layers.masks import AttnMask, build_mask
from ..layers.positions import RotaryPositions
from .build import layer_spec, level_adapter, mesh_slots
from .observers import Observable
from .state import build_state_update


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


@dataclass
class _LevelState:
    cache: KVCache = field(default_factory=KVCache)
    pending: list[Tensor] = field(default_factory=list)  # token states of the open chunk
    outputs: dict[int, Tensor] = field(default_factory=dict)  # chunk index -> (B, g, d) slots
    closed: int = 0


class SpiralCache:
    """Decoding state of a SpiralFormer: token KV cache for prelude and coda, and per level
    a latent KV cache, the open chunk and the latest closed chunks' outputs."""

    def __init__(self, n_levels: int) -> None:
        self.tokens = KVCache()
        self.levels = [_LevelState() for _ in range(n_levels)]

    @property
    def length(self) -> int:
        return self.tokens.length


class SpiralStack(Observable, nn.Module):
    """Observers see every layer application (core keys ``(t, j)`` carry latents of
    iteration ``t``) and ``(("level", t), tokens)`` after each iteration's state update."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        spec = layer_spec(cfg, cross=False, own_norms=True)
        core_spec = layer_spec(cfg, cross=False, own_norms=not cfg.has_level_norms)
        self.prelude = nn.ModuleList(TransformerLayer(spec) for _ in range(cfg.n_prelude))
        self.core = nn.ModuleList(TransformerLayer(core_spec) for _ in range(cfg.core_layers))
        self.coda = nn.ModuleList(TransformerLayer(spec) for _ in range(cfg.n_coda))
        self.levels = nn.ModuleList(SpiralLevel(cfg, g, w) for g, w in zip(cfg.schedule, cfg.offsets))
        self.n_loops = len(self.levels)
        # what tells the iterations apart (per-level norms, RingFormer's signals), as on a
        # full-resolution loop; None for the plain spiral
        self.adapter = level_adapter(cfg, self.n_loops, core_spec.n_sublayers)
        self.state = build_state_update(cfg.state_update, self.n_loops, cfg.d_model, mesh_slots(cfg))
        self.latent_rotary = RotaryPositions(cfg.max_len, cfg.rotary_dims) if cfg.positional == "rotary" else None
        self._init_observers()

    @property
    def depth(self) -> int:
        return len(self.prelude) + len(self.core) * self.n_loops + len(self.coda)

    # --- full sequence ---------------------------------------------------------------

    def forward(self, h: Tensor, shared: SharedInputs) -> Tensor:
        h = self._apply_once("prelude", h, shared)
        memo = self.state.begin(h, shared) if self.state is not None else None
        for t, level in enumerate(self.levels):
            e = self._level(t, level, h, shared)
            h = self.state.update(t, e, memo) if self.state is not None else e
            if self._observers:
                self._emit(("level", t), h)
        h = self._apply_once("coda", h, shared)
        return h

    def _core(self, t: int, z: Tensor, shared: SharedInputs) -> Tensor:
        recompute = self.cfg.activation_checkpointing and self.training and shared.cache is None
        k = len(self.core)
        for j, layer in enumerate(self.core):
            lp = self.adapter.params(t, j, k) if self.adapter is not None else None
            if recompute:
                z = checkpoint(layer, z, lp, shared, (t, j), use_reentrant=False)
            else:
                z = layer(z, lp, shared, (t, j))
            if self._observers:
                self._emit((t, j), z)
        return z

    def _level(self, t: int, level: SpiralLevel, h: Tensor, shared: SharedInputs) -> Tensor:
        b, length, d = h.shape
        if level.identity:
            return self._core(t, h, shared)
        left, right = level.layout(length)
        n = (left + length + right) // level.g
        chunks = F.pad(h, (0, 0, left, right)).reshape(b, n, level.g, d)
        slot = torch.arange(n * level.g, device=h.device)
        present = ((slot >= left) & (slot < left + length)).reshape(n, level.g)
        z = level.down(chunks, present)
        rope = None
        if self.latent_rotary is not None:
            pos = level.latent_positions(n, length, self.cfg.latent_positions, h.device)
            rope = (self.latent_rotary.cos[pos], self.latent_rotary.sin[pos])
        latent_shared = SharedInputs(self_mask=AttnMask(is_causal=True), rope=rope)
        u = level.up(self._core(t, z, latent_shared)).reshape(b, n * level.g, d)[:, left : left + length]
        s = min(level.shift, length)
        return torch.cat([u.new_zeros(b, s, d), u[:, : length - s]], dim=1)

    # --- one token at a time -------------------------------------------------------------

    def step(self, h: Tensor, shared: SharedInputs, cache: SpiralCache) -> Tensor:
        """Advance every sequence of the batch by one token (B, 1, d) at position ``cache.length``."""
        i = cache.length
        for j, layer in enumerate(self.prelude):
            h = layer(h, None, shared, ("prelude", j))
        memo = self.state.begin(h, shared) if self.state is not None else None
        for t, level in enumerate(self.levels):
            e = self._level_step(t, level, h, cache.levels[t], i)
            h = self.state.update(t, e, memo) if self.state is not None else e
        for j, layer in enumerate(self.coda):
            h = layer(h, None, shared, ("coda", j))
        return h

    def _level_step(self, t: int, level: SpiralLevel, h: Tensor, st: _LevelState, i: int) -> Tensor:
        b, _, d = h.shape
        if level.identity:
            mask = build_mask(1, st.closed + 1, None, True, h.device)
            out = self._core(t, h, self._latent_shared(level, st, mask, i, h.device))
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
            z = level.down(chunk, present)
            mask = build_mask(1, st.closed + 1, None, True, h.device)
            z = self._core(t, z, self._latent_shared(level, st, mask, i, h.device))
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

    def _latent_shared(self, level: SpiralLevel, st: _LevelState, mask: AttnMask, i: int, device) -> SharedInputs:
        rope = None
        if self.latent_rotary is not None:
            pos = st.closed if self.cfg.latent_positions == "index" else i
            rope = (self.latent_rotary.cos[pos : pos + 1], self.latent_rotary.sin[pos : pos + 1])
        return SharedInputs(self_mask=mask, rope=rope, cache=st.cache)
