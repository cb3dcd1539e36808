"""Training state on resume: every damaged byte or field of ``last/`` is one CheckpointError
line, never a silent resume into a different run and never a traceback."""

import json
import shutil

import pytest
import torch

from loopformer.cli import main
from loopformer.errors import CheckpointError

TEXT = "A little learning is a dangerous thing; drink deep, or taste not the Pierian spring. " * 30
LM = ["d_model=32", "n_heads=2", "d_ff=64", "context=16", "batch_size=4", "eval_windows=2", "progress=false",
      "max_steps=2"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "c.txt").write_text(TEXT)
    assert main(_train_args(root, root / "run")) == 0
    return root


def _train_args(root, out, resume=False):
    return (["train", "language", "--model", "ringformer", "--preset", "lm-char", "--out", str(out)]
            + (["--resume"] if resume else []) + [f"dataset={root / 'c.txt'}"] + LM)


@pytest.fixture
def run_copy(lm_run, tmp_path):
    """A private copy of the run (``last/`` is what resuming reads)."""
    out = tmp_path / "run"
    shutil.copytree(lm_run / "run", out)
    return out


def _resume_refused(lm_run, out, capsys) -> str:
    before = {p.name: p.read_bytes() for p in (out / "last").iterdir()}
    assert main(_train_args(lm_run, out, resume=True)) == 2
    err = capsys.readouterr().err
    assert err.startswith("loopformer: error:") and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in (out / "last").iterdir()} == before  # nothing rewritten
    return err


def _flip(path, where: float) -> None:
    blob = bytearray(path.read_bytes())
    blob[int(len(blob) * where)] ^= 0x01
    path.write_bytes(bytes(blob))


def test_last_is_sealed_by_its_manifest_and_resumes(lm_run, run_copy, capsys):
    last = run_copy / "last"
    listed = json.loads((last / "manifest.json").read_text())["files"]
    assert set(listed) == {p.name for p in last.iterdir()} - {"manifest.json"}
    assert {"trainer_state.json", "trainer_state.safetensors", "task.json", "chars.json"} <= set(listed)
    assert main(_train_args(lm_run, run_copy, resume=True)) == 0


@pytest.mark.parametrize("where", [0.5, 0.9, 0.999])
def test_a_flipped_byte_in_the_state_tensors_refuses_resume(lm_run, run_copy, capsys, where):
    state = run_copy / "last" / "trainer_state.safetensors"
    _flip(state, where)  # in the data: optimizer moments or the RNG state
    assert str(state) in _resume_refused(lm_run, run_copy, capsys)


def test_an_edited_state_json_is_caught_by_the_manifest(lm_run, run_copy, capsys):
    path = run_copy / "last" / "trainer_state.json"
    meta = json.loads(path.read_text())
    meta["step"] = 1  # a perfectly valid value: only the manifest can tell
    path.write_text(json.dumps(meta, indent=1))
    err = _resume_refused(lm_run, run_copy, capsys)
    assert str(path) in err and "manifest" in err


def _edit(meta, key, value):
    meta[key] = value


def _drop(meta, key):
    del meta[key]


def _opt(meta, edit):
    edit(meta["optimizer"])


def _group(meta, edit):
    edit(meta["optimizer"]["param_groups"][0])


EDITS = {
    "step-a-string": lambda m: _edit(m, "step", "3"),
    "negative-step": lambda m: _edit(m, "step", -1),
    "step-a-bool": lambda m: _edit(m, "step", True),
    "float-epoch": lambda m: _edit(m, "epoch", 0.5),
    "no-epoch": lambda m: _drop(m, "epoch"),
    "no-position": lambda m: _drop(m, "position"),
    "nan-seconds": lambda m: _edit(m, "train_seconds", float("nan")),
    "negative-seconds": lambda m: _edit(m, "train_seconds", -1.0),
    "best-score-text": lambda m: _edit(m, "best_score", "high"),
    "infinite-best-score": lambda m: _edit(m, "best_score", float("inf")),
    "no-best-score": lambda m: _drop(m, "best_score"),
    "train-config-list": lambda m: _edit(m, "train_config", []),
    "rng-short": lambda m: m["rng"]["python"][1].pop(),
    "rng-version": lambda m: m["rng"]["python"].__setitem__(0, 99),
    "rng-missing": lambda m: _drop(m, "rng"),
    "no-optimizer": lambda m: _drop(m, "optimizer"),
    "groups-not-a-list": lambda m: _opt(m, lambda o: _edit(o, "param_groups", {"0": 1})),
    "one-group-missing": lambda m: _opt(m, lambda o: o["param_groups"].pop()),
    "group-one-param-short": lambda m: _group(m, lambda g: g["params"].pop()),
    "group-param-index-text": lambda m: _group(m, lambda g: _edit(g, "params", ["0"] * len(g["params"]))),
    "betas-text": lambda m: _group(m, lambda g: _edit(g, "betas", "xy")),
    "lr-text": lambda m: _group(m, lambda g: _edit(g, "lr", "fast")),
    "plain-bad-index": lambda m: _opt(m, lambda o: _edit(o, "plain", {"x": {}})),
}


@pytest.mark.parametrize("edit", list(EDITS.values()), ids=list(EDITS))
def test_a_damaged_state_json_is_one_checkpoint_error(lm_run, run_copy, capsys, edit):
    """Without the manifest (as if rewritten consistently, or written before manifests)
    the fields themselves are checked."""
    last = run_copy / "last"
    (last / "manifest.json").unlink(missing_ok=True)
    path = last / "trainer_state.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta, indent=1))
    err = _resume_refused(lm_run, run_copy, capsys)
    assert str(path) in err


@pytest.mark.parametrize("text", ["[]", "1" * 5000], ids=["list", "5000-digits"])
def test_a_state_json_that_is_not_a_state(lm_run, run_copy, capsys, text):
    last = run_copy / "last"
    (last / "manifest.json").unlink(missing_ok=True)
    (last / "trainer_state.json").write_text(text)
    assert str(last / "trainer_state.json") in _resume_refused(lm_run, run_copy, capsys)


def test_a_5000_digit_counter_is_one_checkpoint_error(lm_run, run_copy, capsys):
    last = run_copy / "last"
    (last / "manifest.json").unlink(missing_ok=True)
    path = last / "trainer_state.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(meta, indent=1).replace(f'"tokens_seen": {meta["tokens_seen"]}',
                                                       '"tokens_seen": ' + "7" * 5000))
    assert str(path) in _resume_refused(lm_run, run_copy, capsys)


def _rewrite_tensors(last, edit) -> None:
    from safetensors.torch import load_file, save_file

    path = last / "trainer_state.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))
    (last / "manifest.json").unlink(missing_ok=True)


TENSOR_EDITS = {
    "moment-of-another-shape": lambda t: t.update({k: torch.zeros(3) for k in t if k.endswith(".exp_avg")}),
    "moment-of-a-missing-parameter": lambda t: t.update({"opt.9999.exp_avg": torch.zeros(3)}),
    "rng-of-another-size": lambda t: t.update({"rng.torch": t["rng.torch"][:100]}),
    "rng-not-bytes": lambda t: t.update({"rng.torch": t["rng.torch"].float()}),
    "no-rng": lambda t: t.pop("rng.torch"),
    "an-unknown-tensor": lambda t: t.update({"mystery": torch.zeros(1)}),
}


@pytest.mark.parametrize("edit", list(TENSOR_EDITS.values()), ids=list(TENSOR_EDITS))
def test_state_tensors_that_do_not_fit_are_refused(lm_run, run_copy, capsys, edit):
    _rewrite_tensors(run_copy / "last", edit)
    err = _resume_refused(lm_run, run_copy, capsys)
    assert "trainer_state" in err


def test_what_restoring_refuses_is_a_checkpoint_error_naming_the_folder(lm_run, run_copy, monkeypatch):
    """Errors only the optimizer or the RNG can raise become one CheckpointError line."""
    from loopformer.train import trainer

    def refuse(tensors, meta):
        raise ValueError("state vector\nis the wrong size")

    monkeypatch.setattr(trainer, "restore_rng", refuse)
    with pytest.raises(CheckpointError) as info:
        _resume_direct(run_copy)
    msg = str(info.value)
    assert str(run_copy / "last") in msg and "\n" not in msg


def _resume_direct(out):
    """Trainer.resume on a trainer built like the run's."""
    from loopformer.checkpoint import load_model
    from loopformer.train import TrainConfig, Trainer

    model = load_model(out / "last")
    cfg = TrainConfig(max_steps=2, progress=False)

    class NoTask:
        def save_assets(self, folder):
            pass

    return Trainer(NoTask(), model, cfg, out).resume()
