"""``loopformer plot``: curves of synthetic runs, logs cut short or corrupt, mixed tasks."""

import json

import pytest

from loopformer.analysis.curves import default_labels, latest, read_runs, summary, x_values
from loopformer.cli import main
from loopformer.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(folder, metric="val_bleu", steps=20, shift=0.0):
    """A metrics.jsonl as the trainer writes it: train records every 2 steps, evals every 10."""
    folder.mkdir(parents=True)
    rows = []
    for step in range(2, steps + 1, 2):
        rows.append({"step": step, "kind": "train", "loss": 5.0 - 0.1 * step + shift, "lr": 1e-3,
                     "tokens_per_s": 1000.0, "train_seconds": 1.5 * step, "tokens_seen": 400 * step, "epoch": 0})
        if step % 10 == 0:
            rows.append({"step": step, "kind": "eval", "val_loss": 4.0 - 0.05 * step + shift,
                         metric: 10.0 + step, "score": 10.0 + step})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_two_runs_give_a_png_and_a_summary_per_run(tmp_path, capsys):
    a = write_run(tmp_path / "ringformer")
    b = write_run(tmp_path / "vanilla", shift=0.5)
    png = tmp_path / "figs" / "curves.png"
    code, out, err = run_cli(capsys, "plot", str(a), str(b / "metrics.jsonl"), "--out", str(png))
    assert code == 0, err
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert not list(png.parent.glob("*.tmp"))
    lines = out.splitlines()
    assert lines[0] == f"wrote {png}"
    assert lines[1] == "ringformer: 20 steps, last train loss 3.0000, best val_bleu 30.0000 at step 20"
    assert lines[2].startswith("vanilla: 20 steps, last train loss 3.5000")


@pytest.mark.parametrize("axis", ["tokens", "minutes"])
def test_other_x_axes_and_labels(tmp_path, capsys, axis):
    a, b = write_run(tmp_path / "a", "val_ppl"), write_run(tmp_path / "b", "val_ppl")
    png = tmp_path / "c.png"
    code, out, err = run_cli(capsys, "plot", str(a), str(b), "--out", str(png), "--x", axis, "--labels", "one,two")
    assert code == 0, err
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert out.splitlines()[1].startswith("one: ") and "best val_ppl 20.0000 at step 10" in out


def test_truncated_last_line_is_skipped(tmp_path, capsys):
    run = write_run(tmp_path / "killed")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 22, "kind": "train", "lo')  # killed while writing
    code, out, err = run_cli(capsys, "plot", str(run), "--out", str(tmp_path / "k.png"))
    assert code == 0, err
    assert "killed: 20 steps" in out


def test_corrupt_middle_line_names_file_and_line(tmp_path, capsys):
    run = write_run(tmp_path / "bad")
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[3] = '{"step": 8, "kind": "tra\n'
    (run / "metrics.jsonl").write_text("".join(lines))
    code, out, err = run_cli(capsys, "plot", str(run), "--out", str(tmp_path / "b.png"))
    assert code == 2
    assert err.strip() == f"loopformer: error: {run / 'metrics.jsonl'}, line 4: not a JSON record"
    assert not (tmp_path / "b.png").exists()


def test_records_that_are_not_records(tmp_path):
    run = write_run(tmp_path / "r")
    (run / "metrics.jsonl").write_text('{"step": 1, "kind": "train", "loss": "x"}\n')
    with pytest.raises(ConfigError, match=r"line 1: loss must be a number"):
        read_runs([run])
    (run / "metrics.jsonl").write_text('[1, 2]\n{"step": 1}\n')
    with pytest.raises(ConfigError, match=r"line 1: a record must be a JSON object"):
        read_runs([run])


def test_mixed_tasks_are_one_error(tmp_path, capsys):
    a, b = write_run(tmp_path / "mt"), write_run(tmp_path / "vit", "val_accuracy")
    code, _, err = run_cli(capsys, "plot", str(a), str(b), "--out", str(tmp_path / "m.png"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "different tasks" in err and "val_bleu" in err and "val_accuracy" in err


def test_empty_or_missing_runs_are_named(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    code, _, err = run_cli(capsys, "plot", str(empty), "--out", str(tmp_path / "e.png"))
    assert code == 2 and str(empty / "metrics.jsonl") in err and "no training or evaluation records" in err
    code, _, err = run_cli(capsys, "plot", str(tmp_path / "nope"), "--out", str(tmp_path / "e.png"))
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1


def test_labels_must_match_the_runs(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    code, _, err = run_cli(capsys, "plot", str(a), "--out", str(tmp_path / "l.png"), "--labels", "x,y")
    assert code == 2 and "2 labels for 1 runs" in err
    code, _, err = run_cli(capsys, "plot", str(a), "--out", str(tmp_path / "l.png"), "--labels", "x,")
    assert code == 2 and "empty label" in err


def test_tokens_axis_needs_token_counts(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "kind": "train", "loss": 2.0, "train_seconds": 1.0}\n')
    code, _, err = run_cli(capsys, "plot", str(run), "--out", str(tmp_path / "o.png"), "--x", "tokens")
    assert code == 2 and "no tokens_seen" in err and "--x step" in err


def test_equal_directory_names_are_told_apart(tmp_path):
    a, b = write_run(tmp_path / "x" / "run"), write_run(tmp_path / "y" / "run")
    assert default_labels([a, b]) == ["x/run", "y/run"]
    assert default_labels([a, a / "metrics.jsonl"]) == ["run", "run (2)"]


def test_resumed_log_keeps_the_later_records():
    def rec(step, kind="train"):
        return {"step": step, "kind": kind, "loss": float(step)}

    # checkpoint at 4; steps 5-6 logged, killed; resumed from 4: 5, 6, 7 logged again
    log = [rec(4), rec(4, "eval"), rec(5), rec(6), rec(5), rec(6), rec(6, "eval"), rec(7)]
    kept = latest(log)
    assert [(r["step"], r["kind"]) for r in kept] == [(4, "train"), (4, "eval"), (5, "train"), (6, "train"),
                                                      (6, "eval"), (7, "train")]
    assert kept[2] is log[4]
    # the final evaluation repeats the last periodic one: the step's training record stays
    log = [rec(9), rec(10), rec(10, "eval"), rec(10, "eval")]
    assert [(r["step"], r["kind"]) for r in latest(log)] == [(9, "train"), (10, "train"), (10, "eval")]
    assert latest(log)[-1] is log[-1]


def test_summary_without_evaluations(tmp_path):
    run = tmp_path / "young"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 3, "kind": "train", "loss": 2.5}\n')
    assert summary(read_runs([run])[0]) == "young: 3 steps, last train loss 2.5000, no evaluation yet"


def test_evaluations_sit_between_training_records_on_the_x_axis(tmp_path):
    run = read_runs([write_run(tmp_path / "r", steps=12)])[0]
    run.evals.append({"step": 15, "kind": "eval", "val_loss": 1.0})  # a final evaluation past the last log
    assert x_values(run, run.evals, "step") == [10.0, 15.0]
    assert x_values(run, run.evals, "minutes") == pytest.approx([0.25, 0.375])  # 1.5 s a step
    assert x_values(run, [{"step": 1}, {"step": 3}], "tokens") == pytest.approx([400.0, 1200.0])


def test_a_run_with_evaluations_only(tmp_path, capsys):
    run = tmp_path / "short"  # max_steps below log_every: the final evaluation is its only record
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 2, "kind": "eval", "val_loss": 3.4, "val_ppl": 30.0}\n')
    code, out, err = run_cli(capsys, "plot", str(run), "--out", str(tmp_path / "s.png"))
    assert code == 0, err
    assert "short: 2 steps, best val_ppl 30.0000 at step 2" in out
    code, _, err = run_cli(capsys, "plot", str(run), "--out", str(tmp_path / "s.png"), "--x", "minutes")
    assert code == 2 and "no training record yet" in err and "--x step" in err
