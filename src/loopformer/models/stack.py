"""The looped-stack engine: prelude layers -> a core of k shared layers run T times -> coda.

Every model in the library is this one loop with two objects plugged in: a loop
schedule (``models/schedules.py``: at which resolution each iteration runs) and a level
adapter (``models/levels.py``: what tells the iterations apart). The stack owns the rest
once for all of them: the iteration, the state update between iterations
(``models/state.py``), activation checkpointing of each core layer application, the
decoding cache (:meth:`LoopedStack.new_cache`; a forward given one decodes the new
positions) and observers for analysis (free when unused).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.block import SharedInputs
from ..layers.cache import KVCache
from .levels import LevelAdapter
from .observers import Observable
from .schedules import FullResolution, LoopSchedule
from .state import StateUpdate


class LoopedStack(Observable, nn.Module):
    def __init__(
        self,
        core: list[nn.Module],
        n_loops: int,
        prelude: list[nn.Module] | None = None,
        coda: list[nn.Module] | None = None,
        adapter: LevelAdapter | None = None,
        schedule: LoopSchedule | None = None,
        state: StateUpdate | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        """``adapter`` defaults to the identity, ``schedule`` to full resolution."""
        super().__init__()
        self.prelude = nn.ModuleList(prelude or [])
        self.core = nn.ModuleList(core)
        self.coda = nn.ModuleList(coda or [])
        self.n_loops = n_loops
        schedule = schedule if schedule is not None else FullResolution()
        adapter = adapter if adapter is not None else LevelAdapter()
        # registered under the names checkpoints use (see LoopSchedule.state_names); the
        # `schedule` and `adapter` properties find them whatever those names are
        self._plugin_names = schedule.state_names
        for name, module in zip(self._plugin_names, (schedule, adapter)):
            self._modules[name] = module
        self.state = state
        self.activation_checkpointing = activation_checkpointing
        self._init_observers()

    @property
    def schedule(self) -> LoopSchedule:
        return self._modules[self._plugin_names[0]]

    @property
    def adapter(self) -> LevelAdapter:
        return self._modules[self._plugin_names[1]]

    @property
    def depth(self) -> int:
        """Unrolled number of layer applications."""
        return len(self.prelude) + len(self.core) * self.n_loops + len(self.coda)

    def new_cache(self) -> KVCache:
        """An empty decoding cache of the kind this stack's schedule needs."""
        return self.schedule.new_cache()

    def forward(self, h: Tensor, shared: SharedInputs) -> Tensor:
        """Token states (B, T, d) through the stack; with ``shared.cache``, ``h`` holds the
        new positions only (the task model advances the cache afterwards)."""
        h = self._apply_once("prelude", h, shared)
        schedule, adapter = self.schedule, self.adapter
        memo = self.state.begin(h, shared) if self.state is not None else None
        for t in range(self.n_loops):
            h = schedule.iterate(t, adapter.enter(t, h, shared), shared, self.run_core)
            if self.state is not None:
                h = self.state.update(t, h, memo)
            if self._observers and schedule.reports_token_states:
                self._emit(("level", t), h)
        return self._apply_once("coda", h, shared)

    def run_core(self, t: int, z: Tensor, shared: SharedInputs) -> Tensor:
        """The shared core once, at iteration ``t``, on ``z`` (token states or a
        schedule's latents), each layer with the adapter's hooks for ``(t, j)``."""
        recompute = self.activation_checkpointing and self.training and shared.cache is None
        adapter = self.adapter
        for j, layer in enumerate(self.core):
            hooks = adapter.hooks(t, j)
            if recompute:
                z = checkpoint(layer, z, hooks, shared, (t, j), use_reentrant=False)
            else:
                z = layer(z, hooks, shared, (t, j))
            if self._observers:
                self._emit((t, j), z)
        return z
