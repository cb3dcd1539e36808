"""``--loops``, ``--level-rule`` and ``--exit`` on the commands that run a trained model."""

import json

import pytest

from loopformer.cli import main

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40)
TINY = ["d_model=32", "n_heads=2", "d_ff=64", "context=32", "batch_size=4", "eval_windows=4", "progress=false",
        "log_every=1", "eval_every=100", "signal_rank=4", "tensorboard=off"]


@pytest.fixture(scope="module")
def ring_lm(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    out = root / "run"
    assert main(["train", "language", "--model", "ringformer", "--preset", "lm-char", "--out", str(out),
                 f"dataset={corpus}", "max_steps=3"] + TINY) == 0
    return out / "best"


def _eval(capsys, ckpt, *flags):
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_at_the_trained_count_and_beyond(ring_lm, capsys):
    plain = _eval(capsys, ring_lm)
    same = _eval(capsys, ring_lm, "--loops", "3")
    assert same["val_loss"] == plain["val_loss"] and same["depth"] == {"loops": 3, "trained_loops": 3}
    deeper = _eval(capsys, ring_lm, "--loops", "6", "--level-rule", "cycle")
    assert deeper["val_loss"] != plain["val_loss"] and deeper["depth"]["loops"] == 6


def test_eval_with_an_exit_reports_the_loops_run(ring_lm, capsys):
    never = _eval(capsys, ring_lm, "--exit", "change:0")
    assert never["depth"]["mean_loops"] == 3 and never["val_loss"] == _eval(capsys, ring_lm)["val_loss"]
    always = _eval(capsys, ring_lm, "--exit", "entropy:100")
    assert always["depth"]["mean_loops"] == 1


def test_generate_with_loops_and_exit(ring_lm, capsys):
    capsys.readouterr()
    assert main(["generate", str(ring_lm), "--prompt", "To be", "--max-new-tokens", "10", "--temperature", "0",
                 "--loops", "5", "--exit", "kl:0.5"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("To be") and "loops on average" in err


@pytest.mark.parametrize("flags,message", [
    (["--exit", "margin:1"], "exit criterion"),
    (["--exit", "kl"], "criterion:threshold"),
    (["--loops", "0"], "--loops must be >= 1"),
    (["--level-rule", "last"], "invalid choice"),
])
def test_bad_depth_flags_are_one_line_errors(ring_lm, capsys, flags, message):
    assert main(["eval", str(ring_lm), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_reports_mean_loops_and_skips_models_without_a_loop(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "looped-lm-char", "vanilla-lm-char", "d_model=32", "n_heads=2", "d_ff=64", "max_len=64",
                 "--repeats", "1", "--warmup", "0", "--no-peak", "--batch", "2", "--prompt", "4", "--new-tokens", "4",
                 "--workloads", "generate", "--exit", "change:0", "--loops", "4", "--json", str(out)]) == 0
    rows = {r["entry"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["looped-lm-char"]["mean_loops"] == 4 and rows["vanilla-lm-char"]["mean_loops"] is None
    assert "not applied" in capsys.readouterr().err
