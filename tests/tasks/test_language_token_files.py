"""Language models trained from a prepared folder (``dataset=FOLDER``): training, eval,
generation without the folder, exact resume, and a changed folder refused."""

import hashlib
import json
import shutil

import pytest
import torch

from loopformer.cli import main
from loopformer.data.corpus_sources import Corpus
from loopformer.data.prepare_tokens import Prepare, prepare_text
from loopformer.data.token_files import TokenFile
from loopformer.tasks.language import LanguageConfig, LanguageTask
from loopformer.tasks.language_run import train_language

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n") * 30
TINY = ["d_model=32", "n_heads=2", "d_ff=64", "context=32", "batch_size=4", "eval_windows=4", "progress=false",
        "log_every=1", "eval_every=100"]


def prepared(root, kind="bpe", text=TEXT, force=False):
    (root / "corpus.txt").write_text(text)
    prepare_text(Corpus([str(root / "corpus.txt")]),
                 Prepare(root / "prep", tokenizer=kind, vocab_size=300, val_fraction=0.1, progress=False, force=force))
    return root / "prep"


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmtok")
    folder = prepared(root)
    out = root / "run"
    assert main(["train", "language", "--model", "spiral", "--preset", "lm-char", "--out", str(out),
                 f"dataset={folder}", "tokenizer=bpe", "max_steps=3"] + TINY) == 0
    return folder, out


def test_trains_from_the_folder_and_records_its_manifest(lm):
    folder, out = lm
    task = json.loads((out / "last" / "task.json").read_text())
    assert task["dataset"] == str(folder)
    assert task["dataset_sha256"] == hashlib.sha256((folder / "prepared.json").read_bytes()).hexdigest()
    assert (out / "best" / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()
    config = json.loads((out / "last" / "config.json").read_text())
    assert config.get("vocab_size", config.get("model", {}).get("vocab_size")) == TokenFile(folder).manifest[
        "vocab_size"]


def test_eval_and_generate(lm, tmp_path, capsys):
    folder, out = lm
    res = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out / "best"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["val_loss"] == pytest.approx(res["val"]["val_loss"], rel=1e-6) and ev["tokens"] == 4 * 32
    moved = tmp_path / "elsewhere"
    shutil.move(str(folder), moved)  # generation needs only the checkpoint
    try:
        assert main(["generate", str(out / "best"), "--prompt", "To be", "--max-new-tokens", "5"]) == 0
        assert capsys.readouterr().out.startswith("To be")
        assert main(["eval", str(out / "best")]) == 2
        assert f"dataset {folder} does not exist" in capsys.readouterr().err
    finally:
        shutil.move(str(moved), folder)


def test_a_changed_folder_is_refused_by_eval_and_resume(tmp_path, capsys):
    folder = prepared(tmp_path)
    out = tmp_path / "run"
    args = ["train", "language", "--model", "looped", "--preset", "lm-small", "--out", str(out), f"dataset={folder}",
            "tokenizer=bpe"] + TINY
    assert main(args + ["max_steps=1"]) == 0
    prepared(tmp_path, text=TEXT.replace("question", "answer"), force=True)
    capsys.readouterr()
    assert main(["eval", str(out / "best")]) == 2
    err = capsys.readouterr().err.strip()
    assert "changed since the run was trained" in err and "\n" not in err
    assert main(args + ["max_steps=2", "--resume"]) == 2
    assert "changed since the run was trained" in capsys.readouterr().err


def test_resume_from_the_folder_matches_an_uninterrupted_run(tmp_path):
    from loopformer.checkpoint import load_model

    folder = prepared(tmp_path, kind="char")
    common = TINY + [f"dataset={folder}", "dropout=0.1"]
    train_language("looped", "lm-small", common + ["max_steps=4"], out=str(tmp_path / "a"))
    train_language("looped", "lm-small", common + ["max_steps=2"], out=str(tmp_path / "b"))
    train_language("looped", "lm-small", common + ["max_steps=4"], out=str(tmp_path / "b"), resume=True)
    a = load_model(tmp_path / "a" / "last").state_dict()
    b = load_model(tmp_path / "b" / "last").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("setting, message", [("tokenizer=char", "holds bpe tokens; set tokenizer=bpe"),
                                              ("train_fraction=0.5", "train_fraction does not apply"),
                                              ("context=4096", "fewer than context + 1")])
def test_settings_that_contradict_the_folder(tmp_path, capsys, setting, message):
    folder = prepared(tmp_path)
    capsys.readouterr()
    args = ["train", "language", "--preset", "lm-small", "--out", str(tmp_path / "run"), f"dataset={folder}",
            "tokenizer=bpe", "max_steps=1"] + TINY + [setting]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_a_manifest(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "language", "--out", str(tmp_path / "run"), f"dataset={tmp_path / 'empty'}"] + TINY) == 2
    assert "holds no prepared.json" in capsys.readouterr().err


def test_batches_and_validation_read_only_their_windows(tmp_path, monkeypatch):
    folder = prepared(tmp_path, kind="char")
    task = LanguageTask.prepare(LanguageConfig(dataset=str(folder), context=16, batch_size=3, eval_batch_size=5))
    reads = []
    original = TokenFile.windows_at
    monkeypatch.setattr(TokenFile, "windows_at", lambda self, starts, n: reads.append((len(starts), n))
                        or original(self, starts, n))
    batch = task.make_batch(task.batch_plan(0, seed=1)[0])
    assert batch["tokens"].shape == (3, 16) and torch.equal(batch["tokens"][:, 1:], batch["labels"][:, :-1])
    assert reads == [(3, 17)]
    windows = list(task.eval_batches(5))
    assert max(reads[1:])[0] <= 5 and len(reads) == 1 + len(windows)
    val = TokenFile(folder).windows("val", [16], 17)[0]
    assert torch.equal(torch.cat(windows)[1], val) and len(torch.cat(windows)) == task.eval_count()
