"""Level adapters: what tells the iterations of a looped core apart.

An adapter owns the per-level parameters of a stack and is asked twice by it: before
each iteration (``enter``, on the token states) and for each application of a core layer
(``hooks``, the :class:`~loopformer.layers.hooks.LayerHooks` that the layer consults for
its norms and for what to add to Q/K/V, the FFN input and cross-attention). The layer
itself knows nothing of levels, so any adapter composes with any loop schedule.

- :class:`LevelAdapter`: the identity (a plain looped model: nothing differs);
- :class:`PerLevelNorms`: own LayerNorms per level;
- :class:`UniversalTiming`: the fixed 2-D (position, level) sinusoid, nothing learned;
- RingFormer's per-level norms and level signals: ``models/ringformer.py``.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..layers.block import SharedInputs
from ..layers.hooks import NO_HOOKS, LayerHooks
from ..layers.positions import universal_timing_table


class LevelAdapter(nn.Module):
    """The identity adapter: every iteration, and every layer in it, runs plainly."""

    def enter(self, t: int, h: Tensor, shared: SharedInputs) -> Tensor:
        """The token states entering iteration ``t``."""
        return h

    def hooks(self, t: int, j: int) -> LayerHooks:
        """What core layer ``j`` asks at iteration ``t``."""
        return NO_HOOKS


class NormHooks(LayerHooks):
    """Hooks that give a layer the LayerNorms of its level instead of its own."""

    def __init__(self, sublayer_norms: Sequence[nn.Module]) -> None:
        self.sublayer_norms = sublayer_norms

    def norms(self, own: Sequence[nn.Module] | None) -> Sequence[nn.Module]:
        return self.sublayer_norms


class PerLevelNorms(LevelAdapter):
    """Own LayerNorms for every application of every core layer (level ``t * k + j``), so
    the shared layers are built without norms of their own."""

    def __init__(self, n_loops: int, core_layers: int, dim: int, n_sublayers: int, eps: float,
                 shared_norms: bool = False) -> None:
        super().__init__()
        self.core_layers = core_layers
        # shared_norms (a RingFormer ablation): one set of LayerNorms serves every level
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.LayerNorm(dim, eps=eps) for _ in range(n_sublayers))
            for _ in range(1 if shared_norms else n_loops * core_layers)
        )

    def level(self, t: int, j: int) -> int:
        """Index of the application of core layer ``j`` at iteration ``t``."""
        return t * self.core_layers + j

    def level_norms(self, i: int) -> list[nn.Module]:
        return list(self.norms[i if len(self.norms) > 1 else 0])

    def hooks(self, t: int, j: int) -> LayerHooks:
        return NormHooks(self.level_norms(self.level(t, j)))


class UniversalTiming(LevelAdapter):
    """The Universal Transformer's timing signal, added to the token states before each
    iteration; it carries the positions too (the input adds none)."""

    def __init__(self, max_len: int, n_loops: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("timing", universal_timing_table(max_len, n_loops, dim), persistent=False)

    def enter(self, t: int, h: Tensor, shared: SharedInputs) -> Tensor:
        start = shared.position_offset
        end = start + h.shape[1]
        if end > self.timing.shape[1]:
            raise ValueError(f"sequence of {end} positions exceeds max_len {self.timing.shape[1]}")
        return h + self.timing[t, start:end].to(h.dtype)
