"""Checkpoint integrity: declared shapes and sizes are checked against each other before
anything is allocated, the weights are hashed in a stream, and every file of a checkpoint
is covered by its manifest's sha256."""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

from loopformer import CheckpointError, create_model, load_model, save_model
from loopformer.checkpoint import MANIFEST_FILE, READ_FILES, verify_manifest
from loopformer.cli import main
from loopformer.data.text import CharTokenizer
from loopformer.data.tokenizer import BPETokenizer
from loopformer.tasks.task_file import read_task_config

TEXT = "A little learning is a dangerous thing; drink deep, or taste not the Pierian spring. " * 30
LM = ["d_model=32", "n_heads=2", "d_ff=64", "context=16", "batch_size=4", "eval_windows=2", "progress=false",
      "max_steps=2"]
TINY = dict(d_model=32, n_heads=2, d_ff=64, n_layers=2, vocab_size=40)
# peak-memory growth allowed while refusing: the config below would allocate ~600 MB and a
# 3 GB file 3 GB; the meta device costs ~70 MB once (torch imports torch._dynamo for it)
GROWTH_LIMIT_KB = 200 * 1024


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "c.txt").write_text(TEXT)
    assert main(["train", "language", "--model", "ringformer", "--preset", "lm-char", "--out", str(root / "run"),
                 f"dataset={root / 'c.txt'}"] + LM) == 0
    return root / "run"


@pytest.fixture
def last(lm_run, tmp_path):
    """A private copy of a trainer checkpoint: model, task, tokenizer and training state."""
    return shutil.copytree(lm_run / "last", tmp_path / "last")


def _refused(folder, offending) -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(folder)
    msg = str(info.value)
    assert str(offending) in msg and "\n" not in msg, msg
    return msg


def _manifest(folder) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text())


# --- the manifest ------------------------------------------------------------------------------


def test_every_file_the_library_reads_is_known_to_the_manifest_check():
    from loopformer.checkpoint import CONFIG_FILE, WEIGHTS_FILE
    from loopformer.data.tokenizer import FILE_NAME
    from loopformer.tasks.task_file import TASK_FILE
    from loopformer.train.state import STATE_JSON, STATE_TENSORS

    names = {CONFIG_FILE, WEIGHTS_FILE, FILE_NAME, CharTokenizer.FILE_NAME, TASK_FILE, STATE_JSON, STATE_TENSORS}
    assert names == set(READ_FILES)


def test_a_trainer_checkpoint_lists_every_file_with_size_and_sha256(last):
    import hashlib

    listed = _manifest(last)
    assert listed["format"] == "loopformer-manifest"
    assert set(listed["files"]) == {p.name for p in last.iterdir()} - {MANIFEST_FILE}
    for name, entry in listed["files"].items():
        blob = (last / name).read_bytes()
        assert entry == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    assert set(verify_manifest(last)) == set(listed["files"])


def test_save_model_seals_config_and_weights_and_unsealed_folders_still_load(tmp_path):
    folder = save_model(create_model("ringformer-lm-small", **TINY), tmp_path / "m")
    assert set(_manifest(folder)["files"]) == {"config.json", "model.safetensors"}
    (folder / MANIFEST_FILE).unlink()  # as written by earlier versions: the config's hash still guards the weights
    assert verify_manifest(folder) is None
    assert load_model(folder) is not None


FILES = ["config.json", "model.safetensors", "task.json", "chars.json", "trainer_state.json",
         "trainer_state.safetensors"]


@pytest.mark.parametrize("name", FILES[2:])  # config.json and the weights: tests/test_checkpoint.py
@pytest.mark.parametrize("where", [0.5, 0.95])
def test_a_flipped_byte_in_any_file_is_refused_naming_it(last, name, where):
    path = last / name
    blob = bytearray(path.read_bytes())
    blob[int(len(blob) * where)] ^= 0x01
    path.write_bytes(bytes(blob))
    _refused(last, path)


@pytest.mark.parametrize("name", FILES)
def test_a_file_left_out_of_the_manifest_is_refused(last, name):
    manifest = _manifest(last)
    del manifest["files"][name]
    (last / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert "not listed" in _refused(last, last / name)


@pytest.mark.parametrize("name", ["task.json", "trainer_state.safetensors"])
def test_a_listed_file_that_is_gone_is_refused(last, name):
    (last / name).unlink()
    assert "missing" in _refused(last, last / name)


@pytest.mark.parametrize("content", [
    "{", "[]", '{"format": "other", "files": {}}',
    '{"format": "loopformer-manifest", "files": {"../config.json": {"bytes": 1, "sha256": "%s"}}}' % ("0" * 64),
    '{"format": "loopformer-manifest", "files": {"config.json": {"bytes": -1, "sha256": "%s"}}}' % ("0" * 64),
    '{"format": "loopformer-manifest", "files": {"config.json": {"bytes": 1, "sha256": "xyz"}}}',
], ids=["truncated", "list", "other-format", "path-outside", "negative-size", "bad-sha"])
def test_a_damaged_manifest_is_refused_naming_it(last, content):
    (last / MANIFEST_FILE).write_text(content)
    _refused(last, last / MANIFEST_FILE)


# --- sizes and shapes before allocation --------------------------------------------------------

PROBE = """
import json, sys, time
import safetensors.torch, loopformer.models
from loopformer import CheckpointError, load_model
def peak_kb():  # this process's own peak (getrusage's ru_maxrss would count the pytest parent)
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
before = peak_kb()
t0 = time.perf_counter()
try:
    load_model(sys.argv[1])
    outcome = "loaded"
except CheckpointError as exc:
    outcome = "refused: " + str(exc)
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - t0,
                  "grown_kb": peak_kb() - before}))
"""


def _probe(folder) -> dict:
    """load_model in a fresh process: its outcome, time and peak-memory growth."""
    proc = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("manifest", ["kept", "removed"])
def test_a_config_describing_a_huge_model_is_refused_before_building_it(tmp_path, manifest):
    folder = save_model(create_model("vanilla-lm-small", **{**TINY, "d_model": 64}), tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    meta["model"]["d_ff"] = 600_000  # ~600 MB of FFN weights for this checkpoint
    (folder / "config.json").write_text(json.dumps(meta))
    if manifest == "removed":  # nothing but the shapes can tell: they are compared on the meta device
        (folder / MANIFEST_FILE).unlink()
    got = _probe(folder)
    assert got["outcome"].startswith("refused: ") and str(folder / "config.json") in got["outcome"], got
    assert ("shape" if manifest == "removed" else "manifest") in got["outcome"], got
    assert got["grown_kb"] < GROWTH_LIMIT_KB and got["seconds"] < 10, got


@pytest.mark.parametrize("manifest", ["kept", "removed"])
@pytest.mark.parametrize("head", ["tiny-header", "all-zero"])
def test_a_3gb_sparse_weights_file_is_refused_without_reading_it(tmp_path, manifest, head):
    folder = save_model(create_model("ringformer-lm-small", **TINY), tmp_path / "m")
    weights = folder / "model.safetensors"
    blob = weights.read_bytes()
    header = blob[: 8 + int.from_bytes(blob[:8], "little")] if head == "tiny-header" else b""
    with open(weights, "wb") as fh:
        fh.write(header)
        fh.truncate(3 << 30)  # a hole: no disk space, but 3 GB to whoever reads it whole
    if manifest == "removed":
        (folder / MANIFEST_FILE).unlink()
    got = _probe(folder)
    assert got["outcome"].startswith("refused: ") and str(weights) in got["outcome"], got
    assert got["grown_kb"] < GROWTH_LIMIT_KB and got["seconds"] < 10, got


def test_weights_of_another_dtype_are_refused_before_loading(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_model(create_model("ringformer-lm-small", **TINY), tmp_path / "m")
    weights = folder / "model.safetensors"
    save_file({k: v.double() for k, v in load_file(str(weights)).items()}, str(weights))
    (folder / MANIFEST_FILE).unlink()
    meta = json.loads((folder / "config.json").read_text())
    import hashlib

    meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(meta))
    assert "F64" in _refused(folder, weights)


# --- tokenizers and task files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    BPETokenizer.train(["ein kleiner Hund", "a little dog"] * 20, vocab_size=300, min_frequency=1).save(folder)
    return folder


def _edited_tokenizer(bpe_folder, tmp_path, edit):
    data = json.loads((bpe_folder / "tokenizer.json").read_text())
    edit(data)
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    return tmp_path


TOKENIZER_EDITS = {
    "id-out-of-range": lambda d: d["model"]["vocab"].update(foo=99999),
    "id-repeated": lambda d: d["model"]["vocab"].update(foo=5),
    "added-token-out-of-range": lambda d: d["added_tokens"][0].update(id=99999),
}


@pytest.mark.parametrize("edit", list(TOKENIZER_EDITS.values()), ids=list(TOKENIZER_EDITS))
def test_a_tokenizer_whose_ids_are_not_0_to_n_is_refused(bpe_folder, tmp_path, edit):
    folder = _edited_tokenizer(bpe_folder, tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        BPETokenizer.load(folder)
    assert str(folder / "tokenizer.json") in str(info.value)


def test_a_tokenizer_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "tokenizer.json").mkdir()
    with pytest.raises(CheckpointError, match="directory"):
        BPETokenizer.load(tmp_path)


@pytest.mark.parametrize("content", ['{"chars": "abc"}', "[" * 100_000], ids=["chars-a-string", "deep"])
def test_a_damaged_character_vocabulary_is_one_checkpoint_error(tmp_path, content):
    (tmp_path / "chars.json").write_text(content)
    with pytest.raises(CheckpointError) as info:
        CharTokenizer.load(tmp_path)
    assert str(tmp_path / "chars.json") in str(info.value)


@dataclass
class _Settings:
    size: int = 1


@pytest.mark.parametrize("kind", ["directory", "5000-digits"])
def test_a_damaged_task_file_is_one_checkpoint_error(tmp_path, kind):
    path = tmp_path / "task.json"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text('{"size": ' + "9" * 5000 + "}")
    with pytest.raises(CheckpointError) as info:
        read_task_config(tmp_path, _Settings, "test")
    assert str(path) in str(info.value)
