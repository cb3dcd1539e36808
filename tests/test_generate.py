import pytest
import torch

from conftest import randomize_signals, tiny
from loopformer.generate import beam_search, greedy_search, score_hypotheses

BOS, EOS, PAD = 1, 2, 0


@pytest.fixture
def model():
    m = tiny("ringformer", "mt", cross_attention_signals=True).eval()
    randomize_signals(m)
    with torch.no_grad():
        m.output.bias[EOS] += 2.0  # let some hypotheses finish before the length limit
    return m


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
