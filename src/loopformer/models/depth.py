"""Depth as a dial: how many loops a looped stack runs, which trained level's parameters
each iteration uses, and when a token (or a sequence) stops early.

A :class:`DepthPlan` sits on every :class:`~loopformer.models.stack.LoopedStack`; the
default is the trained count with nothing exiting, i.e. the model as it was trained.
:func:`run_depth` sets a plan on every stack of a model for the duration of a ``with``
block, so every caller (a forward, greedy/beam/sampled generation, ``eval``, ``bench``)
gets the dial without a new argument on each function.

Iterations beyond the trained count need a level's parameters (RingFormer's signals and
norms, per-level norms, SpiralFormer's resolutions, MeSH routers, the Universal timing
row). A *level rule* maps iteration ``t`` of ``K`` to a trained level ``0 <= l < N``:

- ``repeat_last``: ``min(t, N - 1)``: fewer loops run the first ``K`` levels, extra loops
  repeat the last level (the default);
- ``cycle``: ``t mod N``: extra loops run the trained sequence of levels again;
- ``spread``: ``round(t (N - 1) / (K - 1))``: ``K`` iterations spread evenly over the
  trained levels (first and last always included).

Each iteration keeps its own cache entries whatever level it runs, so repeated levels
never overwrite each other's keys and values.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor, nn

from ..errors import ConfigError

LEVEL_RULES = ("repeat_last", "cycle", "spread")
EXIT_CRITERIA = ("change", "kl", "entropy", "argmax")
MAX_LOOPS = 1024


def level_of(t: int, loops: int, trained: int, rule: str) -> int:
    """The trained level whose parameters iteration ``t`` (of ``loops``) runs."""
    if loops == trained or trained <= 1:
        return min(t, max(trained - 1, 0))
    if rule == "cycle":
        return t % trained
    if rule == "spread":
        return 0 if loops == 1 else round(t * (trained - 1) / (loops - 1))
    return min(t, trained - 1)


@dataclass(frozen=True)
class ExitRule:
    """Stop a token (decoders, causal LMs) or a sequence (encoders, ViTs) once its score
    falls below ``threshold``; none of the criteria needs training:

    - ``change``: ``||h_t - h_{t-1}|| / ||h_t||``, the relative change of the state;
    - ``kl``: KL divergence of iteration ``t``'s prediction from iteration ``t - 1``'s;
    - ``entropy``: entropy (nats) of iteration ``t``'s prediction;
    - ``argmax``: 0 when the predicted class/token is the previous iteration's, else 1
      (any threshold in (0, 1] exits on a stable argmax).

    Predictions are the model's own head read off the loop state (final norm + output
    layer, skipping any coda layers). A stack that makes no predictions (a translation
    encoder) runs all its loops under the criteria that need them. ``min_loops``
    iterations always run."""

    criterion: str = "change"
    threshold: float = 0.0
    min_loops: int = 1

    def __post_init__(self) -> None:
        if self.criterion not in EXIT_CRITERIA:
            raise ConfigError(f"exit criterion must be one of {', '.join(EXIT_CRITERIA)}; got {self.criterion!r}")
        if not self.threshold >= 0.0:
            raise ConfigError(f"exit threshold must be >= 0; got {self.threshold}")
        if not 1 <= self.min_loops <= MAX_LOOPS:
            raise ConfigError(f"exit min_loops must be in [1, {MAX_LOOPS}]; got {self.min_loops}")

    @property
    def needs_readout(self) -> bool:
        return self.criterion != "change"

    @classmethod
    def parse(cls, text: str) -> "ExitRule":
        """``criterion:threshold[:min_loops]``, e.g. ``kl:0.01`` (the command-line form)."""
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(f"exit must look like criterion:threshold[:min_loops] (e.g. kl:0.01); got {text!r}")
        try:
            threshold = float(parts[1])
            min_loops = int(parts[2]) if len(parts) == 3 else 1
        except ValueError:
            raise ConfigError(f"exit threshold must be a number and min_loops an integer; got {text!r}") from None
        return cls(parts[0], threshold, min_loops)


@dataclass
class ExitMeter:
    """Counts core applications per exit scope (``token``: decoders and causal LMs,
    ``sequence``: encoders and ViTs): applications / positions is the mean number of loops
    a position ran. ``record=True`` also keeps each forward's loops per position."""

    record: bool = False
    applications: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    loops_used: list[Tensor] = field(default_factory=list)

    @property
    def mean_loops(self) -> float:
        """Per token where tokens exit (a decoder), else per sequence (an encoder, a ViT)."""
        scope = "token" if "token" in self.positions else "sequence"
        return self.mean(scope)

    def mean(self, scope: str) -> float:
        return self.applications.get(scope, 0) / max(self.positions.get(scope, 0), 1)

    def add(self, used: Tensor, ignore: Tensor | None, scope: str = "token") -> None:
        counted = used if ignore is None else used[~ignore]
        self.applications[scope] = self.applications.get(scope, 0) + int(counted.sum())
        self.positions[scope] = self.positions.get(scope, 0) + counted.numel()
        if self.record:
            self.loops_used.append(used.detach().cpu())


@dataclass(frozen=True)
class DepthPlan:
    """What a stack runs: ``loops`` iterations (None: as trained) with levels chosen by
    ``rule``, an optional early exit, and ``backprop_loops`` (training: gradients flow
    through the last k iterations only, bounding activation memory)."""

    loops: int | None = None
    rule: str = "repeat_last"
    exit: ExitRule | None = None
    backprop_loops: int | None = None
    meter: ExitMeter | None = None

    def __post_init__(self) -> None:
        if self.loops is not None and not 1 <= self.loops <= MAX_LOOPS:
            raise ConfigError(f"loops must be in [1, {MAX_LOOPS}]; got {self.loops}")
        if self.rule not in LEVEL_RULES:
            raise ConfigError(f"level rule must be one of {', '.join(LEVEL_RULES)}; got {self.rule!r}")
        if self.backprop_loops is not None and not 1 <= self.backprop_loops <= MAX_LOOPS:
            raise ConfigError(f"backprop_loops must be in [1, {MAX_LOOPS}]; got {self.backprop_loops}")

    def count(self, trained: int) -> int:
        return self.loops if self.loops is not None else trained

    def levels(self, trained: int) -> list[int]:
        loops = self.count(trained)
        return [level_of(t, loops, trained, self.rule) for t in range(loops)]


TRAINED = DepthPlan()


def looped_stacks(model: nn.Module) -> list[nn.Module]:
    from .stack import LoopedStack

    return [m for m in model.modules() if isinstance(m, LoopedStack) and m.n_loops > 0]


@contextmanager
def run_depth(model: nn.Module, loops: int | None = None, rule: str = "repeat_last", exit: ExitRule | None = None,
              backprop_loops: int | None = None, meter: ExitMeter | None = None) -> Iterator[DepthPlan]:
    """Run every looped stack of ``model`` with this plan inside the block (restored after).
    A model without a looped stack (vanilla) refuses any setting but the default."""
    plan = DepthPlan(loops, rule, exit, backprop_loops, meter)
    stacks = looped_stacks(model)
    if not stacks and plan != DepthPlan(meter=meter):
        raise ConfigError("loops, exit and backprop_loops apply to looped models only; this model has no loop")
    for stack in stacks:
        stack.check_plan(plan)
    saved = [stack.plan for stack in stacks]
    try:
        for stack in stacks:
            stack.plan = plan
        yield plan
    finally:
        for stack, old in zip(stacks, saved):
            stack.plan = old


def exit_scores(rule: ExitRule, h_prev: Tensor, h_new: Tensor, prev: Tensor | None, new: Tensor | None) -> Tensor:
    """Scores (B, T) or (B,) of the positions after one iteration; ``prev``/``new`` are
    the log-probabilities predicted before and after it (``None`` without a readout)."""
    if rule.criterion == "change":
        diff = (h_new - h_prev).float().norm(dim=-1)
        return diff / h_new.float().norm(dim=-1).clamp_min(1e-12)
    if rule.criterion == "entropy":
        return -(new.exp() * new).sum(-1)
    if prev is None:
        return torch.full(new.shape[:-1], float("inf"), device=new.device)
    if rule.criterion == "argmax":
        return new.argmax(-1).ne(prev.argmax(-1)).float()
    return (new.exp() * (new - prev)).sum(-1)
