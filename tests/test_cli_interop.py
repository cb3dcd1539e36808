"""``loopformer export`` / ``import``: argument errors are one line, before any work."""

import importlib.util

from loopformer.cli import main


def test_a_missing_extra_names_the_install(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a))
    assert main(["export", "ctranslate2", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'loopformer[deploy]'" in err


def test_quantization_applies_to_ctranslate2_only(tmp_path, capsys):
    assert main(["export", "onnx", str(tmp_path), str(tmp_path / "out"), "--quantization", "int8"]) == 2
    assert "ctranslate2 exports only" in capsys.readouterr().err


def test_import_needs_a_config(tmp_path, capsys):
    assert main(["import", "hf", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_export_of_a_missing_checkpoint(tmp_path, capsys):
    assert main(["export", "hf", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
