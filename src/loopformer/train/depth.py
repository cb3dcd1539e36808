"""Training for a range of depths: the number of loops of each optimizer step.

A model trained at one loop count tends to break when run with more; drawing the count
per step teaches the shared core to keep improving (or at least hold) its state. The
draw is a pure function of ``(seed, step)``: every rank of a ``torchrun`` job draws the
same count without communicating, and a resumed run continues the same sequence with no
state to save.

- ``fixed``: the trained count every step;
- ``uniform``: uniform over ``[loops_min, loops_max]``;
- ``poisson_lognormal`` (as in recurrent-depth LMs): ``tau ~ N(log(N - 1) - s^2 / 2, s)``,
  ``K = 1 + Poisson(exp(tau))`` clamped to ``[loops_min, loops_max]``, with ``N`` the
  trained count and ``s = loops_sigma``: mean ``N`` (before clamping; so the same compute
  per step on average as fixed training) and a long tail of deep steps.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import nn

from ..errors import ConfigError
from ..models.depth import looped_stacks, run_depth

DEPTH_SAMPLINGS = ("fixed", "uniform", "poisson_lognormal")


class LoopSampler:
    """Draws the loop count of a step. ``trained`` is the model's configured count; the
    range defaults to ``[1, 2 * trained]``."""

    def __init__(self, kind: str, trained: int, seed: int, lo: int = 1, hi: int | None = None,
                 sigma: float = 0.5) -> None:
        self.kind = kind
        self.trained = trained
        self.seed = seed
        self.lo = lo
        self.hi = hi if hi is not None else 2 * trained
        self.sigma = sigma

    @property
    def varies(self) -> bool:
        return self.kind != "fixed"

    def draw(self, step: int) -> int:
        if self.kind == "fixed":
            return self.trained
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + step) % (2**63))
        if self.kind == "uniform":
            return int(torch.randint(self.lo, self.hi + 1, (1,), generator=gen))
        mu = math.log(max(self.trained - 1, 0.5)) - self.sigma**2 / 2
        tau = mu + self.sigma * float(torch.randn(1, generator=gen))
        k = 1 + int(torch.poisson(torch.tensor([math.exp(tau)]), generator=gen))
        return min(max(k, self.lo), self.hi)


class StepDepth:
    """The trainer's view: the plan of each optimizer step (or nothing to change)."""

    def __init__(self, cfg, model: nn.Module) -> None:
        self.active = cfg.depth_sampling != "fixed" or cfg.backprop_loops is not None
        stacks = looped_stacks(model)
        if self.active and not stacks:
            raise ConfigError("depth_sampling and backprop_loops apply to looped models only; this model has no loop")
        trained = max((s.n_loops for s in stacks), default=1)
        self.sampler = LoopSampler(cfg.depth_sampling, trained, cfg.seed, cfg.loops_min or 1, cfg.loops_max,
                                   cfg.loops_sigma if cfg.loops_sigma is not None else 0.5)
        self.cfg = cfg
        self.model = model

    def loops(self, step: int) -> int:
        return self.sampler.draw(step)

    def context(self, step: int):
        """What the forward/backward of optimizer step ``step`` runs under."""
        if not self.active:
            return nullcontext()
        loops = self.sampler.draw(step) if self.sampler.varies else None
        return run_depth(self.model, loops=loops, rule=self.cfg.level_rule, backprop_loops=self.cfg.backprop_loops)
