"""The ``loopformer`` command-line tool, run in-process (plus one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loopformer import count_parameters, create_model, save_model
from loopformer.cli import main
from loopformer.registry import PRESETS, list_models

TINY = dict(d_model=32, n_heads=2, d_ff=64, n_layers=2, vocab_size=40)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_user_error(code, out, err):
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    assert lines[0].startswith("loopformer: error: ")
    assert "Traceback" not in err and 'File "' not in err
    return lines[0]


# --- list -------------------------------------------------------------------------------


def test_list_prints_every_preset(capsys):
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(PRESETS) + 1  # header + one row each
    names = [line.split()[0] for line in lines[1:]]
    assert names == list_models()
    for line in lines[1:]:
        name, task, arch, d, layers = line.split()
        p = PRESETS[name]
        assert (task, arch, int(d), int(layers)) == (p["task"], p["arch"], p["d_model"], p["n_layers"])


# --- params -----------------------------------------------------------------------------


def _row(out: str, label: str) -> str:
    rows = [line for line in out.splitlines() if line.startswith(label)]
    assert len(rows) == 1, out
    return rows[0].split()[-1]


def test_params_ringformer_mt_base_table(capsys):
    code, out, err = run(capsys, "params", "ringformer-mt-base", "--vocab-size", "52000")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "ringformer-mt-base (seq2seq, ringformer)"
    assert _row(out, "non-embedding") == "8,943,616"
    assert _row(out, "total") == "88,867,616"


def test_params_vocab_size_flag_changes_count(capsys):
    _, out_a, _ = run(capsys, "params", "ringformer-mt-base", "--json")
    _, out_b, _ = run(capsys, "params", "ringformer-mt-base", "--vocab-size", "1000", "--json")
    a, b = json.loads(out_a), json.loads(out_b)
    assert a["non_embedding"] == b["non_embedding"] == 8943616
    assert a["total"] == 88867616 and b["total"] < a["total"]


def test_params_vit_s_json(capsys):
    code, out, err = run(capsys, "params", "vit-s", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["target"] == "vit-s"
    assert data["total"] == 19360868
    assert data["total"] == data["embedding"] + data["head"] + data["non_embedding"]
    assert data["effective"] == data["total"]  # vanilla: nothing shared


def test_params_override_applies(capsys):
    _, out, _ = run(capsys, "params", "vit-s", "num_classes=10", "--json")
    # the ImageNet-100 head (512*100 + 100) becomes 512*10 + 10
    assert json.loads(out)["head"] == 512 * 10 + 10


def test_params_on_checkpoint_directory(capsys, tmp_path):
    model = create_model("ringformer-mt-small", **TINY)
    ckpt = save_model(model, tmp_path / "ckpt")
    code, out, err = run(capsys, "params", str(ckpt), "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["target"] == str(ckpt)
    assert {k: v for k, v in data.items() if k != "target"} == count_parameters(model).to_dict()

    code, out, err = run(capsys, "params", str(ckpt))
    assert code == 0 and err == ""
    assert out.splitlines()[0].endswith("(seq2seq, ringformer)")
    assert _row(out, "total") == f"{count_parameters(model).total:,}"


def test_demo_vit_tiny(capsys):
    code, out, err = run(capsys, "demo", "vit-tiny")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "vit-tiny (vit, vanilla)"
    assert "output (2, 10)" in out
    assert "forward on (2, 1, 28, 28)" in out


def test_demo_tiny_seq2seq_with_overrides(capsys):
    code, out, err = run(capsys, "demo", "ringformer-mt-small", "d_model=32", "n_heads=2", "d_ff=64",
                         "n_layers=2", "vocab_size=40", "--batch", "3", "--length", "5")
    assert code == 0 and err == ""
    assert "output (3, 5, 40)" in out


# --- user errors: exit 2, one line, no traceback ----------------------------------------------


def test_unknown_preset(capsys):
    line = assert_one_line_user_error(*run(capsys, "params", "ringformer-mt-bas"))
    assert "ringformer-mt-bas" in line and "ringformer-mt-base" in line


def test_unknown_preset_in_demo(capsys):
    assert_one_line_user_error(*run(capsys, "demo", "no-such-model"))


def test_unknown_override_key(capsys):
    line = assert_one_line_user_error(*run(capsys, "params", "vit-s", "hidden_size=3"))
    assert "hidden_size" in line and "valid keys" in line


@pytest.mark.parametrize("override", ["d_model=abc", "dropout=1.5", "n_heads=7", "tie_embeddings=maybe", "noequals"])
def test_bad_override_value(capsys, override):
    line = assert_one_line_user_error(*run(capsys, "params", "vit-s", override))
    assert override.split("=")[0] in line


def test_bad_flag_value_through_config(capsys):
    assert_one_line_user_error(*run(capsys, "params", "vit-s", "--vocab-size", "0"))


def test_missing_checkpoint_directory(capsys, tmp_path):
    missing = tmp_path / "no" / "such" / "ckpt"
    line = assert_one_line_user_error(*run(capsys, "params", str(missing)))
    assert str(missing) in line


def test_corrupt_checkpoint_config(capsys, tmp_path):
    ckpt = save_model(create_model("ringformer-lm-small", **TINY), tmp_path / "ckpt")
    (ckpt / "config.json").write_text('{"format": "loopformer-model", ')
    line = assert_one_line_user_error(*run(capsys, "params", str(ckpt)))
    assert str(ckpt / "config.json") in line


def test_checkpoint_config_with_unknown_model_key(capsys, tmp_path):
    ckpt = save_model(create_model("ringformer-lm-small", **TINY), tmp_path / "ckpt")
    meta = json.loads((ckpt / "config.json").read_text())
    meta["model"]["mystery"] = 1
    (ckpt / "config.json").write_text(json.dumps(meta))
    line = assert_one_line_user_error(*run(capsys, "params", str(ckpt)))
    assert str(ckpt / "config.json") in line and "mystery" in line


def test_subprocess_user_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "loopformer", "params", "nope"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("loopformer: error: unknown preset 'nope'")
    assert "Traceback" not in proc.stderr
