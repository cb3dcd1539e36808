"""Early exit inside one forward of a looped stack, batched.

Every position (a token, or a whole sequence for encoders and ViTs) keeps running the
loop until its exit score falls below the threshold. From then on its state is frozen:
the stack keeps the state it had when it exited, while the positions still running go on.

**The cache rule.** Later tokens still attend to an exited token at every deeper level.
What they find there are the keys and values the token had at the last level it ran
(per core layer, :class:`FrozenKV`): a deeper level's own projections are never applied
to it. The rule depends neither on what else is in the batch nor on whether a cache is
used, so a batch with mixed exits decodes exactly as each sequence alone, and cached
decoding exactly as the full forward (an exited token of a running batch still flows
through the layers, but its keys and values are replaced and its output discarded).

Compute is saved once every position of a forward has exited: the remaining levels
only copy those keys and values into their cache entries (``LoopedStack.fill_cache``),
and do nothing at all without a cache. Decoding one sequence, every exit saves; in a
batch, a step stops when its last row exits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..layers.block import SharedInputs
from ..layers.hooks import LayerHooks, Split
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
        self.any_done = bool(self.done.any())
        self.used = torch.zeros(shape, dtype=torch.long, device=h.device)
        self.prev_logp: Tensor | None = None
        # token exits in a forward where other tokens attend on: keys and values to keep
        self.kv = None if self.per_sequence else FrozenKV()

    @property
    def finished(self) -> bool:
        return self.any_done and bool(self.done.all())

    def step(self, t: int, h_prev: Tensor, h_new: Tensor, last: bool) -> Tensor:
        """The states after iteration ``t``: ``h_new`` where a position was running,
        ``h_prev`` where it had already exited; then records who exits now (not after
        the ``last`` iteration: nothing would be saved)."""
        h = h_new
        if self.any_done:
            self.used += (~self.done).long()
            keep = self.done[:, None, None] if self.per_sequence else self.done[..., None]
            h = torch.where(keep, h_prev, h_new)
        else:
            self.used += 1
        if last:
            return h
        logp = self.readout(h_new).float().log_softmax(-1) if self.readout is not None else None
        if t + 1 >= self.rule.min_loops:
            self.done = self.done | (self._score(h_prev, h_new, logp) < self.rule.threshold)
            self.any_done = bool(self.done.any())
            if self.kv is not None:
                self.kv.frozen = self.done if self.any_done else None
        self.prev_logp = logp
        return h

    def _score(self, h_prev: Tensor, h_new: Tensor, logp: Tensor | None) -> Tensor:
        scores = exit_scores(self.rule, h_prev, h_new, self.prev_logp, logp)
        if not self.per_sequence or scores.dim() == 1:
            return scores
        if self.token_pad is None:  # a per-token score of a sequence: its mean over real tokens
            return scores.mean(-1)
        real = (~self.token_pad.to(torch.bool)).float()
        return (scores * real).sum(-1) / real.sum(-1).clamp_min(1.0)


class FrozenKV:
    """Per core layer ``j``, the self-attention keys and values (B, T, d) each token had at
    the last level it ran; at every level, tokens in ``frozen`` get theirs back."""

    def __init__(self) -> None:
        self.frozen: Tensor | None = None  # (B, T) True = exited before the current level
        self.saved: dict[int, tuple[Tensor, Tensor]] = {}

    def swap(self, j: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.frozen is not None and j in self.saved:
            keep = self.frozen[..., None]
            k, v = torch.where(keep, self.saved[j][0], k), torch.where(keep, self.saved[j][1], v)
        self.saved[j] = (k, v)
        return k, v

    def hooks(self, inner: LayerHooks, j: int) -> LayerHooks:
        return FrozenKVHooks(inner, self, j)


class FrozenKVHooks(LayerHooks):
    """A level's hooks for core layer ``j``, whose Q/K/V split also swaps in the keys and
    values of exited tokens (before rotary positions: a token keeps its position)."""

    def __init__(self, inner: LayerHooks, kv: FrozenKV, j: int) -> None:
        self.inner, self.kv, self.j = inner, kv, j

    def norms(self, own):
        return self.inner.norms(own)

    def qkv_split(self, raw: Tensor, normed: Tensor, attention) -> Split | None:
        inner = self.inner.qkv_split(raw, normed, attention)

        def split(qkv: Tensor) -> tuple[Tensor, ...]:
            q, k, v = inner(qkv) if inner is not None else qkv.chunk(3, dim=-1)
            return (q, *self.kv.swap(self.j, k, v))

        return split

    def ffn_input(self, h: Tensor, norm):
        return self.inner.ffn_input(h, norm)

    def cross_q_split(self, x: Tensor) -> Split | None:
        return self.inner.cross_q_split(x)

    def cross_kv_split(self, memory: Tensor) -> Split | None:
        return self.inner.cross_kv_split(memory)
