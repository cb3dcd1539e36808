"""Early exit inside one forward of a looped stack, batched.

Every position (a token, or a whole sequence for encoders and ViTs) keeps running the
loop until its exit score falls below the threshold. From then on its state is frozen:
the stack keeps the state it had when it exited, while the rows still running go on.
A frozen token still takes part in the deeper levels' attention the way any token does,
so **its keys and values at every deeper level are computed from its frozen state** by
that level's own projections (and signals). The rule does not depend on what else is in
the batch or on whether a cache is used, so a batch with mixed exits decodes exactly as
each sequence alone, and cached decoding exactly as the full forward.

Compute is saved when every position of a forward has exited: the remaining levels then
only write what later tokens will read from the cache (``LoopedStack.fill_cache``), and
nothing at all without a cache. One token at a time (batch-1 decoding) every exit saves;
in a batch, a step stops when its last row exits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..layers.block import SharedInputs
from .depth import ExitRule, exit_scores


class ExitTracker:
    """Exit state of one forward: which positions are done and how many loops each ran."""

    @staticmethod
    def applies(rule: ExitRule | None, shared: SharedInputs) -> bool:
        """Whether ``rule`` can run on this forward (a stack without predictions, a
        translation encoder, runs every loop under a criterion that needs them)."""
        return rule is not None and (shared.readout is not None or not rule.needs_readout)

    def __init__(self, rule: ExitRule, h: Tensor, shared: SharedInputs) -> None:
        self.rule = rule
        self.readout = shared.readout if rule.needs_readout else None
        self.scope = shared.exit_scope
        self.per_sequence = self.scope == "sequence"
        pad = shared.padding
        self.token_pad = pad
        shape = h.shape[:1] if self.per_sequence else h.shape[:2]
        ignore = None if (pad is None or self.per_sequence) else pad.to(torch.bool)
        self.ignore = ignore
        self.done = ignore.clone() if ignore is not None else torch.zeros(shape, dtype=torch.bool, device=h.device)
        self.used = torch.zeros(shape, dtype=torch.long, device=h.device)
        self.prev_logits: Tensor | None = None

    @property
    def finished(self) -> bool:
        return bool(self.done.all())

    def step(self, t: int, h_prev: Tensor, h_new: Tensor) -> Tensor:
        """The states after iteration ``t``: ``h_new`` where a position was running,
        ``h_prev`` where it had already exited; then records who exits now."""
        running = ~self.done
        self.used += running.long()
        logits = self.readout(h_new) if self.readout is not None else None
        if t + 1 >= self.rule.min_loops:
            score = self._score(h_prev, h_new, logits)
            self.done = self.done | (running & (score < self.rule.threshold))
        self.prev_logits = logits
        keep = ~running
        keep = keep[:, None, None] if self.per_sequence else keep[..., None]
        return torch.where(keep, h_prev, h_new)

    def _score(self, h_prev: Tensor, h_new: Tensor, logits: Tensor | None) -> Tensor:
        scores = exit_scores(self.rule, h_prev, h_new, self.prev_logits, logits)
        if not self.per_sequence or scores.dim() == 1:
            return scores
        if self.token_pad is None:  # a per-token score of a sequence: its mean over real tokens
            return scores.mean(-1)
        real = (~self.token_pad.to(torch.bool)).float()
        return (scores * real).sum(-1) / real.sum(-1).clamp_min(1.0)
