"""Parallel corpora in the layouts people keep them in, for any language pair.

A directory holds one set of files per split, in any of three layouts:

* aligned plain text, one sentence a line: ``train.de`` + ``train.en``;
* TSV, a sentence pair a line: ``train.tsv`` (source column first, or a header line
  naming the two languages, e.g. ``de<TAB>en``, so one file serves both directions);
* JSONL, an object a line: ``{"de": ..., "en": ...}`` or ``{"translation": {"de": ..., "en": ...}}``.

Any of them may be gzipped (``.gz``). ``train`` is required; the validation split is
the first of :data:`VAL_NAMES` present; every other split found is a test split. A spec
``train:PATH,valid:PATH,...`` names each split's file (TSV or JSONL) or path prefix
(aligned files ``PATH.de``/``PATH.en``) instead of a directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from .download import DataError
from .lines import LinePolicy, numbered_lines

VAL_NAMES = ("val", "valid", "dev", "validation")
PAIR_FORMATS = ("tsv", "jsonl")


@dataclass(frozen=True)
class SplitFiles:
    """Where one split's sentence pairs are: its layout and file(s) (aligned: source, target)."""

    name: str
    layout: str  # aligned | tsv | jsonl
    paths: tuple[Path, ...]


def find_splits(data: str, src: str, tgt: str) -> dict[str, SplitFiles]:
    """Every split of a data directory or spec, by name; ``train`` among them."""
    if os.path.isdir(data):
        splits = scan_directory(Path(data), src, tgt)
        where = data
    elif ":" in data:
        splits = parse_spec(data, src, tgt)
        where = f"data={data}"
    else:
        raise DataError(f"data={data!r} is neither a directory nor a list of split:path (train:train.tsv,...)")
    if "train" not in splits:
        found = ", ".join(sorted(splits)) or "no split files"
        raise DataError(f"{where} has no train split for {src}-{tgt} (found: {found}); expected e.g. "
                        f"train.{src} + train.{tgt}, train.tsv or train.jsonl")
    return splits


def val_split_name(splits: dict[str, SplitFiles]) -> str | None:
    return next((name for name in VAL_NAMES if name in splits), None)


def scoring_splits(splits: dict[str, SplitFiles]) -> list[str]:
    """The splits that are neither training nor validation, in name order."""
    return sorted(n for n in splits if n != "train" and n not in VAL_NAMES)


def strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def scan_directory(root: Path, src: str, tgt: str) -> dict[str, SplitFiles]:
    groups: dict[str, dict[str, Path]] = {}
    for path in sorted(root.iterdir()):
        stem, dot, ext = strip_gz(path.name).rpartition(".")
        if not dot or not stem or ext not in (src, tgt, *PAIR_FORMATS) or not path.is_file():
            continue
        kinds = groups.setdefault(stem, {})
        if ext in kinds:
            raise DataError(f"{root}: both {kinds[ext].name} and {path.name} hold split {stem}; keep one")
        kinds[ext] = path
    return {stem: split_of(root, stem, kinds, src, tgt) for stem, kinds in groups.items()}


def split_of(root: Path, stem: str, kinds: dict[str, Path], src: str, tgt: str) -> SplitFiles:
    found = []
    if src in kinds or tgt in kinds:
        have, missing = (src, tgt) if src in kinds else (tgt, src)
        if missing not in kinds:
            raise DataError(f"{root / f'{stem}.{missing}'} is missing: {kinds[have].name} has no {missing} side")
        found.append(SplitFiles(stem, "aligned", (kinds[src], kinds[tgt])))
    found += [SplitFiles(stem, fmt, (kinds[fmt],)) for fmt in PAIR_FORMATS if fmt in kinds]
    if len(found) > 1:
        names = ", ".join(p.name for s in found for p in s.paths)
        raise DataError(f"{root}: split {stem} is given in more than one layout ({names}); keep one")
    return found[0]


def parse_spec(spec: str, src: str, tgt: str) -> dict[str, SplitFiles]:
    splits: dict[str, SplitFiles] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, colon, location = item.partition(":")
        if not colon or not name or not location:
            raise DataError(f"data: {item!r} must look like split:path (e.g. train:corpus/train.tsv)")
        if name in splits:
            raise DataError(f"data: split {name} is named twice")
        splits[name] = locate(name, Path(os.path.expanduser(location)), src, tgt)
    return splits


def locate(name: str, location: Path, src: str, tgt: str) -> SplitFiles:
    """A spec entry: a TSV/JSONL file, or the prefix of two aligned files."""
    fmt = strip_gz(location.name).rpartition(".")[2]
    if fmt in PAIR_FORMATS and location.is_file():
        return SplitFiles(name, fmt, (location,))
    sides = []
    for lang in (src, tgt):
        options = [Path(f"{location}.{lang}{gz}") for gz in ("", ".gz")]
        sides.append(next((p for p in options if p.is_file()), None))
    if all(sides):
        return SplitFiles(name, "aligned", tuple(sides))
    raise DataError(f"data: no {name} data at {location} (neither a .tsv/.jsonl file nor "
                    f"{location}.{src} + {location}.{tgt})")


def read_split(files: SplitFiles, src: str, tgt: str, policy: LinePolicy) -> tuple[list[str], list[str]]:
    """(sources, targets) of a split, every line checked by ``policy``."""
    reader = {"aligned": read_aligned, "tsv": read_tsv, "jsonl": read_jsonl}[files.layout]
    sources, targets = reader(files, src, tgt, policy)
    if not sources:
        raise DataError(f"{files.paths[0]} holds no usable sentence pairs")
    return sources, targets


def read_aligned(files: SplitFiles, src: str, tgt: str, policy: LinePolicy) -> tuple[list[str], list[str]]:
    a, b = files.paths
    sources, targets = [], []
    end = (None, None)
    for (n, s), (m, t) in zip_longest(numbered_lines(a, policy), numbered_lines(b, policy), fillvalue=end):
        if n is None or m is None:
            count_a = sum(1 for _ in numbered_lines(a, LinePolicy("skip", policy.max_chars)))
            count_b = sum(1 for _ in numbered_lines(b, LinePolicy("skip", policy.max_chars)))
            raise DataError(f"{a} has {count_a:,} lines but {b} has {count_b:,}: aligned files pair line by line")
        if s is None or t is None or not policy.check(f"{a}:{n}", s, t):
            continue
        sources.append(s)
        targets.append(t)
    return sources, targets


def read_tsv(files: SplitFiles, src: str, tgt: str, policy: LinePolicy) -> tuple[list[str], list[str]]:
    path = files.paths[0]
    sources, targets = [], []
    order = (0, 1)
    for n, line in numbered_lines(path, policy):
        if line is None:
            continue
        cells = line.split("\t")
        names = [c.strip() for c in cells]
        if n == 1 and sorted(names) == sorted((src, tgt)):  # a header naming the columns
            order = (names.index(src), names.index(tgt))
            continue
        if len(cells) != 2:
            policy.reject(f"{path}:{n}", "not two tab-separated columns", f" (found {len(cells)})")
            continue
        s, t = cells[order[0]], cells[order[1]]
        if policy.check(f"{path}:{n}", s, t):
            sources.append(s)
            targets.append(t)
    return sources, targets


def read_jsonl(files: SplitFiles, src: str, tgt: str, policy: LinePolicy) -> tuple[list[str], list[str]]:
    path = files.paths[0]
    sources, targets = [], []
    for n, line in numbered_lines(path, policy):
        if line is None:
            continue
        pair = json_pair(line, src, tgt)
        if pair is None:
            policy.reject(f"{path}:{n}", "not a JSON object with",
                          f' "{src}" and "{tgt}" strings (or a "translation" object holding them)')
        elif policy.check(f"{path}:{n}", *pair):
            sources.append(pair[0])
            targets.append(pair[1])
    return sources, targets


def json_pair(line: str, src: str, tgt: str) -> tuple[str, str] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(record, dict) and isinstance(record.get("translation"), dict):
        record = record["translation"]
    if not isinstance(record, dict):
        return None
    s, t = record.get(src), record.get(tgt)
    return (s, t) if isinstance(s, str) and isinstance(t, str) else None
