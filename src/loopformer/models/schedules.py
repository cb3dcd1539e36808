"""Loop schedules: at which resolution each iteration of a looped core runs.

A schedule gets the token states entering iteration ``t`` (which runs trained level
``level``'s parameters, see ``models/depth.py``) and a function that runs the shared
core once (``core(t, level, z, shared)``, with the stack's adapter hooks, observers and
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

#: runs the shared core once: (iteration t, level, states, shared inputs) -> states
CoreFn = Callable[[int, int, Tensor, SharedInputs], Tensor]


class LoopSchedule(nn.Module):
    """What every schedule provides. A stack saves a schedule and its adapter under the
    names in :attr:`state_names` (schedule's, adapter's), which keeps checkpoint keys (and
    optimizer state, stored by parameter index) the same as before the engine was split
    into schedule and adapter."""

    state_names: tuple[str, str] = ("schedule", "levels")
    #: whether the core runs on something other than the token states, so that observers
    #: are also shown the token states after each iteration, as ``("level", t)``
    reports_token_states: bool = False

    def iterate(self, t: int, level: int, h: Tensor, shared: SharedInputs, core: CoreFn) -> Tensor:
        raise NotImplementedError

    def new_cache(self, loops: int) -> KVCache:
        """An empty cache for token-by-token decoding through ``loops`` iterations."""
        return KVCache()


class FullResolution(LoopSchedule):
    """Every iteration runs the core on the token states (with the token cache, if any)."""

    def iterate(self, t: int, level: int, h: Tensor, shared: SharedInputs, core: CoreFn) -> Tensor:
        return core(t, level, h, shared)
