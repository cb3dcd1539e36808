"""What tells the iterations of a looped core apart.

A level adapter owns the per-level parameters and is consulted by the looped stack
before each iteration (``enter``) and for each layer application (``params``):

- :class:`PerLevelNorms` / RingFormer: own LayerNorms per level, optional level signals;
- :class:`UniversalTiming`: the fixed 2-D (position, level) sinusoid, nothing learned.
A plain looped model has no adapter at all.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..layers.block import LevelParams, SharedInputs
from ..layers.positions import universal_timing_table
from ..layers.signals import LevelSignals


class LevelAdapter(nn.Module):
    def enter(self, t: int, h: Tensor, shared: SharedInputs) -> Tensor:
        return h

    def params(self, t: int, j: int, core_layers: int) -> LevelParams | None:
        return None


class PerLevelNorms(LevelAdapter):
    """Per-level LayerNorms (one set per application of each core layer) and, for
    RingFormer, the level signals of the stack (and optionally of cross-attention)."""

    def __init__(
        self,
        n_levels: int,
        dim: int,
        n_sublayers: int,
        eps: float,
        signals: LevelSignals | None = None,
        cross_q: LevelSignals | None = None,
        cross_kv: LevelSignals | None = None,
        shared_norms: bool = False,
    ) -> None:
        super().__init__()
        # shared_norms (a RingFormer ablation): one set of LayerNorms serves every level
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.LayerNorm(dim, eps=eps) for _ in range(n_sublayers))
            for _ in range(1 if shared_norms else n_levels)
        )
        self.signals = signals
        self.cross_q = cross_q
        self.cross_kv = cross_kv

    def params(self, t: int, j: int, core_layers: int) -> LevelParams:
        i = t * core_layers + j
        return LevelParams(
            level=i, norms=list(self.norms[i if len(self.norms) > 1 else 0]), signals=self.signals,
            cross_q=self.cross_q, cross_kv=self.cross_kv
        )


class UniversalTiming(LevelAdapter):
    def __init__(self, max_len: int, n_loops: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("timing", universal_timing_table(max_len, n_loops, dim), persistent=False)

    def enter(self, t: int, h: Tensor, shared: SharedInputs) -> Tensor:
        start = shared.position_offset
        end = start + h.shape[1]
        if end > self.timing.shape[1]:
            raise ValueError(f"sequence of {end} positions exceeds max_len {self.timing.shape[1]}")
        return h + self.timing[t, start:end].to(h.dtype)
