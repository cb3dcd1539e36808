"""Greedy and batched beam search for encoder-decoder models, on the (level, layer) KV cache.

Both decode one token per step for the whole batch; a finished row (greedy) or a
sentence whose hypotheses have all ended (beam) leaves the batch and the cache, so no
step is spent on it. Beam search keeps its bookkeeping small next to the model: the
encoder output stays one row per sentence (the decoder's cross-attention serves a
sentence's k beams from it), and each beam's best continuation keeps its row, so the
cache copies only the rows of beams that died.

Beam search returns the raw sum of log-probabilities of each hypothesis (so it can be
checked against teacher-forced scoring) and picks the winner with a length penalty,
``score / ((5 + len) / 6) ** alpha`` (GNMT) by default or ``score / len ** alpha``
(``length_norm="power"``, CTranslate2's); ``alpha = 0`` disables it.
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
LENGTH_NORMS = ("gnmt", "power")


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
    b, device = src.shape[0], src.device
    cache = model.new_cache()
    out = Hypotheses([[] for _ in range(b)], [0.0] * b, [False] * b)
    ids = torch.arange(b, device=device)  # the input rows still decoding
    last = torch.full((b, 1), bos, dtype=torch.long, device=device)
    scores = torch.zeros(b, dtype=torch.float32, device=device)
    seqs = torch.empty(b, 0, dtype=torch.long, device=device)
    for _ in range(max_len):
        logp = model.decode(last, memory, mem_pad, cache)[:, -1].float().log_softmax(-1)
        tok = logp.argmax(-1)
        scores = scores + logp.gather(1, tok[:, None])[:, 0]
        seqs, last = torch.cat([seqs, tok[:, None]], 1), tok[:, None]
        ended = tok.eq(eos)
        if not bool(ended.any()):
            continue
        _emit_rows(out, ids, seqs, scores, ended, eos, True)
        if bool(ended.all()):
            return out
        # finished rows leave the batch (and the cache): no step is spent on them
        keep = (~ended).nonzero()[:, 0]
        ids, seqs, scores, last = ids[keep], seqs[keep], scores[keep], last[keep]
        memory, mem_pad = memory.index_select(0, keep), mem_pad.index_select(0, keep)
        cache.reorder(keep)
    _emit_rows(out, ids, seqs, scores, torch.ones_like(ids, dtype=torch.bool), eos, False)
    return out


def _emit_rows(out: Hypotheses, ids: Tensor, seqs: Tensor, scores: Tensor, which: Tensor, eos: int,
               finished: bool) -> None:
    rows = which.nonzero()[:, 0].tolist()
    ids_, seqs_, scores_ = ids.tolist(), seqs.tolist(), scores.tolist()
    for r in rows:
        out.tokens[ids_[r]], out.scores[ids_[r]], out.finished[ids_[r]] = _strip(seqs_[r], eos), scores_[r], finished


@dataclass
class _Beams:
    """The sentences still searching: ``k`` hypotheses each (a sentence leaves once all
    its hypotheses have ended, and its rows leave the decoding batch with it)."""

    ids: Tensor  # (n,) the sentences' rows in the input batch
    scores: Tensor  # (n, k) sums of log-probabilities
    tok: Tensor  # (n, k) the last token of each hypothesis
    done: Tensor  # (n, k) whether it emitted EOS
    lengths: Tensor  # (n, k) tokens counted by the length penalty
    seqs: Tensor  # (n, k, t) the tokens so far

    def keep(self, rows: Tensor) -> "_Beams":
        return _Beams(*(t.index_select(0, rows) for t in (self.ids, self.scores, self.tok, self.done,
                                                           self.lengths, self.seqs)))


@packs_linears
@torch.no_grad()
def beam_search(
    model, src: Tensor, bos: int, eos: int, max_len: int, beam: int = 4, length_penalty: float = 0.6,
    src_padding_mask: Tensor | None = None, length_norm: str = "gnmt",
) -> Hypotheses:
    """``length_norm``: how the winner's score is normalised, "gnmt" (``((5 + len) / 6) **
    alpha``, EOS counted) or "power" (``len ** alpha`` over the tokens before EOS, as
    CTranslate2 does), so that the two engines can be asked the same question."""
    if length_norm not in LENGTH_NORMS:
        raise ValueError(f"length_norm must be one of {', '.join(LENGTH_NORMS)}; got {length_norm!r}")
    memory, mem_pad = model.encode(src, src_padding_mask)
    b, device, k = src.shape[0], src.device, beam
    out = Hypotheses([[] for _ in range(b)], [0.0] * b, [False] * b)
    if max_len < 1:
        return out
    cache = model.new_cache()
    # every beam starts from the same <bos>: the first step runs once per sentence, and
    # only then is the self-attention cache widened to k rows
    first = model.decode(torch.full((b, 1), bos, dtype=torch.long, device=device), memory, mem_pad,
                         cache)[:, -1].float().log_softmax(-1)
    # the encoder output (and its cross-attention keys/values) stays one row per sentence:
    # the decoder's cross-attention serves all k beams of a sentence from that row
    cache.reorder(torch.arange(b, device=device).repeat_interleave(k), fixed=False)
    scores, tok = _first_beams(first, k, eos)
    state = _Beams(torch.arange(b, device=device), scores, tok, tok.eq(eos),
                   torch.ones(b, k, dtype=torch.long, device=device), tok[..., None])
    frozen = torch.full((first.shape[-1],), float("-inf"), device=device)
    frozen[eos] = 0.0  # a finished beam's only continuation is EOS again, at no cost
    for _ in range(max_len - 1):
        ended = state.done.all(-1)
        if bool(ended.any()):  # a sentence whose hypotheses all ended can no longer change
            _emit(out, state, ended, length_penalty, eos, length_norm)
            keep = (~ended).nonzero()[:, 0]
            if keep.numel() == 0:
                return out
            rows = (keep[:, None] * k + torch.arange(k, device=device)).view(-1)
            cache.reorder(rows, fixed=keep)
            memory, mem_pad, state = memory.index_select(0, keep), mem_pad.index_select(0, keep), state.keep(keep)
        logp = model.decode(state.tok.view(-1, 1), memory, mem_pad, cache)[:, -1].float().log_softmax(-1)
        state = _advance(state, logp, frozen, cache, eos)
    _emit(out, state, torch.ones_like(state.ids, dtype=torch.bool), length_penalty, eos, length_norm)
    return out


def _advance(state: _Beams, logp: Tensor, frozen: Tensor, cache, eos: int) -> _Beams:
    """One step: the k best continuations of each sentence's hypotheses."""
    n, k = state.scores.shape
    v = logp.shape[-1]
    logp = logp.view(n, k, v)
    if bool(state.done.any()):
        logp = torch.where(state.done[..., None], frozen, logp)
    scores, idx = _stable_slots(*_best_continuations(state.scores, logp), v)
    src_beam, tok = idx // v, idx % v
    offsets = torch.arange(n, device=idx.device)[:, None] * k
    cache.reorder((offsets + src_beam).view(-1), fixed=False)  # rows move among one sentence's beams only
    was_done = state.done.gather(1, src_beam)
    seqs = state.seqs.gather(1, src_beam[..., None].expand(-1, -1, state.seqs.shape[-1]))
    return _Beams(state.ids, scores, tok, was_done | tok.eq(eos),
                  state.lengths.gather(1, src_beam) + (~was_done).long(), torch.cat([seqs, tok[..., None]], -1))


# vocabulary entries per block in the two-stage search for the best continuations
BLOCK = 64


def _best_continuations(prev: Tensor, logp: Tensor) -> tuple[Tensor, Tensor]:
    """The k best sums ``prev + logp`` of each sentence over its k x v continuations:
    (scores, index into the k x v), best first: what ``topk`` over the sums returns, save
    the order among exactly equal sums (which ``topk`` does not specify either).

    ``topk`` over all k x v sums costs more than a decoding step's attention on the CPU
    (~1.5 ns an entry, plus writing the sums). The k best entries lie in the k blocks of
    ``BLOCK`` entries whose maxima are largest (each such block holds an entry at least as
    large as the k-th best), so one max over blocks, a top-k over the block maxima and one
    over those k blocks' entries find them. The sums are the very ones ``topk`` would
    see: ``prev + max(x) == max(prev + x)`` in floating point, rounding being monotone."""
    n, k, v = logp.shape
    blocks = v // BLOCK
    if blocks < 2 * k:  # a small vocabulary: the plain search is as cheap
        return (prev[..., None] + logp).view(n, k * v).topk(k, dim=-1)
    maxima = logp[..., : blocks * BLOCK].view(n, k, blocks, BLOCK).amax(-1)
    if v % BLOCK:  # the last, shorter block
        maxima = torch.cat([maxima, logp[..., blocks * BLOCK:].amax(-1, keepdim=True)], -1)
        blocks += 1
    top = (prev[..., None] + maxima).view(n, -1).topk(k, dim=-1).indices  # (n, k) blocks
    beam = top // blocks
    tok = (top % blocks)[..., None] * BLOCK + torch.arange(BLOCK, device=logp.device)  # (n, k, BLOCK)
    inside = tok < v
    flat = (beam[..., None] * v + tok.clamp(max=v - 1)).view(n, -1)
    sums = prev.gather(1, beam)[..., None] + logp.reshape(n, k * v).gather(1, flat).view(n, k, BLOCK)
    sums = sums.masked_fill(~inside, float("-inf")).view(n, -1)
    scores, pick = sums.topk(k, dim=-1)
    return scores, flat.gather(1, pick)


def _stable_slots(scores: Tensor, idx: Tensor, v: int) -> tuple[Tensor, Tensor]:
    """Reorder each sentence's k picks so that the best continuation of a beam stays in
    that beam's slot; further continuations fill the slots of beams that died, in score
    order. Which slot holds a hypothesis changes nothing in the search (save which of
    exactly equal scores the next ``topk`` keeps), but the cache then copies only the rows
    that really move instead of all of them."""
    n, k = idx.shape
    src = idx // v
    earlier = torch.ones(k, k, dtype=torch.bool, device=idx.device).tril(-1)
    first = ~((src[:, :, None] == src[:, None, :]) & earlier).any(-1)  # the best pick from its beam
    if bool(first.all()):
        slot = src
    else:
        taken = torch.zeros_like(first).scatter_(1, src, True)
        free = torch.sort(taken.to(torch.uint8), dim=1, stable=True).indices  # untaken slots first, ascending
        rank = ((~first).cumsum(1) - 1).clamp(min=0)
        slot = torch.where(first, src, free.gather(1, rank))
    return scores.new_empty(n, k).scatter_(1, slot, scores), idx.new_empty(n, k).scatter_(1, slot, idx)


def _emit(out: Hypotheses, state: _Beams, which: Tensor, length_penalty: float, eos: int,
          length_norm: str = "gnmt") -> None:
    """Write the best hypothesis (by length-normalised score) of the sentences ``which``."""
    if length_norm == "gnmt":
        norm = ((5.0 + state.lengths.float()) / 6.0) ** length_penalty
    else:  # tokens before EOS; an empty hypothesis counts one (its score stays finite)
        norm = (state.lengths - state.done.long()).clamp(min=1).float() ** length_penalty
    best = (state.scores / norm).argmax(-1)
    pick = torch.arange(len(best), device=best.device)
    rows = which.nonzero()[:, 0].tolist()
    ids, seqs = state.ids.tolist(), state.seqs[pick, best].tolist()
    scores, done = state.scores[pick, best].tolist(), state.done[pick, best].tolist()
    for r in rows:
        i = ids[r]
        out.tokens[i], out.scores[i], out.finished[i] = _strip(seqs[r], eos), scores[r], done[r]


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
           src_padding_mask: Tensor | None = None, length_norm: str = "gnmt") -> Hypotheses:
    """Greedy search for ``beam == 1`` (cheaper), beam search otherwise."""
    if beam == 1:
        return greedy_search(model, src, bos, eos, max_len, src_padding_mask)
    return beam_search(model, src, bos, eos, max_len, beam, length_penalty, src_padding_mask, length_norm)


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
