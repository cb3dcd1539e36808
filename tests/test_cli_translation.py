"""`loopformer train translation`, `translate` and `eval` end to end on a tiny model."""

import io
import json
import sys

import pytest

from loopformer.cli import main

TINY = ["d_model=32", "n_heads=2", "d_ff=64", "n_layers=1", "signal_rank=4", "max_steps=2", "batch_tokens=512",
        "bpe_vocab_size=400", "val_bleu_sentences=4", "test_splits=", "progress=false", "log_every=1"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["train", "translation", "--model", "ringformer", "--preset", "mt-small", "--out", str(out / "r")]
    assert main(args + TINY) == 0
    return out / "r"


def test_train_writes_checkpoints_metrics_and_refuses_to_overwrite(ckpt, capsys):
    for which in ("last", "best"):
        assert (ckpt / which / "model.safetensors").is_file()
        assert (ckpt / which / "tokenizer.json").is_file()
    rows = [json.loads(line) for line in (ckpt / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2]
    assert any(r["kind"] == "eval" and "val_bleu" in r for r in rows)
    capsys.readouterr()
    assert main(["train", "translation", "--out", str(ckpt)] + TINY) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_continues_the_run(ckpt, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(ckpt, run)
    assert main(["train", "translation", "--out", str(run), "--resume"] + TINY[:-6] + ["max_steps=3", "test_splits=",
                                                                                       "progress=false"]) == 0
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3


def _run_translate(ckpt, data: bytes, monkeypatch, capsys, *extra):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code = main(["translate", str(ckpt / "best"), "--beam", "2", *extra])
    return code, capsys.readouterr()


def test_translate_keeps_empty_lines(ckpt, monkeypatch, capsys):
    code, out = _run_translate(ckpt, "Ein Hund läuft.\n\n   \nZwei Männer.\n".encode(), monkeypatch, capsys)
    assert code == 0
    lines = out.out.split("\n")
    assert len(lines) == 5 and lines[-1] == ""
    assert lines[1] == "" and lines[2] == ""


def test_translate_rejects_non_utf8(ckpt, monkeypatch, capsys):
    code, out = _run_translate(ckpt, b"Ein Hund \xff\xfe l\xe4uft.\n", monkeypatch, capsys)
    assert code == 2
    assert out.err.count("\n") == 1 and "UTF-8" in out.err


def test_translate_warns_on_over_long_lines(ckpt, monkeypatch, capsys):
    code, out = _run_translate(ckpt, ("Hund " * 400 + "\n").encode(), monkeypatch, capsys)
    assert code == 0
    assert "warning: line 1" in out.err
    assert out.out.count("\n") == 1


def test_eval_prints_bleu_and_signature(ckpt, capsys):
    assert main(["eval", str(ckpt / "best"), "--split", "val", "--beam", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["split"] == "val" and 0.0 <= res["bleu"] <= 100.0
    assert res["signature"].startswith("nrefs:1")
    assert res["length_penalty"] == 0.6  # the run's default
    assert main(["eval", str(ckpt / "best"), "--split", "val", "--beam", "2", "--length-penalty", "1.0",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["beam"] == 2 and res["length_penalty"] == 1.0
    assert main(["eval", str(ckpt / "best"), "--length-penalty", "-1"]) == 2
    assert "--length-penalty must be >= 0" in capsys.readouterr().err


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    for extra in (["max_steps=abc"], ["no_such_key=1"], ["schedule=linear"], ["test_splits=test2099"]):
        assert main(["train", "translation", "--out", str(tmp_path / "x")] + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("loopformer: error:") and err.count("\n") == 1, err


def test_a_translation_with_line_breaks_stays_one_line(ckpt, monkeypatch, capsys):
    from loopformer.tasks import translation_run

    real = translation_run.load_translation_checkpoint

    def breaking(path):
        model, task = real(path)

        class Task:
            tok = task.tok

            def translate(self, model, lines, **kw):
                return ["a\nb\rc\x1dd\u2028e", "ends with a break\x1d", "plain"][: len(lines)]

        return model, Task()

    monkeypatch.setattr(translation_run, "load_translation_checkpoint", breaking)
    code, out = _run_translate(ckpt, "eins\nzwei\ndrei\n".encode(), monkeypatch, capsys)
    assert code == 0
    assert out.out.split("\n") == ["a b c d e", "ends with a break", "plain", ""]


def test_length_penalty_chosen_on_validation_is_kept_in_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "lp"
    args = ["train", "translation", "--model", "ringformer", "--preset", "mt-small", "--out", str(out)]
    assert main(args + TINY + ["length_penalty_grid=0.0,2.5", "test_beam=2"]) == 0
    choice = json.loads((out / "results.json").read_text())["length_penalty_choice"]
    assert choice["length_penalty"] in (0.0, 2.5) and set(choice["val_bleu"]) == {"0.0", "2.5"}
    assert choice["sentences"] == 4 and choice["beam"] == 2
    best = max(choice["val_bleu"].values())
    assert choice["val_bleu"][str(choice["length_penalty"])] == best
    task = json.loads((out / "best" / "task.json").read_text())
    assert task["length_penalty"] == choice["length_penalty"]  # what eval / translate will use
    assert "chosen on 4 validation sentences" in capsys.readouterr().out


def test_a_malformed_length_penalty_grid_is_one_line(tmp_path, capsys):
    for grid in ("0.6,x", "-1", "nan"):
        assert main(["train", "translation", "--out", str(tmp_path / "x"), f"length_penalty_grid={grid}"]) == 2
        err = capsys.readouterr().err
        assert "length_penalty_grid" in err and err.count("\n") == 1, err


def test_translate_and_eval_with_loops_and_early_exit(ckpt, monkeypatch, capsys):
    code, out = _run_translate(ckpt, "Ein Hund läuft.\nZwei Männer.\n".encode(), monkeypatch, capsys,
                               "--loops", "3", "--exit", "change:0.5")
    assert code == 0 and len(out.out.split("\n")) == 3
    assert "loops on average (of 3; trained 1)" in out.err
    assert main(["eval", str(ckpt / "best"), "--split", "val", "--json", "--loops", "2", "--exit", "kl:0"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["depth"]["loops"] == 2 and res["depth"]["mean_loops"] == 2.0
