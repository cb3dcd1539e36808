"""Argument ranges, wrong-task checkpoints, non-regular inputs and outputs checked before
the work: each mistake is one ``loopformer: error:`` line with exit status 2."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys

import pytest

from loopformer.cli import main
from loopformer.arguments import MAX_BEAM, MAX_THREADS, count, finite_float, positions, temperature
from loopformer.cli.common import STDIN_LIMIT, read_stdin_text
from loopformer.errors import ConfigError


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("loopformer: error: "), err
    assert "Traceback" not in err
    return err


# --- the type= helpers --------------------------------------------------------------------


def test_count_accepts_its_range_and_refuses_the_rest():
    beam = count(1, MAX_BEAM)
    assert beam("1") == 1 and beam(str(MAX_BEAM)) == MAX_BEAM and beam(" 7 ") == 7
    for text, message in [("0", ">= 1"), ("-1", ">= 1"), (str(MAX_BEAM + 1), f"<= {MAX_BEAM}"), ("x", "integer"),
                          ("1.5", "integer"), ("nan", "integer"), ("9" * 5000, "integer"), ("", "integer")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            beam(text)


def test_long_inputs_are_shortened_in_messages():
    with pytest.raises(argparse.ArgumentTypeError) as info:
        count(0, 10)("9" * 300)
    assert len(str(info.value)) < 80


@pytest.mark.parametrize("text", ["nan", "-nan", "inf", "-inf", "1e400", "x", ""])
def test_finite_float_refuses_nan_infinities_and_junk(text):
    with pytest.raises(argparse.ArgumentTypeError):
        finite_float(0.0, 10.0)(text)


def test_finite_float_range():
    lp = finite_float(0.0, 10.0)
    assert lp("0") == 0.0 and lp("10") == 10.0 and lp("0.6") == 0.6
    for text in ("-0.1", "10.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            lp(text)


def test_temperature_is_zero_or_large_enough_not_to_overflow():
    assert temperature("0") == 0.0 and temperature("0.8") == 0.8 and temperature("100") == 100.0
    for text in ("1e-9", "5e-324", "-1", "101", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            temperature(text)


def test_positions_list():
    assert positions("64,512") == (64, 512)
    for text in ("", "0", "1,a", "4," * 20, str(1 << 30)):
        with pytest.raises(argparse.ArgumentTypeError):
            positions(text)


# --- the command line: one line, exit 2, before any work -----------------------------------


@pytest.mark.parametrize("argv, message", [
    (["translate", "ckpt", "--beam", "-1"], "--beam must be >= 1"),
    (["translate", "ckpt", "--beam", "100000"], f"--beam must be <= {MAX_BEAM}"),
    (["translate", "ckpt", "--threads", "100000"], f"--threads must be <= {MAX_THREADS}"),
    (["translate", "ckpt", "--threads", "-1"], "--threads must be >= 1"),
    (["translate", "ckpt", "--length-penalty", "nan"], "finite"),
    (["eval", "ckpt", "--beam", "0"], "--beam must be >= 1"),
    (["eval", "ckpt", "--length-penalty", "-1"], "--length-penalty must be >= 0"),
    (["generate", "ckpt", "--temperature", "nan"], "finite"),
    (["generate", "ckpt", "--temperature", "1e-30"], "greedy"),
    (["generate", "ckpt", "--top-k", "0"], "--top-k must be >= 1"),
    (["generate", "ckpt", "--max-new-tokens", "-1"], "--max-new-tokens must be >= 0"),
    (["generate", "ckpt", "--seed", str(2**64)], "--seed must be <="),
    (["classify", "ckpt", "x.png", "--top-k", "-1"], "--top-k must be >= 1"),
    (["analyze", "signals", "ckpt", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["analyze", "signals", "ckpt", "--max-batches", "0"], "--max-batches must be >= 1"),
    (["demo", "vit-tiny", "--batch", "100000"], "--batch must be <="),
    (["params", "vit-tiny", "--vocab-size", "-5"], "--vocab-size must be >= 1"),
    (["bench", "vit-tiny", "--repeats", "100000"], "--repeats must be <="),
    (["bench", "vit-tiny", "--positions", "1,a"], "--positions"),
    (["nope"], "invalid choice"),
    (["eval"], "required"),
    (["list", "--nope"], "unrecognized"),
])
def test_argument_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert message in err, err


def test_help_still_works(capsys):
    assert main(["translate", "--help"]) == 0
    assert "--beam" in capsys.readouterr().out


def test_bench_size_products_are_bounded(capsys):
    assert main(["bench", "vit-tiny", "--batch", "256", "--context", "4096"]) == 2
    assert "tokens a bench step may hold" in one_line_error(capsys)
    assert main(["bench", "vit-tiny", "--batch", "64", "--beam", "64"]) == 2
    assert "hypotheses" in one_line_error(capsys)


def test_demo_length_is_checked_against_max_len(capsys):
    assert main(["demo", "ringformer-lm-char", "max_len=32", "--length", "64"]) == 2
    assert "max_len" in one_line_error(capsys)


# --- checkpoints of the wrong task, FIFOs, files where folders belong ------------------------


def _fake_checkpoint(folder, task: str):
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps({"task": task}))
    return str(folder)


@pytest.mark.parametrize("command, task, wanted", [
    (["translate"], "language", "not a translation checkpoint (it holds a language run)"),
    (["translate"], "vision", "not a translation checkpoint (it holds a vision run)"),
    (["generate", "--prompt", "x"], "translation", "not a language-model checkpoint"),
    (["classify"], "language", "not a vision checkpoint"),
])
def test_wrong_task_names_the_task_found(tmp_path, capsys, monkeypatch, command, task, wanted):
    ckpt = _fake_checkpoint(tmp_path / "ckpt", task)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Hallo\n")))
    argv = [command[0], ckpt, *command[1:]] + (["x.png"] if command[0] == "classify" else [])
    assert main(argv) == 2
    assert wanted in one_line_error(capsys)


@pytest.mark.parametrize("argv", [["translate", "{}"], ["eval", "{}"], ["generate", "{}", "--prompt", "x"],
                                  ["classify", "{}", "x.png"], ["analyze", "signals", "{}"], ["params", "{}"]])
def test_a_fifo_or_file_as_checkpoint_is_refused_without_opening_it(tmp_path, capsys, argv):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    plain = tmp_path / "plain"
    plain.write_text("x")
    for target in (fifo, plain):
        assert main([a.replace("{}", str(target)) for a in argv]) == 2
        assert "not a checkpoint directory" in one_line_error(capsys)


def test_images_that_are_fifos_folders_or_huge_are_refused(tmp_path):
    from PIL import Image

    from loopformer.data.download import DataError
    from loopformer.data.images import MAX_IMAGE_PIXELS, load_image

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        load_image(tmp_path / "fifo", 28)
    with pytest.raises(DataError, match="directory"):
        load_image(tmp_path / "folder", 28)
    side = math.isqrt(MAX_IMAGE_PIXELS) + 1
    Image.new("1", (side, side)).save(tmp_path / "big.png")  # 1-bit: a small file, many pixels
    with pytest.raises(DataError, match="pixels"):
        load_image(tmp_path / "big.png", 28)
    Image.new("L", (5000, 1), 255).save(tmp_path / "thin.png")  # padded to a square only after shrinking
    assert load_image(tmp_path / "thin.png", 28).shape == (1, 28, 28)


# --- outputs are checked before the work -----------------------------------------------------


def test_confusion_path_is_checked_before_evaluating(tmp_path, capsys):
    ckpt = _fake_checkpoint(tmp_path / "ckpt", "vision")  # no weights: loading would fail, later
    (tmp_path / "file").write_text("x")
    assert main(["eval", ckpt, "--confusion", str(tmp_path / "file" / "cm.png")]) == 2
    assert "cannot write confusion matrix" in one_line_error(capsys)
    assert main(["eval", ckpt, "--confusion", str(tmp_path)]) == 2
    assert "is a directory" in one_line_error(capsys)


def test_plot_and_bench_json_are_checked_before_the_work(tmp_path, capsys):
    a, b = _fake_checkpoint(tmp_path / "a", "vision"), _fake_checkpoint(tmp_path / "b", "vision")
    (tmp_path / "file").write_text("x")
    assert main(["analyze", "cka", a, b, "--plot", str(tmp_path / "file" / "cka.png")]) == 2
    assert "cannot write figure" in one_line_error(capsys)
    assert main(["analyze", "signals", a, "--plot", str(tmp_path / "s.png")]) == 2
    assert "draws no figure" in one_line_error(capsys)
    assert main(["bench", "vit-tiny", "--json", str(tmp_path / "file" / "b.json")]) == 2
    assert "cannot write bench result" in one_line_error(capsys)


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vis") / "run"
    assert main(["train", "vision", "--model", "vanilla", "--preset", "vit-tiny", "--out", str(out), "d_model=32",
                 "n_heads=2", "d_ff=64", "n_layers=1", "max_steps=1", "batch_size=4", "val_size=50",
                 "test_split=val", "eval_every=100", "eval_batch_size=50", "progress=false"]) == 0
    return out


def test_unwritable_default_confusion_location_is_skipped_with_a_warning(vision_run, monkeypatch, capsys):
    from loopformer import files

    capsys.readouterr()
    real = files.check_writable

    def read_only(path, what, error):
        if os.path.basename(path).startswith("confusion-"):
            raise error(f"cannot write {what} {path}: Read-only file system")
        return real(path, what, error)

    monkeypatch.setattr(files, "check_writable", read_only)
    assert main(["eval", str(vision_run / "best"), "--split", "val"]) == 0
    out, err = capsys.readouterr()
    assert "val accuracy:" in out and "confusion matrix:" not in out
    assert err.startswith("loopformer: warning: cannot write confusion matrix") and err.count("\n") == 1
    assert not list(vision_run.glob("confusion-*"))
    assert main(["eval", str(vision_run / "best"), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["confusion_png"] is None


# --- standard input and the dataset cache ----------------------------------------------------


def test_standard_input_is_bounded_and_may_be_closed(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * (STDIN_LIMIT + 1))))
    with pytest.raises(ConfigError, match="MiB"):
        read_stdin_text()
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(ConfigError, match="closed"):
        read_stdin_text()


def test_unwritable_cache_is_one_line(tmp_path, monkeypatch):
    import tempfile

    from loopformer.data import download as dl

    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "file"))  # a file where the cache folder belongs
    with pytest.raises(dl.DataError, match=dl.CACHE_ENV):
        dl.fetch("tinyshakespeare", "input.txt")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # root ignores permission bits; fake a read-only cache
    with pytest.raises(dl.DataError, match="Permission denied"):
        dl.fetch("tinyshakespeare", "input.txt")


def test_a_fifo_in_the_cache_is_not_read(tmp_path, monkeypatch):
    from loopformer.data import download as dl

    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path))
    (tmp_path / "tinyshakespeare").mkdir()
    os.mkfifo(tmp_path / "tinyshakespeare" / "input.txt")
    monkeypatch.setattr(dl, "download", lambda remote, target, timeout=60.0: target)  # no network in tests
    assert dl.fetch("tinyshakespeare", "input.txt").name == "input.txt"  # not hashed: fetched again
