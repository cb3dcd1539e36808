"""CTranslate2 export: the unrolled, folded model translates as loopformer does."""

import pytest
import torch

ctranslate2 = pytest.importorskip("ctranslate2")

from loopformer.cli import main  # noqa: E402
from loopformer.data.batching import pad_batch  # noqa: E402
from loopformer.data.tokenizer import BOS, EOS  # noqa: E402
from loopformer.deploy.ctranslate2 import build_spec, vocabulary  # noqa: E402
from loopformer.generate import greedy_search  # noqa: E402
from loopformer.tasks.registry import load_checkpoint  # noqa: E402
from tests.conftest import randomize_signals  # noqa: E402

SOURCES = ["Zwei Hunde spielen im Schnee.", "Ein Mann.", "Eine Frau mit einem roten Hut sitzt auf einer Bank.",
           "Kinder", "Ein kleines Mädchen klettert in ein Spielhaus aus Holz."]


def _translate_ids(folder, task, ids, **kw):
    backend = task.tok.backend
    tokens = [[backend.id_to_token(i) for i in row] for row in ids]
    out = ctranslate2.Translator(str(folder), device="cpu").translate_batch(tokens, **kw)
    return [[backend.token_to_id(t) for t in r.hypotheses[0]] for r in out]


def test_ringformer_with_active_signals_greedy_tokens_match(mt_ckpt, tmp_path):
    model, task, _ = load_checkpoint(mt_ckpt)
    randomize_signals(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    spec = build_spec(model, vocabulary(task.tok), vocabulary(task.tgt_tok))
    spec.validate()
    spec.optimize()
    (tmp_path / "ct2").mkdir()
    spec.save(str(tmp_path / "ct2"))
    ids = task.encode_pairs(SOURCES, SOURCES)[0]
    ours = greedy_search(model, pad_batch(ids), BOS, EOS, 12).tokens
    assert _translate_ids(tmp_path / "ct2", task, ids, beam_size=1, max_decoding_length=12) == ours


def test_cli_export_fp32_and_int8(mt_ckpt, lm_ckpt, tmp_path, capsys):
    assert main(["export", "ctranslate2", str(mt_ckpt), str(tmp_path / "fp32")]) == 0
    assert main(["export", "ctranslate2", str(mt_ckpt), str(tmp_path / "int8"), "--quantization", "int8"]) == 0
    assert (tmp_path / "int8" / "model.bin").stat().st_size < (tmp_path / "fp32" / "model.bin").stat().st_size
    model, task, _ = load_checkpoint(mt_ckpt)
    ids = task.encode_pairs(SOURCES, SOURCES)[0]
    assert _translate_ids(tmp_path / "fp32", task, ids, beam_size=1, max_decoding_length=10) == \
        greedy_search(model, pad_batch(ids), BOS, EOS, 10).tokens
    capsys.readouterr()
    assert main(["export", "ctranslate2", str(lm_ckpt), str(tmp_path / "lm")]) == 2
    assert "translation checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
def test_the_aside_beam_search_finds_ctranslate2s_hypotheses(mt_ckpt, tmp_path, alpha):
    """``beam_search_aside`` is CTranslate2's algorithm: asked the same question (beam,
    length penalty, length limit), the two engines return the same hypotheses."""
    from loopformer.beam_aside import beam_search_aside
    from loopformer.generate import beam_search

    model, task, _ = load_checkpoint(mt_ckpt)
    randomize_signals(model)
    with torch.no_grad():
        model.output.bias[EOS] += 1.0  # hypotheses end at different steps
    spec = build_spec(model, vocabulary(task.tok), vocabulary(task.tgt_tok))
    spec.validate()
    spec.optimize()
    (tmp_path / "ct2").mkdir()
    spec.save(str(tmp_path / "ct2"))
    ids = task.encode_pairs(SOURCES * 2, SOURCES * 2)[0]
    ours = beam_search_aside(model, pad_batch(ids), BOS, EOS, 12, beam=4, length_penalty=alpha)
    theirs = _translate_ids(tmp_path / "ct2", task, ids, beam_size=4, max_decoding_length=12, length_penalty=alpha)
    assert ours.tokens == theirs
    if alpha == 1.5:  # the library's own search answers differently here
        assert beam_search(model, pad_batch(ids), BOS, EOS, 12, beam=4, length_penalty=alpha,
                           length_norm="power").tokens != theirs
