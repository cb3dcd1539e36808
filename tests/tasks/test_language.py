"""Language-model data, task, CLI (train / eval / generate) and exact resume."""

import json

import pytest
import torch

from loopformer.cli import main
from loopformer.data.download import DataError
from loopformer.data.text import CharTokenizer, load_text, split_text
from loopformer.tasks.language import LanguageConfig, LanguageTask
from loopformer.tasks.language_run import train_language

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40)
TINY = ["d_model=32", "n_heads=2", "d_ff=64", "context=32", "batch_size=4", "eval_windows=4", "progress=false",
        "log_every=1", "eval_every=100"]


def test_tiny_shakespeare_split_follows_nanogpt():
    text = load_text("tinyshakespeare")
    assert len(text) == 1_115_394
    train, val = split_text(text)
    assert len(train) == 1_003_854 and train + val == text
    assert CharTokenizer.from_text(text).vocab_size == 65


def test_char_tokenizer_round_trip_and_errors(tmp_path):
    tok = CharTokenizer.from_text("hello world")
    assert tok.decode(tok.encode("low hel")) == "low hel"
    with pytest.raises(DataError, match="not in this model's vocabulary"):
        tok.encode("hello!")
    tok.save(tmp_path)
    assert CharTokenizer.load(tmp_path).chars == tok.chars


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"caf\xe9", "not UTF-8")])
def test_bad_text_files(tmp_path, content, message):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_text(str(path))
    with pytest.raises(DataError, match="neither a built-in corpus"):
        load_text(str(tmp_path / "missing.txt"))


def test_windows_are_shifted_by_one_and_seeded():
    task = LanguageTask.prepare(LanguageConfig(context=16, batch_size=3), TEXT)
    plan = task.batch_plan(0, seed=2)
    a, b = task.make_batch(plan[0]), task.make_batch(plan[0])
    assert torch.equal(a["tokens"], b["tokens"]) and a["tokens"].shape == (3, 16)
    assert torch.equal(a["tokens"][:, 1:], a["labels"][:, :-1])
    assert plan != task.batch_plan(1, seed=2)
    windows = task.eval_windows()
    val = task.ids("val")
    assert torch.equal(windows[1, 0], val[16]) and windows.shape[1] == 17


def test_bpe_tokenizer_option():
    task = LanguageTask.prepare(LanguageConfig(tokenizer="bpe", bpe_vocab_size=300, context=8), TEXT)
    assert task.tok.vocab_size <= 300 and len(task.ids("train")) < len(split_text(TEXT)[0])


@pytest.fixture(scope="module")
def lm_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    out = root / "run"
    assert main(["train", "language", "--model", "spiral", "--preset", "lm-char", "--out", str(out),
                 f"dataset={corpus}", "max_steps=3"] + TINY) == 0
    return out


def test_cli_train_eval_generate(lm_ckpt, capsys):
    res = json.loads((lm_ckpt / "results.json").read_text())
    assert res["model"] == "spiral-lm-char" and res["val"]["val_loss"] > 0
    capsys.readouterr()
    assert main(["eval", str(lm_ckpt / "best"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["val_loss"] == pytest.approx(res["val"]["val_loss"], rel=1e-6)
    assert main(["generate", str(lm_ckpt / "best"), "--prompt", "To be", "--max-new-tokens", "20"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("To be") and len(text.rstrip("\n")) == 25


def test_cli_generate_errors(lm_ckpt, tmp_path, capsys):
    assert main(["generate", str(lm_ckpt / "best"), "--prompt", ""]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["generate", str(lm_ckpt / "best"), "--prompt", "Zebra \u2603"]) == 2
    assert "vocabulary" in capsys.readouterr().err
    assert main(["generate", str(lm_ckpt / "best"), "--prompt", "To", "--temperature", "-1"]) == 2
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2
    assert "not a language-model checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["vanilla", "spiral", "ringformer"])
def test_resume_matches_an_uninterrupted_run(tmp_path, model):
    from loopformer.checkpoint import load_model

    common = TINY + ["dropout=0.1"]
    train_language(model, "lm-char", common + ["max_steps=4"], out=str(tmp_path / "a"), text=TEXT)
    train_language(model, "lm-char", common + ["max_steps=2"], out=str(tmp_path / "b"), text=TEXT)
    train_language(model, "lm-char", common + ["max_steps=4"], out=str(tmp_path / "b"), resume=True, text=TEXT)
    a = load_model(tmp_path / "a" / "last").state_dict()
    b = load_model(tmp_path / "b" / "last").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
