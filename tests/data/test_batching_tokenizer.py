import pytest

from loopformer.data.batching import pad_batch, token_batches
from loopformer.data.tokenizer import BOS, EOS, PAD, UNK, BPETokenizer
from loopformer.errors import CheckpointError


def test_token_batches_cover_everything_within_budget():
    import random

    rng = random.Random(0)
    src = [rng.randint(1, 40) for _ in range(500)]
    tgt = [rng.randint(1, 40) for _ in range(500)]
    batches = token_batches(src, tgt, max_tokens=200, seed=3, epoch=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for b in batches:
        width = max(max(src[i], tgt[i]) for i in b)
        assert width * len(b) <= 200 or len(b) == 1
    assert batches == token_batches(src, tgt, max_tokens=200, seed=3, epoch=1)
    assert batches != token_batches(src, tgt, max_tokens=200, seed=3, epoch=2)
    # bucketing: batches are much tighter than random ones
    longest = [max(a, b) for a, b in zip(src, tgt)]
    pad_frac = sum(max(longest[i] for i in b) * len(b) - sum(longest[i] for i in b) for b in batches) / sum(longest)
    assert pad_frac < 0.05


def test_pad_batch():
    out = pad_batch([[5, 6, 7], [8]], PAD)
    assert out.tolist() == [[5, 6, 7], [8, PAD, PAD]]


@pytest.fixture(scope="module")
def tok():
    text = ["Ein Mann fährt Fahrrad.", "A man rides a bike.", "Zwei Hunde spielen im Schnee.",
            "Two dogs play in the snow."] * 20
    return BPETokenizer.train(text, vocab_size=400, min_frequency=1)


def test_tokenizer_round_trip_and_specials(tok, tmp_path):
    s = "Zwei Männer fahren Fahrrad im Schnee — ünïcödé!"
    ids = tok.encode(s)
    assert UNK not in ids and min(ids) > UNK
    assert tok.decode(ids) == s
    assert tok.decode([BOS] + ids + [EOS, PAD, PAD]) == s
    tok.save(tmp_path)
    again = BPETokenizer.load(tmp_path)
    assert again.encode(s) == ids and again.vocab_size == tok.vocab_size


def test_tokenizer_corrupt_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        BPETokenizer.load(tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        BPETokenizer.load(tmp_path / "nowhere")
