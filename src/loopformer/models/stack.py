"""The looped-stack engine: prelude layers -> a core of k shared layers run T times -> coda.

Every model in the library is a configuration of this one loop. It owns the iteration,
the per-level adapter, the (level, layer) cache keys, optional activation
checkpointing per core application and observers for analysis (free when unused).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.block import SharedInputs
from .levels import LevelAdapter
from .observers import Observable
from .state import StateUpdate


class LoopedStack(Observable, nn.Module):
    def __init__(
        self,
        core: list[nn.Module],
        n_loops: int,
        prelude: list[nn.Module] | None = None,
        coda: list[nn.Module] | None = None,
        levels: LevelAdapter | None = None,
        activation_checkpointing: bool = False,
        state: StateUpdate | None = None,
    ) -> None:
        super().__init__()
        self.prelude = nn.ModuleList(prelude or [])
        self.core = nn.ModuleList(core)
        self.coda = nn.ModuleList(coda or [])
        self.n_loops = n_loops
        self.levels = levels
        self.state = state
        self.activation_checkpointing = activation_checkpointing
        self._init_observers()

    @property
    def depth(self) -> int:
        """Unrolled number of layer applications."""
        return len(self.prelude) + len(self.core) * self.n_loops + len(self.coda)

    def forward(self, h: Tensor, shared: SharedInputs) -> Tensor:
        h = self._apply_once("prelude", h, shared)
        k = len(self.core)
        memo = self.state.begin(h, shared) if self.state is not None else None
        for t in range(self.n_loops):
            if self.levels is not None:
                h = self.levels.enter(t, h, shared)
            for j, layer in enumerate(self.core):
                lp = self.levels.params(t, j, k) if self.levels is not None else None
                key = (t, j)
                if self.activation_checkpointing and self.training and shared.cache is None:
                    h = checkpoint(layer, h, lp, shared, key, use_reentrant=False)
                else:
                    h = layer(h, lp, shared, key)
                if self._observers:
                    self._emit(key, h)
            if self.state is not None:
                h = self.state.update(t, h, memo)
        h = self._apply_once("coda", h, shared)
        return h
