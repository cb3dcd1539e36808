"""Greedy and batched beam search for encoder-decoder models, on the (level, layer) KV cache.

Both decode one token per step for the whole batch; finished rows keep emitting padding
at no cost. Beam search returns the raw sum of log-probabilities of each hypothesis
(so it can be checked against teacher-forced scoring) and picks the winner with a
length penalty ``score / ((5 + len) / 6) ** alpha`` (GNMT); ``alpha = 0`` disables it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .packing import packs_linears

# beam search keeps beam x batch hypotheses with their caches: beyond a few dozen it
# buys no BLEU and only memory, so a larger beam is refused rather than attempted
MAX_BEAM = 64
MAX_LENGTH_PENALTY = 10.0  # GNMT's alpha; useful values lie in 0..2


@dataclass
class Hypotheses:
    tokens: list[list[int]]  # without BOS/EOS
    scores: list[float]  # sum of log-probabilities, EOS included when emitted
    finished: list[bool]  # whether EOS was emitted (else the length limit was hit)


@packs_linears
@torch.no_grad()
def greedy_search(
    model, src: Tensor, bos: int, eos: int, max_len: int, src_padding_mask: Tensor | None = None
) -> Hypotheses:
    memory, mem_pad = model.encode(src, src_padding_mask)
    b = src.shape[0]
    cache = model.new_cache()
    last = torch.full((b, 1), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    scores = torch.zeros(b, dtype=torch.float32, device=src.device)
    out: list[Tensor] = []
    for _ in range(max_len):
        logp = model.decode(last, memory, mem_pad, cache)[:, -1].float().log_softmax(-1)
        tok = logp.argmax(-1)
        scores += torch.where(done, torch.zeros_like(scores), logp.gather(1, tok[:, None])[:, 0])
        tok = torch.where(done, torch.full_like(tok, eos), tok)
        out.append(tok)
        done |= tok.eq(eos)
        last = tok[:, None]
        if bool(done.all()):
            break
    seqs = torch.stack(out, 1).tolist() if out else [[] for _ in range(b)]
    return Hypotheses([_strip(s, eos) for s in seqs], scores.tolist(), done.tolist())


@packs_linears
@torch.no_grad()
def beam_search(
    model, src: Tensor, bos: int, eos: int, max_len: int, beam: int = 4, length_penalty: float = 0.6,
    src_padding_mask: Tensor | None = None,
) -> Hypotheses:
    memory, mem_pad = model.encode(src, src_padding_mask)
    b, device, k = src.shape[0], src.device, beam
    if max_len < 1:
        return Hypotheses([[] for _ in range(b)], [0.0] * b, [False] * b)
    cache = model.new_cache()
    # every beam starts from the same <bos>: the first step runs once per sentence, and
    # only then are the cache (cross-attention included) and the memory widened to k rows
    first = model.decode(torch.full((b, 1), bos, dtype=torch.long, device=device), memory, mem_pad,
                         cache)[:, -1].float().log_softmax(-1)
    rows = torch.arange(b, device=device).repeat_interleave(k)
    cache.reorder(rows)
    memory, mem_pad = memory.index_select(0, rows), mem_pad.index_select(0, rows)
    scores, tok = _first_beams(first, k, eos)
    done, lengths, seqs = tok.eq(eos), torch.ones(b, k, dtype=torch.long, device=device), tok[..., None]
    frozen = torch.full((first.shape[-1],), float("-inf"), device=device)
    frozen[eos] = 0.0  # a finished beam's only continuation is EOS again, at no cost
    offsets = torch.arange(b, device=device)[:, None] * k
    for _ in range(max_len - 1):
        if bool(done.all()):
            break
        logp = model.decode(tok.view(-1, 1), memory, mem_pad, cache)[:, -1].float().log_softmax(-1)
        v = logp.shape[-1]
        logp = torch.where(done[..., None], frozen, logp.view(b, k, v))
        scores, idx = (scores[..., None] + logp).view(b, k * v).topk(k, dim=-1)
        src_beam, tok = idx // v, idx % v
        cache.reorder((offsets + src_beam).view(-1), fixed=False)  # rows move among one sentence's beams only
        was_done = done.gather(1, src_beam)
        lengths = lengths.gather(1, src_beam) + (~was_done).long()
        done = was_done | tok.eq(eos)
        seqs = torch.cat([seqs.gather(1, src_beam[..., None].expand(-1, -1, seqs.shape[-1])), tok[..., None]], -1)
    norm = ((5.0 + lengths.float()) / 6.0) ** length_penalty
    best = (scores / norm).argmax(-1)
    pick = torch.arange(b, device=device)
    return Hypotheses([_strip(s, eos) for s in seqs[pick, best].tolist()], scores[pick, best].tolist(),
                      done[pick, best].tolist())


def _first_beams(logp: Tensor, k: int, eos: int) -> tuple[Tensor, Tensor]:
    """The k best first tokens of each sentence (scores, tokens); with fewer tokens than
    beams, the spare beams start dead (score -inf)."""
    top, tok = logp.topk(min(k, logp.shape[-1]), dim=-1)
    if top.shape[-1] < k:
        spare = k - top.shape[-1]
        top = torch.cat([top, top.new_full((top.shape[0], spare), float("-inf"))], -1)
        tok = torch.cat([tok, tok.new_full((tok.shape[0], spare), eos)], -1)
    return top, tok


def _strip(seq: list[int], eos: int) -> list[int]:
    return seq[: seq.index(eos)] if eos in seq else seq


@torch.no_grad()
def decode(model, src: Tensor, bos: int, eos: int, max_len: int, beam: int = 1, length_penalty: float = 0.6,
           src_padding_mask: Tensor | None = None) -> Hypotheses:
    """Greedy search for ``beam == 1`` (cheaper), beam search otherwise."""
    if beam == 1:
        return greedy_search(model, src, bos, eos, max_len, src_padding_mask)
    return beam_search(model, src, bos, eos, max_len, beam, length_penalty, src_padding_mask)


@packs_linears
@torch.no_grad()
def score_hypotheses(model, src: Tensor, hyps: list[list[int]], bos: int, eos: int, pad: int,
                     add_eos: list[bool] | None = None) -> list[float]:
    """Teacher-forced sum of log-probabilities of each hypothesis (EOS included if asked)."""
    add_eos = add_eos if add_eos is not None else [True] * len(hyps)
    targets = [h + ([eos] if e else []) for h, e in zip(hyps, add_eos)]
    width = max(len(t) for t in targets)
    tgt_in = torch.full((len(hyps), width), pad, dtype=torch.long)
    labels = torch.full((len(hyps), width), -1, dtype=torch.long)
    for i, t in enumerate(targets):
        seq = [bos] + t
        tgt_in[i, : len(t)] = torch.tensor(seq[: len(t)])
        labels[i, : len(t)] = torch.tensor(t)
    logp = model(src, tgt_in).float().log_softmax(-1)
    picked = logp.gather(2, labels.clamp(min=0)[..., None])[..., 0]
    return (picked * labels.ge(0)).sum(-1).tolist()
