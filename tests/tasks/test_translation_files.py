"""`loopformer train translation data=...` on the user's own files, then eval and translate."""

import gzip
import io
import json
import sys

import pytest

from loopformer.cli import main
from loopformer.tasks.translation import TranslationConfig
from loopformer.errors import ConfigError

TINY = ["d_model=32", "n_heads=2", "d_ff=64", "n_layers=1", "max_steps=2", "batch_tokens=256",
        "bpe_vocab_size=300", "val_bleu_sentences=4", "progress=false", "log_every=1", "max_sentence_tokens=12",
        "test_beam=1", "eval_every=2"]
FR = ["le chat dort", "un chien court", "deux hommes marchent", "une femme lit", "le soleil brille"]
EN = ["the cat sleeps", "a dog runs", "two men walk", "a woman reads", "the sun shines"]


def layout(root, kind):
    root.mkdir()
    for split, n in (("train", 5), ("dev", 3), ("test", 2)):
        fr, en = FR[:n], EN[:n]
        if kind == "aligned":
            (root / f"{split}.fr").write_text("\n".join(fr) + "\n")
            (root / f"{split}.en.gz").write_bytes(gzip.compress(("\n".join(en) + "\n").encode()))
        elif kind == "tsv":
            (root / f"{split}.tsv").write_text("en\tfr\n" + "".join(f"{e}\t{f}\n" for f, e in zip(fr, en)))
        else:
            rows = [json.dumps({"translation": {"fr": f, "en": e}}) for f, e in zip(fr, en)]
            (root / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    return root


def train(tmp_path, data, *extra):
    out = tmp_path / "run"
    args = ["train", "translation", "--model", "looped", "--preset", "mt-small", "--out", str(out),
            f"data={data}", "src_lang=fr", "tgt_lang=en", *TINY, *extra]
    return main(args), out


@pytest.mark.parametrize("kind", ["aligned", "tsv", "jsonl"])
def test_trains_from_each_layout_and_scores_its_test_split(tmp_path, kind, capsys):
    code, out = train(tmp_path, layout(tmp_path / "data", kind))
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert "test" in results and results["data"]["splits"]["train"]["layout"] == kind
    task = json.loads((out / "best" / "task.json").read_text())
    assert task["data"] == str(tmp_path / "data") and task["src_lang"] == "fr"


def test_eval_and_translate_on_any_split_or_file(tmp_path, capsys, monkeypatch):
    code, out = train(tmp_path, layout(tmp_path / "data", "tsv"), "vocab=separate")
    assert code == 0, capsys.readouterr().err
    assert (out / "best" / "tokenizer-target.json").is_file()
    capsys.readouterr()
    assert main(["eval", str(out / "best"), "--split", "dev", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "dev"
    (tmp_path / "src.txt").write_text("le chat dort\nun chien court\n")
    (tmp_path / "ref.txt").write_text("the cat sleeps\na dog runs\n")
    assert main(["eval", str(out / "best"), "--src", str(tmp_path / "src.txt"), "--ref",
                 str(tmp_path / "ref.txt"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["sentences"] == 2 and "bleu" in res
    (tmp_path / "ref.txt").write_text("the cat sleeps\n")
    assert main(["eval", str(out / "best"), "--src", str(tmp_path / "src.txt"),
                 "--ref", str(tmp_path / "ref.txt")]) == 2
    assert "ref.txt has 1 lines but" in capsys.readouterr().err
    assert main(["eval", str(out / "best"), "--split", "nosuch"]) == 2
    assert "no split 'nosuch'" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"le chat dort\n"), encoding="utf-8"))
    assert main(["translate", str(out / "best")]) == 0


def test_problems_are_found_before_training(tmp_path, capsys):
    data = layout(tmp_path / "data", "aligned")
    (data / "dev.fr").unlink()
    (data / "dev.en.gz").unlink()
    code, out = train(tmp_path, data)
    assert code == 2 and "has no validation split" in capsys.readouterr().err
    assert not (out / "last").exists()
    layout_dir = layout(tmp_path / "data2", "aligned")
    code, _ = train(tmp_path, layout_dir, "test_splits=test,test2016")
    assert code == 2 and "has no split 'test2016'" in capsys.readouterr().err
    (layout_dir / "train.fr").write_text("le chat\n\nun chien\n\nx\n")
    code, _ = train(tmp_path, layout_dir, "test_splits=test")
    err = capsys.readouterr().err
    assert code == 2 and "train.fr:2: empty sentence" in err and err.count("\n") == 1


def test_bad_lines_skip_counts_what_it_skipped(tmp_path, capsys):
    data = layout(tmp_path / "data", "tsv")
    (data / "train.tsv").write_text((data / "train.tsv").read_text() + "broken line\n\tonly target\n")
    code, out = train(tmp_path, data, "bad_lines=skip")
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["skipped"]["train"] == {"not two tab-separated columns": 1, "empty sentence": 1}


def test_settings_that_only_fit_multi30k():
    with pytest.raises(ConfigError, match="Multi30k translates de->en"):
        TranslationConfig(src_lang="fr", tgt_lang="en")
    TranslationConfig(data="/some/dir", src_lang="fr", tgt_lang="en")
    with pytest.raises(ConfigError, match="two different language codes"):
        TranslationConfig(data="/some/dir", src_lang="en", tgt_lang="en")
    with pytest.raises(ConfigError, match="vocab must be one of joint, separate"):
        TranslationConfig(vocab="shared")
