"""Beam search that sets ended hypotheses aside, as CTranslate2's does.

loopformer's own beam search (:func:`loopformer.generate.beam_search`) keeps a hypothesis
that emitted EOS among its k beams, where it holds a slot until the sentence ends. This
one, the algorithm of CTranslate2 4.x, takes each sentence's 2k best continuations at
every step; one of the first k that ends is registered as finished and its slot goes to
the next continuation (from the second k) that does not end. A sentence stops once k
hypotheses have finished, or, without a length penalty, once its best continuation ends;
at the last step every live hypothesis is registered. The winner has the best
``score / len ** alpha``, ``len`` counting the tokens before EOS.

It exists so that loopformer and an exported CTranslate2 model can be asked the very
same question (the interoperability page compares them this way); for translation
itself the library's own search is the faster one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .generate import MAX_BEAM, MAX_LENGTH_PENALTY, Hypotheses
from .packing import packs_linears


@dataclass
class _Live:
    """The sentences still searching and their live hypotheses (one at the first step)."""

    ids: list[int]  # rows in the input batch
    scores: list[list[float]]  # sums of log-probabilities
    seqs: list[list[list[int]]]  # tokens so far
    top_ended: list[bool]  # whether a best continuation has ended (the early stop without penalty)


@packs_linears
@torch.no_grad()
def beam_search_aside(model, src: Tensor, bos: int, eos: int, max_len: int, beam: int = 4,
                      length_penalty: float = 0.6, src_padding_mask: Tensor | None = None) -> Hypotheses:
    """Hypotheses (tokens without EOS, raw scores) as CTranslate2's beam search finds them."""
    if not 1 <= beam <= MAX_BEAM:
        raise ValueError(f"beam must be 1..{MAX_BEAM}; got {beam}")
    if not 0.0 <= length_penalty <= MAX_LENGTH_PENALTY:
        raise ValueError(f"length_penalty must be 0..{MAX_LENGTH_PENALTY:g}; got {length_penalty}")
    memory, mem_pad = model.encode(src, src_padding_mask)
    b, device = src.shape[0], src.device
    out = Hypotheses([[] for _ in range(b)], [0.0] * b, [False] * b)
    found: list[list[tuple[float, list[int], bool]]] = [[] for _ in range(b)]
    live = _Live(list(range(b)), [[0.0] for _ in range(b)], [[[]] for _ in range(b)], [False] * b)
    cache = model.new_cache()
    last = torch.full((b, 1), bos, dtype=torch.long, device=device)
    for step in range(max(max_len, 0)):
        logp = model.decode(last, memory, mem_pad, cache)[:, -1].float().log_softmax(-1)
        n, width, v = len(live.ids), len(live.scores[0]), logp.shape[-1]
        sums = (torch.tensor(live.scores, device=device)[..., None] + logp.view(n, width, v)).view(n, -1)
        top, idx = sums.topk(min(2 * beam, sums.shape[1]), dim=-1)
        picks = _register(live, top.tolist(), idx.tolist(), v, beam, eos, step == max_len - 1, length_penalty, found)
        keep = [i for i in range(n) if picks[i] is not None]
        for i in range(n):
            if picks[i] is None:
                _emit(out, live.ids[i], found[live.ids[i]], length_penalty)
        if not keep:
            break
        top_l, idx_l = top.tolist(), idx.tolist()
        rows = [i * width + idx_l[i][j] // v for i in keep for j in picks[i]]
        kept = torch.tensor(keep, device=device)
        cache.reorder(torch.tensor(rows, device=device), fixed=kept if len(keep) < n else False)
        memory, mem_pad = memory.index_select(0, kept), mem_pad.index_select(0, kept)
        live = _Live([live.ids[i] for i in keep], [[top_l[i][j] for j in picks[i]] for i in keep],
                     [[live.seqs[i][idx_l[i][j] // v] + [idx_l[i][j] % v] for j in picks[i]] for i in keep],
                     [live.top_ended[i] for i in keep])
        last = torch.tensor([[s[-1]] for seqs in live.seqs for s in seqs], device=device)
    return out


def _register(live: _Live, top: list[list[float]], idx: list[list[int]], v: int, beam: int, eos: int,
              last: bool, alpha: float, found: list) -> list[list[int] | None]:
    """Per sentence: set its ended continuations aside and return the k it goes on with
    (positions among its candidates), or None once it is finished."""
    picks: list[list[int] | None] = []
    for i, (scores, cands) in enumerate(zip(top, idx)):
        chosen, spare = [], beam
        for j in range(min(beam, len(cands))):
            c, nxt = cands[j], j
            if c % v == eos or last:
                live.top_ended[i] |= j == 0
                tokens = live.seqs[i][c // v] + ([] if c % v == eos else [c % v])
                found[live.ids[i]].append((scores[j], tokens, c % v == eos))
                for s in range(spare, len(cands)):  # the next continuation that does not end
                    if cands[s] % v != eos:
                        nxt, spare = s, s + 1
                        break
            chosen.append(nxt)
        hyps = found[live.ids[i]]
        done = last or (live.top_ended[i] and len(hyps) >= 1 if alpha == 0 else len(hyps) >= beam)
        picks.append(None if done else chosen)
    return picks


def _emit(out: Hypotheses, row: int, hyps: list[tuple[float, list[int], bool]], alpha: float) -> None:
    """The best hypothesis by ``score / len ** alpha`` (an empty one scores -inf when alpha > 0)."""
    def normalised(h):
        length = len(h[1])
        return h[0] if alpha == 0 else (h[0] / length ** alpha if length else -math.inf)

    best = max(hyps, key=normalised)
    out.tokens[row], out.scores[row], out.finished[row] = best[1], best[0], best[2]
