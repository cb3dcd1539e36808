"""TensorBoard event files: the same numbers as metrics.jsonl, off when asked or when the
package is missing, one warning when they cannot be written, appended to on resume."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from loopformer.errors import ConfigError
from loopformer.models import build_model
from loopformer.registry import get_config
from loopformer.tasks.language import LanguageConfig, LanguageTask
from loopformer.train import TrainConfig, Trainer
from loopformer.train import tensorboard as tb

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 20


def make_trainer(out, max_steps=4, **train_kw):
    task = LanguageTask.prepare(LanguageConfig(context=64, batch_size=2, eval_windows=2), TEXT)
    torch.manual_seed(0)
    cfg = get_config("looped-lm-char", d_model=32, n_heads=2, d_ff=64, **task.model_overrides())
    train = TrainConfig(**{**dict(max_steps=max_steps, eval_every=2, log_every=1, progress=False, lr=1e-3,
                                  warmup_steps=0, seed=0), **train_kw})
    return Trainer(task, build_model(cfg), train, out)


def logged(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def events(out):
    acc = EventAccumulator(str(out / tb.FOLDER))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def expected(records):
    """tag -> {step: value} as the event files should hold them (later records win)."""
    out = {}
    for record in records:
        for tag, value in tb.scalars(record):
            out.setdefault(tag, {})[record["step"]] = value
    return out


def assert_same(found, wanted):
    assert set(found) == set(wanted)
    for tag, by_step in wanted.items():
        assert found[tag] == pytest.approx(by_step, rel=1e-6), tag  # events hold 32-bit floats


def without_tensorboard(monkeypatch):
    """Make every import of the package fail, as when it is not installed."""
    for name in [n for n in sys.modules if n == "tensorboard" or n.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)


def test_events_hold_every_number_of_metrics_jsonl(tmp_path, capsys):
    make_trainer(tmp_path).fit()
    records = logged(tmp_path)
    found = events(tmp_path)
    assert {"train/loss", "train/lr", "train/tokens_per_s", "train/tokens_seen", "eval/val_loss", "eval/val_ppl",
            "eval/score"} <= set(found)
    assert sorted(found["train/loss"]) == [1, 2, 3, 4] and sorted(found["eval/val_ppl"]) == [2, 4]
    assert_same(found, expected(records))
    assert capsys.readouterr().err == ""


def test_off_writes_no_events(tmp_path):
    make_trainer(tmp_path, tensorboard="off").fit()
    assert not (tmp_path / tb.FOLDER).exists()
    assert (tmp_path / "metrics.jsonl").is_file()


def test_on_without_the_package_is_one_line_at_the_start(tmp_path, monkeypatch):
    without_tensorboard(monkeypatch)
    with pytest.raises(ConfigError) as err:
        make_trainer(tmp_path, tensorboard="on")
    assert "tensorboard=on needs the tensorboard package" in str(err.value) and "\n" not in str(err.value)


def test_auto_without_the_package_is_silently_off(tmp_path, monkeypatch, capsys):
    without_tensorboard(monkeypatch)
    make_trainer(tmp_path, max_steps=2).fit()
    assert not (tmp_path / tb.FOLDER).exists()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("spelling, mode", [("on", "on"), ("OFF", "off"), ("false", "off"), ("true", "on"),
                                            ("auto", "auto")])
def test_mode_spellings(spelling, mode):
    assert TrainConfig(tensorboard=spelling).tensorboard == mode


def test_bad_mode_is_refused():
    with pytest.raises(ConfigError, match="tensorboard must be auto, on or off; got 'sometimes'"):
        TrainConfig(tensorboard="sometimes")


def test_a_full_disk_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tb, "open", lambda path, mode: open("/dev/full", "wb"), raising=False)
    t = make_trainer(tmp_path)
    t.fit()
    assert t.step == 4 and len([r for r in logged(tmp_path) if r["kind"] == "train"]) == 4
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("loopformer: warning: cannot write TensorBoard events in ")
    assert "No space left on device" in err[0] and "metrics.jsonl keeps every record" in err[0]


def test_an_unwritable_folder_is_one_warning(tmp_path, capsys):
    (tmp_path / tb.FOLDER).write_text("a file where the folder goes\n")
    make_trainer(tmp_path, max_steps=2).fit()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("loopformer: warning: cannot write TensorBoard events")


def test_resume_appends_and_hides_what_a_crash_left_behind(tmp_path):
    make_trainer(tmp_path, max_steps=6, keep_last=2).fit()  # checkpoints at 2, 4, 6; events up to 6
    shutil.rmtree(tmp_path / "last")
    shutil.copytree(tmp_path / "step-00000004", tmp_path / "last")  # as if killed after step 6's log, saved at 4
    resumed = make_trainer(tmp_path, max_steps=8)
    assert resumed.resume() and resumed.step == 4
    resumed.fit()
    files = sorted((tmp_path / tb.FOLDER).iterdir())
    assert len(files) == 2
    starts = [e.step for e in EventFileLoader(str(files[1])).Load() if e.HasField("session_log")]
    assert starts == [5]  # steps 5 and 6 of the first session are hidden
    records = logged(tmp_path)
    found = events(tmp_path)
    assert sorted(found["train/loss"]) == list(range(1, 9))
    assert_same(found, expected(records))


def test_importing_loopformer_does_not_import_tensorboard():
    probe = "import sys, loopformer, loopformer.cli, loopformer.train; print('tensorboard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_run_saved_before_the_setting_existed_resumes(tmp_path, capsys):
    from loopformer.checkpoint import write_manifest
    from loopformer.cli import main

    corpus, out = tmp_path / "c.txt", tmp_path / "run"
    corpus.write_text(TEXT)
    args = ["train", "language", "--model", "looped", "--preset", "lm-char", "--out", str(out), f"dataset={corpus}",
            "d_model=32", "n_heads=2", "context=64", "batch_size=2", "eval_windows=2", "progress=false"]
    assert main(args + ["max_steps=2", "tensorboard=off"]) == 0, capsys.readouterr().err
    state = out / "last" / "trainer_state.json"
    meta = json.loads(state.read_text())
    del meta["train_config"]["tensorboard"]  # as written before the setting existed
    state.write_text(json.dumps(meta))
    write_manifest(out / "last")
    resume = ["train", "language", "--model", "looped", "--preset", "lm-char", "--out", str(out), "--resume"]
    assert main(resume + ["max_steps=3"]) == 0, capsys.readouterr().err
    assert json.loads(state.read_text())["train_config"]["tensorboard"] == "auto"  # the default, as before
    assert sorted(events(out)["eval/val_loss"]) == [3]  # auto: the resumed session has events
