"""What a resumed or evaluated run reads: its own saved settings (changed ones refused, budget
and execution ones allowed), the very corpus it trained on, and settings files without
YAML anchors."""

import hashlib
import json
import os

import pytest

from loopformer.cli import main
from loopformer.data.download import DataError
from loopformer.data.text import load_text
from loopformer.tasks.language_run import train_language

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 20
TINY = ["d_model=32", "n_heads=2", "d_ff=64", "context=64", "batch_size=2", "eval_windows=2", "progress=false",
        "eval_every=100"]
CONFIG = "train:\n  lr: 0.003\n  warmup_steps: 1\n  schedule: constant\n  weight_decay: 0.05\n"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("loopformer: error:") and err.count("\n") == 1, err
    return err


def train_cli(root, *extra) -> int:
    return main(["train", "language", "--model", "looped", "--preset", "lm-char", "--out", str(root / "run")]
                + TINY + list(extra))


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A 2-step run trained from ``tmp_path`` with a relative corpus path and a --config file."""
    (tmp_path / "corpus.txt").write_text(TEXT)
    (tmp_path / "run.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    assert train_cli(tmp_path, "dataset=corpus.txt", "--config", "run.yaml", "max_steps=2") == 0
    return tmp_path


def saved(root, name):
    return json.loads((root / "run" / "last" / name).read_text())


def test_the_corpus_is_stored_by_absolute_path_and_hash(run, tmp_path_factory, monkeypatch, capsys):
    task = saved(run, "task.json")
    assert task["dataset"] == str(run / "corpus.txt")
    assert task["dataset_sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # eval from another directory reads the same file
    capsys.readouterr()
    assert main(["eval", str(run / "run" / "best"), "--json"]) == 0
    val = json.loads((run / "run" / "results.json").read_text())["val"]["val_loss"]
    assert json.loads(capsys.readouterr().out)["val_loss"] == pytest.approx(val, rel=1e-6)


def test_a_changed_corpus_is_refused_by_eval_and_resume(run, capsys):
    (run / "corpus.txt").write_text(TEXT.replace("truth", "trick"))
    capsys.readouterr()
    assert main(["eval", str(run / "run" / "best")]) == 2
    assert "changed since the run was trained" in one_line_error(capsys)
    before = (run / "run" / "last" / "model.safetensors").read_bytes()
    assert train_cli(run, "--resume", "max_steps=3") == 2
    assert "changed since the run was trained" in one_line_error(capsys)
    assert (run / "run" / "last" / "model.safetensors").read_bytes() == before


def test_resume_without_the_config_keeps_the_saved_settings(run):
    assert train_cli(run, "--resume", "max_steps=3", "eval_every=1", "log_every=1") == 0
    train = saved(run, "trainer_state.json")["train_config"]
    assert saved(run, "trainer_state.json")["step"] == 3
    assert (train["lr"], train["schedule"], train["weight_decay"], train["warmup_steps"]) == (0.003, "constant",
                                                                                              0.05, 1)
    assert (train["max_steps"], train["eval_every"]) == (3, 1)  # budget settings may change


def test_resume_refuses_changed_settings_naming_each(run, capsys):
    (run / "other.txt").write_text(TEXT)
    before = (run / "run" / "last" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert train_cli(run, "--resume", "max_steps=3", "context=32", "batch_size=4", "dataset=other.txt",
                     "lr=0.01") == 2
    err = one_line_error(capsys)
    for part in ("context: trained with 64, given 32", "batch_size: trained with 2, given 4",
                 f"dataset: trained with '{run / 'corpus.txt'}', given '{run / 'other.txt'}'",
                 "lr: trained with 0.003, given 0.01"):
        assert part in err, err
    assert (run / "run" / "last" / "model.safetensors").read_bytes() == before
    # the same values, spelled again (a relative path included), are fine
    assert train_cli(run, "--resume", "max_steps=3", "context=64", "dataset=corpus.txt", "--config", "run.yaml") == 0


def test_resume_refuses_another_model_family(run, capsys):
    args = ["train", "language", "--model", "vanilla", "--preset", "lm-char", "--out", str(run / "run"), "--resume",
            "max_steps=3"]
    capsys.readouterr()
    assert main(args) == 2
    assert "arch: trained with 'looped', given 'vanilla'" in one_line_error(capsys)


def test_in_memory_runs_resume_without_a_hash(tmp_path):
    common = TINY + ["dataset=nowhere.txt"]
    train_language("looped", "lm-char", common + ["max_steps=1"], out=str(tmp_path / "r"), text=TEXT)
    assert "dataset_sha256" not in json.loads((tmp_path / "r" / "last" / "task.json").read_text())
    train_language("looped", "lm-char", common + ["max_steps=2"], out=str(tmp_path / "r"), text=TEXT, resume=True)


def test_text_files_must_be_regular(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        load_text(str(fifo))  # would block forever if opened
    with pytest.raises(DataError, match="is a directory"):
        load_text(str(tmp_path))


ANCHORED = [
    "lr: &x 0.002\n",
    "warmup_steps: &w 5\nlog_every: *w\n",
    "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
]


@pytest.mark.parametrize("text", ANCHORED)
def test_settings_files_refuse_anchors_and_aliases(tmp_path, capsys, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", "language", "--out", str(tmp_path / "run"), "--config", str(path)]) == 2
    err = one_line_error(capsys)
    assert f"cannot read config file {path}" in err and "anchors and aliases" in err
    assert not (tmp_path / "run").exists()


def test_settings_files_nested_too_deeply_or_too_big(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("lr: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert main(["train", "language", "--config", str(deep)]) == 2
    assert "nested too deeply" in one_line_error(capsys)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    assert main(["train", "language", "--config", str(big)]) == 2
    assert "bytes" in one_line_error(capsys)


def test_activation_checkpointing_may_change_on_resume(run):
    # it recomputes activations and changes no parameter, so it is an execution setting
    assert train_cli(run, "--resume", "max_steps=3", "activation_checkpointing=true") == 0
    assert saved(run, "trainer_state.json")["step"] == 3
