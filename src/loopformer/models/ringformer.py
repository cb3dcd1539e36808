"""RingFormer's level adapter: per-level LayerNorms plus input-dependent level signals.

Every decision about where a signal enters lives here, not in the shared layer: which
input a signal is computed from (``signal_input``: the layer's raw input or the
normalised one), where the FFN signal goes (``ffn_signal_position``: before or after the
pre-FFN LayerNorm), whether Q/K/V signals enter before the projection (the signals'
``placement``) and whether cross-attention gets signals of its own. The signal modules
themselves (fused low-rank projections) are :class:`~loopformer.layers.signals.LevelSignals`.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

from torch import Tensor, nn

from ..layers.hooks import LayerHooks, Split
from ..layers.signals import LevelSignals
from .levels import NormHooks, PerLevelNorms


class RingFormerLevels(PerLevelNorms):
    """Per-level norms and the stack's signals (``signals`` on self-attention and FFN,
    ``cross_q``/``cross_kv`` on cross-attention; each may be absent in an ablation)."""

    def __init__(
        self,
        n_loops: int,
        core_layers: int,
        dim: int,
        n_sublayers: int,
        eps: float,
        signals: LevelSignals | None = None,
        cross_q: LevelSignals | None = None,
        cross_kv: LevelSignals | None = None,
        shared_norms: bool = False,
        signal_input: str = "raw",
        ffn_signal_position: str = "after_norm",
    ) -> None:
        super().__init__(n_loops, core_layers, dim, n_sublayers, eps, shared_norms)
        self.signals = signals
        self.cross_q = cross_q
        self.cross_kv = cross_kv
        self.from_raw = signal_input == "raw"
        self.ffn_before_norm = ffn_signal_position == "before_norm"

    def hooks(self, t: int, j: int) -> LayerHooks:
        i = self.level(t, j)
        return RingFormerHooks(self.level_norms(i), i, self)


class RingFormerHooks(NormHooks):
    """One application's hooks: level ``level``'s norms and signals."""

    def __init__(self, sublayer_norms: Sequence[nn.Module], level: int, owner: RingFormerLevels) -> None:
        super().__init__(sublayer_norms)
        self.level = level
        self.signals = owner.signals
        self.cross_q = owner.cross_q
        self.cross_kv = owner.cross_kv
        self.from_raw = owner.from_raw
        self.ffn_before_norm = owner.ffn_before_norm

    def qkv_split(self, raw: Tensor, normed: Tensor, attention: nn.Module) -> Split | None:
        sig = self.signals
        if sig is None or not sig.has_qkv:
            return None
        before = attention.qkv_proj.weight if sig.placement == "before" else None  # W (x + s) = W x + W s
        return partial(sig.split_qkv, level=self.level, x=raw if self.from_raw else normed, weight=before)

    def ffn_input(self, h: Tensor, norm: nn.Module | None) -> Tensor:
        sig = self.signals
        if sig is None or not sig.has_ffn:
            return h if norm is None else norm(h)
        if norm is None:  # post-norm: the FFN reads the normalised sublayer output h
            return sig.add_ffn(h, self.level, h)
        if self.ffn_before_norm:
            src = h if self.from_raw else norm(h)
            return norm(sig.add_ffn(h, self.level, src))
        u = norm(h)
        return sig.add_ffn(u, self.level, h if self.from_raw else u)

    def cross_q_split(self, x: Tensor) -> Split | None:
        return partial(self.cross_q.split_qkv, level=self.level, x=x) if self.cross_q is not None else None

    def cross_kv_split(self, memory: Tensor) -> Split | None:
        return partial(self.cross_kv.split_qkv, level=self.level, x=memory) if self.cross_kv is not None else None
