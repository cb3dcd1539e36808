"""Property-based bad input: every failure is a documented error with a one-line message,
and nothing already saved is modified."""

import hashlib
import io
import shutil
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopformer import create_model
from loopformer.checkpoint import load_model, save_model, write_manifest
from loopformer.cli import main
from loopformer.config import ModelConfig, field_names, parse_override
from loopformer.errors import CheckpointError, ConfigError, LoopformerError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=12), st.lists(st.integers(), max_size=3))
keys = st.one_of(st.sampled_from(field_names()), st.text(min_size=1, max_size=10))


@FUZZ
@given(st.dictionaries(keys, values, max_size=6))
def test_random_configs_build_or_raise_config_error(data):
    try:
        ModelConfig.from_dict(data)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)


@FUZZ
@given(st.text(max_size=40))
def test_random_override_strings(text):
    try:
        parse_override(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)


def _one_line_cli(capsys, argv) -> int:
    code = main(argv)
    err = capsys.readouterr().err
    if code != 0:
        assert code == 2 and err.startswith("loopformer: error:") and err.count("\n") == 1, err
    return code


@FUZZ
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_=.-0123456789", max_size=20), max_size=3))
def test_cli_params_with_random_overrides(capsys, overrides):
    _one_line_cli(capsys, ["params", "ringformer-vit-tiny", *[o for o in overrides if not o.startswith("-")]])


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "m"
    save_model(create_model("ringformer-lm-small", d_model=32, n_heads=2, d_ff=64), folder)
    return folder


@FUZZ
@given(which=st.sampled_from(["config.json", "model.safetensors"]), data=st.data())
def test_damaged_checkpoint_bytes_are_refused(saved, tmp_path_factory, which, data):
    before = _digest(saved)
    copy = tmp_path_factory.mktemp("damaged") / "m"
    shutil.copytree(saved, copy)
    blob = bytearray((copy / which).read_bytes())
    how = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if how == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    else:
        blob = bytearray(data.draw(st.binary(max_size=200)))
    (copy / which).write_bytes(bytes(blob))
    try:
        model = load_model(copy)
    except CheckpointError as exc:
        assert "\n" not in str(exc)
    else:  # a flip inside JSON whitespace or an equivalent spelling may leave a valid file
        assert isinstance(model, torch.nn.Module)
    assert _digest(saved) == before


@pytest.fixture(scope="module")
def mt_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("mt") / "r"
    args = ["train", "translation", "--model", "ringformer", "--preset", "mt-small", "--out", str(out),
            "d_model=32", "n_heads=2", "d_ff=64", "n_layers=1", "signal_rank=4", "max_steps=1", "batch_tokens=512",
            "bpe_vocab_size=400", "val_bleu_sentences=2", "test_splits=", "progress=false"]
    assert main(args) == 0
    return out / "best"


lines = st.lists(st.one_of(st.just(""), st.text(max_size=30), st.text(alphabet="ab ", min_size=300, max_size=400)),
                 max_size=4)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines)
def test_translate_random_lines_keeps_line_count(mt_ckpt, capsys, monkeypatch, text_lines):
    before = _digest(mt_ckpt)
    text = "\n".join(x.replace("\n", " ").replace("\r", " ") for x in text_lines)
    raw = text.encode("utf-8", errors="surrogatepass") if text_lines else b""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw + (b"\n" if text_lines else b""))))
    code = main(["translate", str(mt_ckpt), "--beam", "1"])
    out, err = capsys.readouterr()
    if code == 0:
        assert len(out.split("\n")) - 1 == len(text_lines)
    else:
        assert code == 2 and err.count("loopformer: error:") == 1
    assert _digest(mt_ckpt) == before


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_classify_random_bytes(tmp_path_factory, capsys, blob):
    from loopformer.tasks.vision import VisionConfig, VisionTask

    folder = tmp_path_factory.mktemp("vis") / "m"
    save_model(create_model("ringformer-vit-tiny", d_model=32, n_heads=2, d_ff=64), folder)
    VisionTask(VisionConfig(mean=0.3, std=0.35), {}).save_assets(folder)
    write_manifest(folder)  # task.json joins the sealed files
    image = folder.parent / "x.png"
    image.write_bytes(blob)
    code = _one_line_cli(capsys, ["classify", str(folder), str(image)])
    assert code in (0, 2)


def test_errors_are_loopformer_errors():
    for cls in (ConfigError, CheckpointError):
        assert issubclass(cls, LoopformerError)
