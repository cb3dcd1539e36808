"""Parallel corpora from files: the three layouts, gzip, and every bad line named."""

import gzip
import json

import pytest

from loopformer.data.download import DataError
from loopformer.data.lines import LinePolicy
from loopformer.data.parallel import find_splits, read_split, scoring_splits, val_split_name

PAIRS = [("Ein Hund läuft.", "A dog runs."), ("Zwei Männer.", "Two men."), ("Ein Kind.", "A child.")]


def write_aligned(root, split, pairs, gz=False, src="de", tgt="en"):
    for lang, side in ((src, 0), (tgt, 1)):
        text = "".join(p[side] + "\n" for p in pairs).encode()
        path = root / f"{split}.{lang}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(text) if gz else text)


def read(root, split="train", src="de", tgt="en", **policy):
    splits = find_splits(str(root), src, tgt)
    return read_split(splits[split], src, tgt, LinePolicy(**policy))


def test_aligned_files_plain_and_gzipped(tmp_path):
    write_aligned(tmp_path, "train", PAIRS)
    write_aligned(tmp_path, "valid", PAIRS[:2], gz=True)
    write_aligned(tmp_path, "test", PAIRS[:1])
    splits = find_splits(str(tmp_path), "de", "en")
    assert set(splits) == {"train", "valid", "test"} and val_split_name(splits) == "valid"
    assert scoring_splits(splits) == ["test"]
    assert read(tmp_path) == ([p[0] for p in PAIRS], [p[1] for p in PAIRS])
    assert read(tmp_path, "valid") == ([p[0] for p in PAIRS[:2]], [p[1] for p in PAIRS[:2]])
    # the other direction reads the same files the other way round
    assert read(tmp_path, src="en", tgt="de") == ([p[1] for p in PAIRS], [p[0] for p in PAIRS])


def test_tsv_with_and_without_a_header(tmp_path):
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS))
    assert read(tmp_path)[0] == [p[0] for p in PAIRS]
    (tmp_path / "train.tsv").write_text("en\tde\n" + "".join(f"{t}\t{s}\n" for s, t in PAIRS))
    assert read(tmp_path) == ([p[0] for p in PAIRS], [p[1] for p in PAIRS])
    assert read(tmp_path, src="en", tgt="de")[0] == [p[1] for p in PAIRS]


def test_jsonl_flat_and_nested(tmp_path):
    rows = [{"de": s, "en": t} if i % 2 else {"translation": {"de": s, "en": t}, "id": i}
            for i, (s, t) in enumerate(PAIRS)]
    (tmp_path / "train.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert read(tmp_path) == ([p[0] for p in PAIRS], [p[1] for p in PAIRS])


def test_a_spec_names_each_split(tmp_path):
    write_aligned(tmp_path, "corpus", PAIRS)
    (tmp_path / "dev.tsv").write_text("a\tb\n")
    splits = find_splits(f"train:{tmp_path}/corpus,dev:{tmp_path}/dev.tsv", "de", "en")
    assert splits["train"].layout == "aligned" and splits["dev"].layout == "tsv"
    with pytest.raises(DataError, match="no test data at"):
        find_splits(f"train:{tmp_path}/corpus,test:{tmp_path}/nothing", "de", "en")


def test_line_count_mismatch_names_both_files(tmp_path):
    write_aligned(tmp_path, "train", PAIRS)
    (tmp_path / "train.en").write_text("A dog runs.\nTwo men.\n")
    with pytest.raises(DataError, match=r"train\.de has 3 lines but .*train\.en has 2"):
        read(tmp_path)


def test_bad_utf8_names_file_and_line_or_is_skipped(tmp_path):
    write_aligned(tmp_path, "train", PAIRS)
    (tmp_path / "train.de").write_bytes("Ein Hund.\nZwei M\xe4nner.\n".encode("latin-1") + b"Ein Kind.\n")
    with pytest.raises(DataError, match=r"train\.de:2: not UTF-8 text") as info:
        read(tmp_path)
    assert "\n" not in str(info.value)
    policy = LinePolicy("skip")
    src, tgt = read_split(find_splits(str(tmp_path), "de", "en")["train"], "de", "en", policy)
    assert src == ["Ein Hund.", "Ein Kind."] and tgt == ["A dog runs.", "A child."]  # still aligned
    assert policy.skipped == {"not UTF-8 text": 1}


def test_empty_and_overlong_lines(tmp_path):
    write_aligned(tmp_path, "train", [("a", "b"), ("  ", "c"), ("d" * 50, "e"), ("f", "g")])
    with pytest.raises(DataError, match=r"train\.de:2: empty sentence"):
        read(tmp_path)
    policy = LinePolicy("skip", max_chars=20)
    src, _ = read_split(find_splits(str(tmp_path), "de", "en")["train"], "de", "en", policy)
    assert src == ["a", "f"] and policy.skipped == {"empty sentence": 1, "over-long line": 1}
    write_aligned(tmp_path, "train", [("a", "b"), ("d" * 50, "e")])
    with pytest.raises(DataError, match=r"train\.de:2: over-long line \(50 characters; max_line_chars=20\)"):
        read(tmp_path, max_chars=20)


def test_a_gigantic_line_is_not_read_whole(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"x" * 5_000_000 + b"\ty\nok\tfine\n")
    with pytest.raises(DataError, match=r"train\.tsv:1: over-long line \(more than"):
        read(tmp_path)
    assert read(tmp_path, bad_lines="skip") == (["ok"], ["fine"])


def test_malformed_tsv_and_jsonl_lines(tmp_path):
    (tmp_path / "train.tsv").write_text("a\tb\nonly one column\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: not two tab-separated columns \(found 1\)"):
        read(tmp_path)
    (tmp_path / "train.tsv").unlink()
    (tmp_path / "train.jsonl").write_text('{"de": "a", "en": "b"}\n{"de": "a", "fr": "b"}\n')
    with pytest.raises(DataError, match=r'train\.jsonl:2: not a JSON object with "de" and "en"'):
        read(tmp_path)


def test_layout_problems_are_named(tmp_path):
    with pytest.raises(DataError, match="no train split"):
        find_splits(str(tmp_path), "de", "en")
    (tmp_path / "train.de").write_text("a\n")
    with pytest.raises(DataError, match=r"train\.en is missing"):
        find_splits(str(tmp_path), "de", "en")
    (tmp_path / "train.en").write_text("b\n")
    (tmp_path / "train.tsv").write_text("a\tb\n")
    with pytest.raises(DataError, match="more than one layout"):
        find_splits(str(tmp_path), "de", "en")
    with pytest.raises(DataError, match="neither a directory"):
        find_splits(str(tmp_path / "absent"), "de", "en")


def test_truncated_gzip_is_one_line(tmp_path):
    write_aligned(tmp_path, "train", PAIRS * 200, gz=True)
    data = (tmp_path / "train.de.gz").read_bytes()
    (tmp_path / "train.de.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train\.de\.gz: cannot be read after line"):
        read(tmp_path)
