"""Checkpoint directories: exact round trips, atomic saves, and refusal of every corruption."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import loopformer.checkpoint as checkpoint
from loopformer import CheckpointError, build_model, create_model, load_model, save_model

TINY = dict(d_model=32, n_heads=2, d_ff=64, n_layers=2)
CKPT_FILES = {"config.json", "model.safetensors", "manifest.json"}


def tiny(name: str, **overrides):
    kwargs = dict(TINY)
    if "vit" not in name:
        kwargs["vocab_size"] = 40
    kwargs.update(overrides)
    return create_model(name, **kwargs)


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter away from its initial value (LayerNorm ones, zero biases,
    1e-6 signals...), so that a tensor the loader silently skipped changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def example_inputs(model) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    g = torch.Generator().manual_seed(1)
    if cfg.task == "vit":
        return (torch.randn(2, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g),)
    src = torch.randint(1, cfg.vocab_size, (2, 7), generator=g)
    src[1, -2:] = cfg.pad_id  # some padding, to exercise the masks
    if cfg.task == "seq2seq":
        return src, torch.randint(1, cfg.target_vocab_size, (2, 5), generator=g)
    return (src,)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- round trips ----------------------------------------------------------------------------


ROUND_TRIP_CASES = [
    ("ringformer-mt-small", {}),
    ("ringformer-mt-small", dict(tie_embeddings=True)),
    ("vanilla-mt-small", {}),
    ("ringformer-vit-tiny", {}),
    ("vit-tiny", {}),
    ("ringformer-lm-small", {}),
    ("ringformer-lm-small", dict(tie_embeddings=True)),
    ("universal-lm-small", dict(tie_embeddings=True)),
]


@pytest.mark.parametrize("name, overrides", ROUND_TRIP_CASES, ids=lambda x: str(x))
def test_round_trip_is_bit_identical(tmp_path, name, overrides):
    torch.manual_seed(0)
    model = perturbed(tiny(name, **overrides))
    inputs = example_inputs(model)
    with torch.no_grad():
        expected = model(*inputs)

    folder = save_model(model, tmp_path / "ckpt")
    assert folder == tmp_path / "ckpt"
    assert files_in(folder) == CKPT_FILES  # no temporary files left behind

    torch.manual_seed(123)  # the loader's fresh init differs from the saved weights
    loaded = load_model(folder).eval()
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    with torch.no_grad():
        got = loaded(*inputs)
    assert torch.equal(got, expected)

    sd_a, sd_b = model.state_dict(), loaded.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k

    # sanity: a freshly built model of the same config gives a different output,
    # so the equality above really depends on the weights being loaded
    with torch.no_grad():
        fresh = build_model(model.config).eval()(*inputs)
    assert not torch.equal(fresh, expected)


def test_tied_decoder_stays_tied_and_is_stored_once(tmp_path):
    from safetensors.torch import load_file

    model = perturbed(tiny("ringformer-lm-small", tie_embeddings=True))
    assert model.output.weight is model.input.embed.weight
    save_model(model, tmp_path / "ckpt")
    stored = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert ("input.embed.weight" in stored) != ("output.weight" in stored)

    loaded = load_model(tmp_path / "ckpt")
    assert loaded.output.weight is loaded.input.embed.weight
    assert torch.equal(loaded.output.weight, model.output.weight)


def test_tied_seq2seq_stays_tied(tmp_path):
    model = perturbed(tiny("ringformer-mt-small", tie_embeddings=True))
    loaded = load_model(save_model(model, tmp_path / "ckpt"))
    assert loaded.output.weight is loaded.tgt_input.embed.weight is loaded.src_input.embed.weight
    assert torch.equal(loaded.src_input.embed.weight, model.src_input.embed.weight)


def test_config_json_contents(tmp_path):
    model = tiny("ringformer-lm-small")
    folder = save_model(model, str(tmp_path / "a" / "b"), extra={"step": 7})  # str path, nested dirs
    meta = json.loads((folder / "config.json").read_text())
    assert meta["format"] == "loopformer-model"
    assert meta["format_version"] == 2
    assert meta["model"] == model.config.to_dict()
    assert meta["weights_sha256"] == sha256(folder / "model.safetensors")
    assert meta["extra"] == {"step": 7}


def test_save_over_existing_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    a = perturbed(tiny("ringformer-lm-small"), seed=1)
    save_model(a, folder)
    b = perturbed(tiny("ringformer-lm-small", d_model=48, n_heads=4), seed=2)
    save_model(b, folder)
    assert files_in(folder) == CKPT_FILES

    loaded = load_model(folder).eval()
    assert loaded.config == b.config
    inputs = example_inputs(b)
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), b(*inputs))


def test_loading_does_not_use_pickle(tmp_path, monkeypatch):
    model = perturbed(tiny("ringformer-vit-tiny"))
    folder = save_model(model, tmp_path / "ckpt")

    def forbidden(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    loaded = load_model(folder).eval()
    inputs = example_inputs(model)
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), model(*inputs))


class _Payload:
    """Unpickling this would create a directory: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pickle_payload_in_weights_is_refused_not_executed(tmp_path):
    folder = save_model(tiny("ringformer-lm-small"), tmp_path / "ckpt")
    marker = tmp_path / "code-was-executed"
    w = folder / "model.safetensors"
    w.write_bytes(pickle.dumps({"input.embed.weight": _Payload(marker)}))
    _set_weights_sha(folder)  # the checksum alone must not be what protects us
    with pytest.raises(CheckpointError) as info:
        load_model(folder)
    assert str(w) in str(info.value)
    assert not marker.exists()


# --- corruptions ----------------------------------------------------------------------------


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return save_model(perturbed(tiny("ringformer-lm-small")), tmp_path / "ckpt")


def _set_weights_sha(folder: Path) -> None:
    meta = json.loads((folder / "config.json").read_text())
    meta["weights_sha256"] = sha256(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(meta))


def _edit_meta(folder: Path, edit) -> None:
    meta = json.loads((folder / "config.json").read_text())
    edit(meta)
    (folder / "config.json").write_text(json.dumps(meta))


def _refused(folder, offending: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(folder)
    msg = str(info.value)
    assert str(offending) in msg, msg
    assert "\n" not in msg  # one-line message
    return msg


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    msg = _refused(missing, missing)
    assert "does not exist" in msg


def test_path_is_a_file(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    _refused(f, f)


def test_missing_config_json(ckpt):
    (ckpt / "config.json").unlink()
    assert "missing" in _refused(ckpt, ckpt / "config.json")


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"format": "loopformer-model", ', b"\xff\xfe\x00garbage"],
    ids=["empty", "garbage", "truncated", "not-utf8"],
)
def test_config_json_not_json(ckpt, content):
    (ckpt / "config.json").write_bytes(content)
    assert "corrupt" in _refused(ckpt, ckpt / "config.json")


def test_config_json_deeply_nested(ckpt):
    (ckpt / "config.json").write_text("[" * 100_000)
    _refused(ckpt, ckpt / "config.json")


@pytest.mark.parametrize("content", ["[]", "null", '"loopformer-model"', '{"format": "other"}'])
def test_config_json_not_a_loopformer_config(ckpt, content):
    (ckpt / "config.json").write_text(content)
    _refused(ckpt, ckpt / "config.json")


def test_config_json_unknown_model_key(ckpt):
    _edit_meta(ckpt, lambda m: m["model"].update(mystery_knob=3))
    msg = _refused(ckpt, ckpt / "config.json")
    assert "mystery_knob" in msg


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["model"].update(d_model="x"),
        lambda m: m["model"].update(n_heads=5),
        lambda m: m.pop("model"),
        lambda m: m.update(model=[1, 2]),
    ],
    ids=["wrong-type", "invalid-value", "no-model", "model-not-mapping"],
)
def test_config_json_invalid_model(ckpt, edit):
    _edit_meta(ckpt, edit)
    _refused(ckpt, ckpt / "config.json")


@pytest.mark.parametrize("version", [3, 0, None, "1", True])
def test_wrong_format_version(ckpt, version):
    _edit_meta(ckpt, lambda m: m.update(format_version=version))
    assert "format version" in _refused(ckpt, ckpt / "config.json")


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    assert "missing" in _refused(ckpt, ckpt / "model.safetensors")


def test_truncated_weights(ckpt):
    w = ckpt / "model.safetensors"
    blob = w.read_bytes()
    w.write_bytes(blob[: len(blob) // 2])
    _refused(ckpt, w)


def test_truncated_weights_with_matching_sha_still_refused(ckpt):
    w = ckpt / "model.safetensors"
    blob = w.read_bytes()
    w.write_bytes(blob[: len(blob) // 2])
    _set_weights_sha(ckpt)
    _refused(ckpt, w)


@pytest.mark.parametrize("where", [0.01, 0.5, 0.999])
def test_one_flipped_byte(ckpt, where):
    w = ckpt / "model.safetensors"
    blob = bytearray(w.read_bytes())
    i = int(len(blob) * where)
    blob[i] ^= 0x01
    w.write_bytes(bytes(blob))
    assert "corrupt" in _refused(ckpt, w)


def test_missing_checksum(ckpt):
    _edit_meta(ckpt, lambda m: m.pop("weights_sha256"))
    _refused(ckpt, ckpt / "model.safetensors")


def test_weights_of_a_different_size_model(tmp_path):
    dir1 = save_model(tiny("ringformer-lm-small", d_model=32), tmp_path / "a")
    dir2 = save_model(tiny("ringformer-lm-small", d_model=48, n_heads=4), tmp_path / "b")
    shutil.copyfile(dir2 / "model.safetensors", dir1 / "model.safetensors")
    _set_weights_sha(dir1)  # checksum now agrees: only the shapes give it away
    msg = _refused(dir1, dir1 / "model.safetensors")
    assert "shape" in msg or "mismatch" in msg


def test_weights_of_a_different_model_family(tmp_path):
    dir1 = save_model(tiny("ringformer-lm-small"), tmp_path / "lm")
    dir2 = save_model(tiny("ringformer-vit-tiny"), tmp_path / "vit")
    shutil.copyfile(dir2 / "model.safetensors", dir1 / "model.safetensors")
    _set_weights_sha(dir1)
    assert "does not match" in _refused(dir1, dir1 / "model.safetensors")


# --- failed saves ----------------------------------------------------------------------------


def test_save_under_a_regular_file_raises_checkpoint_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("hello")
    target = blocker / "ckpt"
    with pytest.raises(CheckpointError) as info:
        save_model(tiny("ringformer-lm-small"), target)
    assert str(target) in str(info.value)
    assert blocker.read_text() == "hello"


def test_failed_write_leaves_no_temp_files(tmp_path, monkeypatch):
    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", no_space)
    folder = tmp_path / "ckpt"
    with pytest.raises(CheckpointError) as info:
        save_model(tiny("ringformer-lm-small"), folder)
    assert str(folder) in str(info.value)
    assert files_in(folder) == set()


def test_interrupted_overwrite_is_detected(tmp_path, monkeypatch):
    """New weights written but config.json not: the old config's checksum refuses them."""
    folder = save_model(perturbed(tiny("ringformer-lm-small"), seed=1), tmp_path / "ckpt")
    real_write = checkpoint.atomic_write_bytes

    def fail_on_config(path, data):
        if Path(path).name == "config.json":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", fail_on_config)
    with pytest.raises(CheckpointError):
        save_model(perturbed(tiny("ringformer-lm-small"), seed=2), folder)
    monkeypatch.undo()

    assert files_in(folder) == CKPT_FILES
    _refused(folder, folder / "model.safetensors")
