"""Loop schedules: at which resolution each iteration of a looped core runs.

A schedule gets the token states entering iteration ``t`` and a function that runs the
shared core once (``core(t, z, shared)``, with the stack's adapter hooks, observers and
activation checkpointing), and returns the iteration's token-level output. It also makes
the decoding cache it needs, so that task models decode every schedule the same way.

- :class:`FullResolution`: the core runs on the token states themselves;
- SpiralFormer's coarse-to-fine chunks: ``models/spiral.py``.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..layers.block import SharedInputs
from ..layers.cache import KVCache

#: runs the shared core once: (iteration t, states, shared inputs) -> states
CoreFn = Callable[[int, Tensor, SharedInputs], Tensor]


class LoopSchedule(nn.Module):
    """What every schedule provides. A stack saves a schedule and its adapter under the
    names in :attr:`state_names` (schedule's, adapter's), which keeps checkpoint keys (and
    optimizer state, stored by parameter index) the same as before the engine was split
    into schedule and adapter."""

    state_names: tuple[str, str] = ("schedule", "levels")
    #: whether the core runs on something other than the token states, so that observers
    #: are also shown the token states after each iteration, as ``("level", t)``
    reports_token_states: bool = False

    def iterate(self, t: int, h: Tensor, shared: SharedInputs, core: CoreFn) -> Tensor:
        raise NotImplementedError

    def new_cache(self) -> KVCache:
        """An empty cache for token-by-token decoding through the stack."""
        return KVCache()


class FullResolution(LoopSchedule):
    """Every iteration runs the core on the token states (with the token cache, if any)."""

    def iterate(self, t: int, h: Tensor, shared: SharedInputs, core: CoreFn) -> Tensor:
        return core(t, h, shared)
