import pytest
import torch

from conftest import tiny, tiny_translator
from loopformer.generate import beam_search, greedy_search, score_hypotheses

BOS, EOS, PAD = 1, 2, 0


@pytest.fixture
def model():
    return tiny_translator(EOS)


@pytest.fixture
def src():
    s = torch.randint(4, 40, (4, 7))
    s[1, 5:] = PAD
    s[3, 3:] = PAD
    return s


def test_beam_of_one_equals_greedy(model, src):
    g = greedy_search(model, src, BOS, EOS, max_len=12)
    b = beam_search(model, src, BOS, EOS, max_len=12, beam=1, length_penalty=0.0)
    assert b.tokens == g.tokens
    assert b.finished == g.finished
    assert b.scores == pytest.approx(g.scores, abs=1e-4)


@pytest.mark.parametrize("beam", [2, 4])
def test_cached_beam_scores_equal_uncached_scoring(model, src, beam):
    hyp = beam_search(model, src, BOS, EOS, max_len=10, beam=beam, length_penalty=0.6)
    rescored = score_hypotheses(model, src, hyp.tokens, BOS, EOS, PAD, add_eos=hyp.finished)
    assert hyp.scores == pytest.approx(rescored, abs=1e-4)
    assert any(hyp.finished) and len(hyp.tokens) == src.shape[0]


def test_beam_search_finds_at_least_greedy_score(model, src):
    g = greedy_search(model, src, BOS, EOS, max_len=10)
    b = beam_search(model, src, BOS, EOS, max_len=10, beam=5, length_penalty=0.0)
    for gs, bs, gf, bf in zip(g.scores, b.scores, g.finished, b.finished):
        if gf and bf:
            assert bs >= gs - 1e-4


def _reference_beam(model, src, max_len, k, alpha, norm="gnmt"):
    """The search written plainly (k rows per sentence from the first step, the whole
    prefix re-run every step, no cache): the fast search must give the same hypotheses."""
    memory, mem_pad = model.encode(src)
    b = src.shape[0]
    memory, mem_pad = memory.repeat_interleave(k, 0), mem_pad.repeat_interleave(k, 0)
    scores = torch.full((b, k), float("-inf"))
    scores[:, 0] = 0.0
    done = torch.zeros(b, k, dtype=torch.bool)
    lengths = torch.zeros(b, k, dtype=torch.long)
    seqs = torch.full((b, k, 1), BOS)
    for _ in range(max_len):
        logp = model.decode(seqs.view(b * k, -1), memory, mem_pad)[:, -1].float().log_softmax(-1).view(b, k, -1)
        v = logp.shape[-1]
        frozen = torch.full((v,), float("-inf"))
        frozen[EOS] = 0.0
        logp = torch.where(done[..., None], frozen, logp)
        scores, idx = (scores[..., None] + logp).view(b, -1).topk(k, dim=-1)
        src_beam, tok = idx // v, idx % v
        was_done = done.gather(1, src_beam)
        lengths = lengths.gather(1, src_beam) + (~was_done).long()
        done = was_done | tok.eq(EOS)
        seqs = torch.cat([seqs.gather(1, src_beam[..., None].expand_as(seqs)), tok[..., None]], -1)
        if bool(done.all()):
            break
    if norm == "gnmt":
        best = (scores / ((5.0 + lengths.float()) / 6.0) ** alpha).argmax(-1)
    else:  # tokens before EOS
        best = (scores / (lengths - done.long()).clamp(min=1).float() ** alpha).argmax(-1)
    rows = seqs[torch.arange(b), best, 1:].tolist()
    return [r[: r.index(EOS)] if EOS in r else r for r in rows], scores[torch.arange(b), best]


@pytest.mark.parametrize("k,alpha", [(2, 0.0), (4, 0.6), (6, 1.0)])
def test_fast_beam_search_equals_the_plain_search(model, src, k, alpha):
    with torch.no_grad():
        ref_tokens, ref_scores = _reference_beam(model, src, 10, k, alpha)
        hyp = beam_search(model, src, BOS, EOS, max_len=10, beam=k, length_penalty=alpha)
    assert hyp.tokens == ref_tokens
    assert torch.allclose(torch.tensor(hyp.scores), ref_scores, atol=1e-4)
    assert any(hyp.finished) and any(len(t) < 10 for t in hyp.tokens)  # some hypotheses did finish


def test_beam_search_keeps_each_continued_beam_in_its_slot(model, src, monkeypatch):
    """A beam's best continuation stays in its row, so the cache copies only the rows of
    beams that died (taken over by a further continuation of a surviving beam)."""
    from loopformer.layers.cache import KVCache

    seen, real = [], KVCache.reorder
    monkeypatch.setattr(KVCache, "reorder", lambda self, index, fixed=True: seen.append((index, fixed))
                        or real(self, index, fixed))
    with torch.no_grad():
        ref_tokens, _ = _reference_beam(model, src, 10, 4, 0.6)
        hyp = beam_search(model, src, BOS, EOS, max_len=10, beam=4, length_penalty=0.6)
    assert hyp.tokens == ref_tokens
    steps = [index for index, fixed in seen if fixed is False][1:]  # after widening to the beams
    assert steps
    moved = 0
    for index in steps:
        sources = index.unique()
        assert torch.equal(index[sources], sources)  # every source row keeps its own hypothesis
        moved += int(index.ne(torch.arange(len(index))).sum())
    assert 0 < moved < sum(len(index) for index in steps)


@pytest.mark.parametrize("vocab", [1000, 1024])
def test_blocked_top_k_over_a_large_vocabulary_equals_the_plain_search(vocab):
    """With a vocabulary of many blocks (1000: the last block is shorter) the best
    continuations are found block-wise; the hypotheses are those of the plain search."""
    torch.manual_seed(1)
    model = tiny("vanilla", "mt", vocab_size=vocab).eval()
    with torch.no_grad():
        model.output.bias[EOS] += 3.0  # hypotheses finish
        model.output.bias[vocab - 1] += 4.0  # the last entry of the last block competes
    src = torch.randint(4, vocab, (5, 6))
    with torch.no_grad():
        ref_tokens, ref_scores = _reference_beam(model, src, 8, 4, 0.6)
        hyp = beam_search(model, src, BOS, EOS, max_len=8, beam=4, length_penalty=0.6)
    assert hyp.tokens == ref_tokens
    torch.testing.assert_close(torch.tensor(hyp.scores), ref_scores, rtol=0, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.6, 2.0])
def test_power_length_norm_picks_as_the_plain_search(model, src, alpha):
    """CTranslate2's normalisation, len ** alpha over the tokens before EOS."""
    with torch.no_grad():
        ref_tokens, _ = _reference_beam(model, src, 10, 4, alpha, norm="power")
        hyp = beam_search(model, src, BOS, EOS, max_len=10, beam=4, length_penalty=alpha, length_norm="power")
        gnmt = beam_search(model, src, BOS, EOS, max_len=10, beam=4, length_penalty=alpha)
    assert hyp.tokens == ref_tokens
    if alpha == 2.0:
        assert hyp.tokens != gnmt.tokens  # a strong penalty tells the two normalisations apart
    with pytest.raises(ValueError, match="length_norm must be one of gnmt, power"):
        beam_search(model, src, BOS, EOS, max_len=10, beam=4, length_norm="average")
