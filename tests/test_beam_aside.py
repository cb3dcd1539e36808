"""CTranslate2's beam search run by loopformer (compared with CTranslate2 itself in
tests/deploy/test_ctranslate2.py, where ctranslate2 is installed)."""

import pytest
import torch

from conftest import tiny_translator
from loopformer.beam_aside import beam_search_aside
from loopformer.generate import greedy_search, score_hypotheses

BOS, EOS, PAD = 1, 2, 0


@pytest.fixture
def model():
    return tiny_translator(EOS)


@pytest.fixture
def src():
    s = torch.randint(4, 40, (6, 7), generator=torch.Generator().manual_seed(3))
    s[1, 5:] = PAD
    s[3, 3:] = PAD
    return s


def test_a_beam_of_one_without_penalty_is_greedy(model, src):
    assert beam_search_aside(model, src, BOS, EOS, 10, beam=1, length_penalty=0.0).tokens == \
        greedy_search(model, src, BOS, EOS, 10).tokens


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_scores_are_the_hypotheses_teacher_forced_scores(model, src, alpha):
    hyp = beam_search_aside(model, src, BOS, EOS, 10, beam=4, length_penalty=alpha)
    assert any(hyp.finished) and any(len(t) < 10 for t in hyp.tokens)
    forced = score_hypotheses(model, src, hyp.tokens, BOS, EOS, PAD, add_eos=hyp.finished)
    torch.testing.assert_close(torch.tensor(hyp.scores), torch.tensor(forced), rtol=0, atol=1e-4)


def test_each_sentence_as_alone(model, src):
    """Sentences leave the batch as they finish; the rest are found as if decoded alone."""
    batch = beam_search_aside(model, src, BOS, EOS, 10, beam=4, length_penalty=0.6)
    for i in range(src.shape[0]):
        row = src[i : i + 1, : int(src[i].ne(PAD).sum())]
        assert beam_search_aside(model, row, BOS, EOS, 10, beam=4, length_penalty=0.6).tokens[0] == batch.tokens[i]


@pytest.mark.parametrize("kw,match", [({"beam": 0}, "beam must be 1..64"), ({"beam": 65}, "beam must be"),
                                      ({"length_penalty": -1.0}, "length_penalty must be"),
                                      ({"length_penalty": float("nan")}, "length_penalty must be")])
def test_settings_out_of_range_are_refused(model, src, kw, match):
    with pytest.raises(ValueError, match=match):
        beam_search_aside(model, src, BOS, EOS, 10, **kw)
