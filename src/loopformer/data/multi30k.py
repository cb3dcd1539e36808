"""Multi30k German-English (task 1): train / val / test2016 / test2017."""

from __future__ import annotations

import gzip

from .download import DataError, fetch

SPLIT_FILES = {
    "train": "train",
    "val": "val",
    "test2016": "test_2016_flickr",
    "test2017": "test_2017_flickr",
}
LANGS = ("de", "en")


def read_lines(dataset: str, name: str) -> list[str]:
    path = fetch(dataset, name)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [line.rstrip("\n") for line in fh]
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as gzip UTF-8 text: {exc}") from None


def load_multi30k(split: str, src_lang: str = "de", tgt_lang: str = "en") -> tuple[list[str], list[str]]:
    """Parallel sentences of ``split`` as (sources, targets)."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown Multi30k split '{split}'; choose from {', '.join(SPLIT_FILES)}")
    if {src_lang, tgt_lang} != set(LANGS):
        raise DataError(f"Multi30k direction must be de-en or en-de, got {src_lang}-{tgt_lang}")
    stem = SPLIT_FILES[split]
    src = read_lines("multi30k", f"{stem}.{src_lang}.gz")
    tgt = read_lines("multi30k", f"{stem}.{tgt_lang}.gz")
    if len(src) != len(tgt):
        raise DataError(f"Multi30k {split}: {len(src)} source lines but {len(tgt)} target lines")
    return src, tgt
