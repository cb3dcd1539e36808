"""ONNX export: onnxruntime, driven by loopformer's own searches, translates as loopformer does."""

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from loopformer.cli import main  # noqa: E402
from loopformer.data.batching import pad_batch  # noqa: E402
from loopformer.data.tokenizer import BOS, EOS  # noqa: E402
from loopformer.deploy.onnx import OnnxTranslator, export_onnx  # noqa: E402
from loopformer.errors import CheckpointError  # noqa: E402
from loopformer.generate import beam_search, greedy_search  # noqa: E402
from loopformer.tasks.registry import load_checkpoint  # noqa: E402
from tests.conftest import randomize_signals  # noqa: E402

SOURCES = ["Zwei Hunde spielen im Schnee.", "Ein Mann.", "Eine Frau mit einem roten Hut sitzt auf einer Bank.",
           "Kinder", "Ein kleines Mädchen klettert in ein Spielhaus aus Holz."]


def test_greedy_and_beam_match_with_active_signals(mt_ckpt, tmp_path):
    model, task, _ = load_checkpoint(mt_ckpt)
    randomize_signals(model)
    with torch.no_grad():
        model.output.bias[EOS] += 1.0  # let some hypotheses end before the limit
    export_onnx(model, task, tmp_path / "onnx")
    onnx = OnnxTranslator(tmp_path / "onnx", threads=1)
    src = pad_batch(task.encode_pairs(SOURCES, SOURCES)[0])
    assert greedy_search(onnx, src, BOS, EOS, 12).tokens == greedy_search(model, src, BOS, EOS, 12).tokens
    ours, theirs = beam_search(model, src, BOS, EOS, 12, beam=4), beam_search(onnx, src, BOS, EOS, 12, beam=4)
    assert theirs.tokens == ours.tokens
    assert torch.allclose(torch.tensor(theirs.scores), torch.tensor(ours.scores), atol=1e-4)


def test_cli_export_and_errors(mt_ckpt, lm_ckpt, tmp_path, capsys):
    assert main(["export", "onnx", str(mt_ckpt), str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "tokenizer.json").is_file() and (tmp_path / "o" / "decoder.onnx").is_file()
    capsys.readouterr()
    assert main(["export", "onnx", str(lm_ckpt), str(tmp_path / "lm")]) == 2
    assert "translation checkpoints" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not a loopformer ONNX export"):
        OnnxTranslator(tmp_path)
    (tmp_path / "o" / "cross_kv.onnx").unlink()  # as an export by the first ONNX format left it
    with pytest.raises(CheckpointError, match="another loopformer version .*export it again"):
        OnnxTranslator(tmp_path / "o")
