"""Prepared corpora (``loopformer prepare text``): writing, reading back, and every bad folder
ending in one line that names the file."""

import gzip
import json
import sys
import types

import numpy as np
import pytest
import torch

from loopformer.data.download import DataError
from loopformer.data.corpus_sources import Corpus, cut
from loopformer.data.prepare_tokens import Prepare, prepare_text
from loopformer.data.token_files import MANIFEST, TOKENS, TokenFile
from loopformer.data.tokenizer import EOS

DOCS = ["To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 8,
        "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n" * 8,
        "And by opposing end them. To die\u2014to sleep,\nNo more; and by a sleep to say we end\n" * 8,
        "The heart-ache and the thousand natural shocks\nThat flesh is heir to: 'tis a consummation\n" * 8]


@pytest.fixture
def sources(tmp_path):
    """The four documents as a text file, a gzipped text file and a JSONL file of two records."""
    (tmp_path / "a.txt").write_text(DOCS[0])
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(DOCS[1].encode()))
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(DOCS[2:]))
                                      + "\n\n")
    return [str(tmp_path / n) for n in ("a.txt", "b.txt.gz", "c.jsonl")]


def prepare(sources, out, **kw):
    kw.setdefault("progress", False)
    return prepare_text(Corpus(list(sources)), Prepare(out, **kw))


def test_char_round_trip_with_newline_separators(sources, tmp_path):
    m = prepare(sources, tmp_path / "p", tokenizer="char", val_fraction=0.1)
    assert (m["documents"], m["characters"], m["dtype"]) == (4, sum(map(len, DOCS)), "uint16")
    assert m["tokens"] == m["characters"] + 4 and m["val_tokens"] == int(m["tokens"] * 0.1)
    tf = TokenFile(tmp_path / "p")
    whole = tf.tokenizer.decode(tf.read(0, m["tokens"]).tolist())
    assert whole == "".join(d + "\n" for d in DOCS)
    assert [s["format"] for s in m["sources"]] == ["text", "text", "jsonl"] and len(m["sources"][0]["sha256"]) == 64
    assert tf.sha256 == __import__("hashlib").sha256((tmp_path / "p" / MANIFEST).read_bytes()).hexdigest()


def test_bpe_round_trip_with_eos_between_documents(sources, tmp_path):
    m = prepare(sources, tmp_path / "p", tokenizer="bpe", vocab_size=300)
    tf = TokenFile(tmp_path / "p")
    ids = tf.read(0, m["tokens"]).tolist()
    assert ids.count(EOS) == 4 and ids[-1] == EOS and m["tokens"] < m["characters"]
    bounds = [-1] + [i for i, t in enumerate(ids) if t == EOS]
    docs = [tf.tokenizer.decode(ids[a + 1 : b]) for a, b in zip(bounds, bounds[1:])]
    assert docs == [d.strip() for d in DOCS]  # BPETokenizer.decode strips the ends


def test_windows_read_the_split_at_their_offsets(sources, tmp_path):
    m = prepare(sources, tmp_path / "p", tokenizer="char", val_fraction=0.2)
    tf = TokenFile(tmp_path / "p")
    every = torch.from_numpy(tf.read(0, m["tokens"]).astype(np.int64))
    w = tf.windows("train", torch.tensor([0, 5, m["train_tokens"] - 7]), 7)
    assert w.dtype == torch.long and w.shape == (3, 7)
    assert torch.equal(w[1], every[5:12]) and torch.equal(w[2], every[m["train_tokens"] - 7 : m["train_tokens"]])
    v = tf.windows("val", [0, 3], 4)
    assert torch.equal(v[1], every[m["train_tokens"] + 3 : m["train_tokens"] + 7])
    with pytest.raises(ValueError, match="does not fit"):
        tf.windows("val", [m["val_tokens"] - 3], 4)


def test_uint32_when_the_vocabulary_passes_65536(tmp_path):
    text = "".join(chr(0x20000 + i) for i in range(66_000))  # 66,000 distinct characters (planes 2-3)
    (tmp_path / "cjk.txt").write_text(text, encoding="utf-8")
    m = prepare([str(tmp_path / "cjk.txt")], tmp_path / "p", tokenizer="char")
    assert m["dtype"] == "uint32" and m["vocab_size"] == 66_001
    assert (tmp_path / "p" / TOKENS).stat().st_size == 4 * m["tokens"]
    tf = TokenFile(tmp_path / "p")
    assert tf.read(65_998, 3).tolist() == [65_999, 66_000, 0]  # the last characters, then "\n" (id 0)


def test_a_prepared_folder_is_refused_without_force(sources, tmp_path):
    prepare(sources, tmp_path / "p", tokenizer="char")
    before = (tmp_path / "p" / MANIFEST).read_bytes()
    with pytest.raises(DataError, match=r"already holds a prepared corpus.*--force"):
        prepare(sources[:1], tmp_path / "p", tokenizer="char")
    assert (tmp_path / "p" / MANIFEST).read_bytes() == before
    m = prepare(sources[:1], tmp_path / "p", tokenizer="bpe", vocab_size=300, force=True)
    assert m["documents"] == 1 and not (tmp_path / "p" / "chars.json").exists()
    assert TokenFile(tmp_path / "p").kind == "bpe"


def test_an_interrupted_prepare_leaves_no_complete_looking_folder(sources, tmp_path, monkeypatch):
    from loopformer.data import prepare_tokens

    prepare(sources, tmp_path / "p", tokenizer="char")

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_tokens, "encode_batch", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare(sources, tmp_path / "p", tokenizer="char", force=True)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["chars.json"]
    with pytest.raises(DataError, match="holds no prepared.json"):
        TokenFile(tmp_path / "p")


def test_cut_prefers_line_breaks_and_bounds_pieces():
    text = "ab\ncd\n" * 10 + "x" * 25
    pieces = list(cut(text, 8))
    assert "".join(pieces) == text and max(map(len, pieces)) <= 8
    assert all(p.endswith("\n") for p in pieces[:10])


@pytest.fixture
def folder(sources, tmp_path):
    prepare(sources, tmp_path / "p", tokenizer="bpe", vocab_size=300)
    return tmp_path / "p"


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_a_truncated_token_file_is_one_line(folder):
    data = (folder / TOKENS).read_bytes()
    (folder / TOKENS).write_bytes(data[:-3])
    with pytest.raises(DataError) as exc:
        TokenFile(folder)
    assert str(folder / TOKENS) in one_line(exc) and "truncated" in one_line(exc)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is corrupt"),
    (b"[]", "not a token-file manifest"),
    (None, "does not exist"),
])
def test_a_bad_manifest_is_one_line(folder, content, message):
    path = folder / MANIFEST
    if content is None:
        path.unlink()
        (folder / "tokens.bin").unlink()  # no folder content left to recognise
        folder.rename(folder.parent / "gone")
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as exc:
        TokenFile(folder)
    assert str(path) in one_line(exc)


@pytest.mark.parametrize("key, value, message", [
    ("dtype", "float64", "dtype must be one of"), ("tokens", -1, "must be a count"),
    ("val_tokens", 0, "must equal tokens"), ("vocab_size", 299, "tokenizer has"), ("version", 7, "version"),
    ("tokenizer", "char", "chars.json"),
])
def test_manifest_fields_are_checked(folder, key, value, message):
    data = json.loads((folder / MANIFEST).read_text())
    data[key] = value
    (folder / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(DataError, match=message) as exc:
        TokenFile(folder)
    one_line(exc)


def test_ids_beyond_the_vocabulary_and_a_missing_tokenizer(folder):
    data = bytearray((folder / TOKENS).read_bytes())
    data[0:2] = (60000).to_bytes(2, "little")
    (folder / TOKENS).write_bytes(bytes(data))
    with pytest.raises(DataError, match="beyond the vocabulary") as exc:
        TokenFile(folder)
    assert str(folder / TOKENS) in one_line(exc)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(DataError, match="tokenizer.json is missing"):
        TokenFile(folder)


@pytest.mark.parametrize("content, message", [
    (b"caf\xe9\n", "not UTF-8"), (gzip.compress(b"hello\n")[:-6], "cannot read corpus file"),
])
def test_bad_sources_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as exc:
        prepare([str(path)], tmp_path / "p", tokenizer="char")
    assert str(path) in one_line(exc)


@pytest.mark.parametrize("line, message", [("{bad", "not a JSON record"), ('{"body": "x"}', "no text field 'text'"),
                                           ("[1, 2]", "no text field")])
def test_bad_jsonl_records_name_the_line(tmp_path, line, message):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(DataError, match=message) as exc:
        prepare([str(path)], tmp_path / "p", tokenizer="char")
    assert f"{path}:2" in one_line(exc)


def test_missing_and_empty_corpora(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare([str(tmp_path / "nope.txt")], tmp_path / "p")
    assert not (tmp_path / "p").exists()  # refused before the folder is made
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="holds no text"):
        prepare([str(tmp_path / "empty.txt")], tmp_path / "p", tokenizer="char")
    assert not (tmp_path / "p" / MANIFEST).exists()


def test_hf_datasets_streamed_or_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match="pip install datasets"):
        prepare_text(Corpus([], hf_dataset="wikitext"), Prepare(tmp_path / "p", tokenizer="char", progress=False))
    calls = []

    def load_dataset(name, split, streaming, **kw):
        calls.append((name, split, streaming, kw))
        return [{"text": d} for d in DOCS]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    m = prepare_text(Corpus([], hf_dataset="wikitext", hf_split="validation"),
                     Prepare(tmp_path / "p", tokenizer="char", progress=False))
    assert calls == [("wikitext", "validation", True, {})] * 2 and m["documents"] == 4  # characters: two passes
    assert m["sources"] == [{"hf_dataset": "wikitext", "split": "validation"}]


def test_the_cli_prepares_and_reports(sources, tmp_path, capsys):
    from loopformer.cli import main

    out = tmp_path / "p"
    assert main(["prepare", "text", *sources, "--out", str(out), "--tokenizer", "char", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "documents 4" in text and "characters/s" in text and "peak memory" in text
    assert main(["prepare", "text", *sources, "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["prepare", "text", "--out", str(out)]) == 2
    assert "give corpus files" in capsys.readouterr().err
    assert main(["prepare", "text", sources[0], "--out", str(out), "--val-fraction", "0.9"]) == 2
