"""The looped-stack engine: prelude layers -> a core of k shared layers run T times -> coda.

Every model in the library is this one loop with two objects plugged in: a loop
schedule (``models/schedules.py``: at which resolution each iteration runs) and a level
adapter (``models/levels.py``: what tells the iterations apart). The stack owns the rest
once for all of them: the iteration, the state update between iterations
(``models/state.py``), activation checkpointing of each core layer application, the
decoding cache (:meth:`LoopedStack.new_cache`; a forward given one decodes the new
positions), observers for analysis (free when unused) and the depth plan
(``models/depth.py``: how many loops run, which trained level each runs, early exit).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.block import SharedInputs
from ..layers.cache import KVCache
from ..errors import ConfigError
from .depth import TRAINED, DepthPlan
from .early_exit import ExitTracker
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
        self.plan: DepthPlan = TRAINED  # set for a while by models.depth.run_depth
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
        """An empty decoding cache of the kind this stack's schedule needs (for the
        current plan's number of loops)."""
        return self.schedule.new_cache(self.plan.count(self.n_loops))

    def check_plan(self, plan: DepthPlan) -> None:
        """Refuse a plan this stack cannot run, before anything runs."""
        if plan.exit is not None and not isinstance(self.schedule, FullResolution):
            raise ConfigError(
                "early exit applies to full-resolution loops only: a SpiralFormer level delivers its chunk "
                "outputs to later tokens, so no token can skip it"
            )

    def forward(self, h: Tensor, shared: SharedInputs) -> Tensor:
        """Token states (B, T, d) through the stack; with ``shared.cache``, ``h`` holds the
        new positions only (the task model advances the cache afterwards)."""
        h = self._apply_once("prelude", h, shared)
        plan = self.plan
        levels = plan.levels(self.n_loops)
        memo = self.state.begin(h, shared) if self.state is not None else None
        tracker = ExitTracker(plan.exit, h, shared) if levels and ExitTracker.applies(plan.exit, shared) else None
        core_shared = shared if tracker is None else replace(shared, frozen_kv=tracker.kv)
        no_grad_until = 0
        if plan.backprop_loops is not None and torch.is_grad_enabled():
            no_grad_until = len(levels) - plan.backprop_loops
        for t, level in enumerate(levels):
            with torch.no_grad() if t < no_grad_until else nullcontext():
                new = self._iterate(t, level, h, core_shared, memo)
            if tracker is None:
                h = new
                continue
            h = tracker.step(t, h, new, last=t == len(levels) - 1)
            if tracker.finished:
                self.fill_cache(len(levels), t + 1, core_shared)
                break
        if tracker is not None and plan.meter is not None:
            plan.meter.add(tracker.used, tracker.ignore, tracker.scope)
        return self._apply_once("coda", h, shared)

    def _iterate(self, t: int, level: int, h: Tensor, shared: SharedInputs, memo: dict | None) -> Tensor:
        """Iteration ``t`` of the loop, running trained level ``level``'s parameters."""
        h = self.schedule.iterate(t, level, self.adapter.enter(level, h, shared), shared, self.run_core)
        if self.state is not None:
            h = self.state.update(level, h, memo)
        if self._observers and self.schedule.reports_token_states:
            self._emit(("level", t), h)
        return h

    def fill_cache(self, loops: int, start: int, shared: SharedInputs) -> None:
        """Iterations ``start`` onwards once every position has exited: each layer's cache
        entry gets the keys and values its tokens exited with (nothing without a cache)."""
        if shared.cache is None or shared.frozen_kv is None:
            return
        for t in range(start, loops):
            for j, layer in enumerate(self.core):
                k, v = shared.frozen_kv.saved[j]
                layer.self_attn.append_kv(k, v, shared.rope, shared.cache, ((t, j), "self"))

    def run_core(self, t: int, level: int, z: Tensor, shared: SharedInputs) -> Tensor:
        """The shared core once, at iteration ``t`` with trained level ``level``'s
        parameters, on ``z`` (token states or a schedule's latents). The cache and
        observers know the application as ``(t, j)``: repeated levels stay apart."""
        recompute = self.activation_checkpointing and self.training and shared.cache is None
        adapter, frozen = self.adapter, shared.frozen_kv
        for j, layer in enumerate(self.core):
            hooks = adapter.hooks(level, j)
            if frozen is not None:
                hooks = frozen.hooks(hooks, j)
            if recompute:
                z = checkpoint(layer, z, hooks, shared, (t, j), use_reentrant=False)
            else:
                z = layer(z, hooks, shared, (t, j))
            if self._observers:
                self._emit((t, j), z)
        return z
