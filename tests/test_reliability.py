"""User mistakes around runs and checkpoints: one-line errors, nothing saved is touched."""

import json
import os

import pytest

from loopformer.checkpoint import write_manifest
from loopformer.cli import main

TEXT = "A little learning is a dangerous thing; drink deep, or taste not the Pierian spring. " * 30
LM = ["d_model=32", "n_heads=2", "d_ff=64", "context=16", "batch_size=4", "eval_windows=2", "progress=false",
      "max_steps=2"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("loopformer: error:") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "c.txt").write_text(TEXT)
    assert main(["train", "language", "--model", "ringformer", "--preset", "lm-char", "--out", str(root / "run"),
                 f"dataset={root / 'c.txt'}"] + LM) == 0
    return root


def test_unwritable_output_directory(tmp_path, capsys, lm_run):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "language", "--model", "vanilla", "--preset", "lm-char", "--out", str(blocker / "run"),
                 f"dataset={lm_run / 'c.txt'}"] + LM) == 2
    assert "cannot write to the run directory" in one_line_error(capsys)
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert main(["train", "language", "--preset", "lm-char", "--out", str(locked / "run"),
                         f"dataset={lm_run / 'c.txt'}"] + LM) == 2
        finally:
            locked.chmod(0o700)


def test_tokenizer_and_model_vocabulary_mismatch(lm_run, capsys, tmp_path):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(lm_run / "run" / "best", ckpt)
    chars = json.loads((ckpt / "chars.json").read_text())
    chars["chars"] = chars["chars"][:-3]
    (ckpt / "chars.json").write_text(json.dumps(chars))
    write_manifest(ckpt)  # a consistent checkpoint whose parts disagree, not a damaged one
    assert main(["generate", str(ckpt), "--prompt", "A", "--max-new-tokens", "3"]) == 2
    assert "tokenizer has" in one_line_error(capsys)


def test_overlong_prompt_is_refused(lm_run, capsys):
    assert main(["generate", str(lm_run / "run" / "best"), "--prompt", "A" * 40]) == 2
    assert "context" in one_line_error(capsys)


def test_resume_with_different_model_settings_is_refused(lm_run, capsys):
    before = (lm_run / "run" / "last" / "model.safetensors").read_bytes()
    assert main(["train", "language", "--model", "ringformer", "--preset", "lm-char", "--out", str(lm_run / "run"),
                 "--resume", f"dataset={lm_run / 'c.txt'}", "d_model=48"] + LM[1:]) == 2
    assert "different model config" in one_line_error(capsys)
    assert (lm_run / "run" / "last" / "model.safetensors").read_bytes() == before


def test_bad_yaml_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    assert main(["train", "vision", "--config", str(bad)]) == 2
    assert "cannot read config file" in one_line_error(capsys)
    bad.write_text("- just\n- a list\n")
    assert main(["train", "vision", "--config", str(bad)]) == 2
    assert "mapping" in one_line_error(capsys)
    assert main(["train", "vision", "--config", str(tmp_path / "missing.yaml")]) == 2
    one_line_error(capsys)
