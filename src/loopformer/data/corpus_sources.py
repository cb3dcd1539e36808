"""Reading the documents of a corpus for ``loopformer prepare text``: text files, JSONL
files (gzipped or not) or a HuggingFace data set, as a stream of bounded text pieces, with
``None`` where a document ends. Text files are cut at line breaks and JSONL is read one
record at a time, so no source is ever held in memory whole; the pieces are what
:mod:`.prepare_tokens` tokenises into a prepared folder (:mod:`.token_files`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..errors import LoopformerError
from ..files import MiB, check_regular, sha256_file
from .download import DataError

LINE_LIMIT = 64 * MiB  # one JSONL record
READ_CHARS = 1 << 20  # text read from a file at once
PIECE_CHARS = 1 << 16  # the unit of tokenisation (BPE batches spread pieces over threads)
Pieces = Iterator["str | None"]  # text pieces; None ends a document


def source_format(path: str, fmt: str) -> str:
    """``text`` or ``jsonl``: ``auto`` goes by the name (``.jsonl``/``.json``, gzipped or not)."""
    if fmt != "auto":
        return fmt
    name = path[:-3] if path.endswith(".gz") else path
    return "jsonl" if name.endswith((".jsonl", ".json", ".ndjson")) else "text"


@contextmanager
def open_text(path: str) -> Iterator[io.TextIOBase]:
    """A UTF-8 text stream of a regular file, gunzipped when it starts with gzip's magic;
    line ends kept as written (the corpus is the bytes, as :func:`.text.load_text` reads
    them). Read failures inside (a bad gzip stream, a byte that is not UTF-8, a disk error)
    end as one DataError naming the file."""
    check_regular(path, "corpus file", DataError)
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw
            yield io.TextIOWrapper(stream, encoding="utf-8", newline="")
    except UnicodeDecodeError:
        raise DataError(f"corpus file {path} is not UTF-8 text") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read corpus file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def cut(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of at most ``size`` characters, cut after a line break where there
    is one (a BPE word is then never split between pieces)."""
    start = 0
    while len(text) - start > size:
        end = text.rfind("\n", start, start + size) + 1
        end = end if end > start else start + size
        yield text[start:end]
        start = end
    if start < len(text):
        yield text[start:]


def text_pieces(path: str) -> Pieces:
    """A text file as one document (none when it is empty), read in bounded pieces."""
    with open_text(path) as fh:
        rest, empty = "", True
        while block := fh.read(READ_CHARS):
            block, empty = rest + block, False
            end = block.rfind("\n") + 1 or len(block)
            rest = block[end:]
            yield from cut(block[:end])
        yield from cut(rest)
    if not empty:
        yield None


def jsonl_pieces(path: str, key: str) -> Pieces:
    """Every record of a JSON-lines file as a document: its string field ``key``."""
    with open_text(path) as fh:
        number = 0
        while line := fh.readline(LINE_LIMIT + 1):
            number += 1
            if len(line) > LINE_LIMIT:
                raise DataError(f"{path}:{number}: a record longer than {LINE_LIMIT // MiB} MiB")
            if not line.strip():
                continue
            yield from document(record_text(line, key, f"{path}:{number}"))


def record_text(line: str | dict, key: str, where: str) -> str:
    try:
        record = json.loads(line) if isinstance(line, str) else line
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{where}: not a JSON record ({str(exc).splitlines()[0]})") from None
    text = record.get(key) if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise DataError(f"{where}: the record has no text field {key!r} (choose another with --field)")
    return text


def document(text: str) -> Pieces:
    if text:
        yield from cut(text)
        yield None


def hf_pieces(name: str, split: str, files: Sequence[str], key: str) -> Pieces:
    """A HuggingFace ``datasets`` data set, streamed: by name, or a builder (``json``,
    ``text``, ``parquet``) on local files."""
    try:
        import datasets
    except ImportError:
        raise DataError("--hf-dataset needs the datasets package: pip install datasets") from None
    where = f"HF data set {name!r} (split {split!r})"
    try:
        kwargs = {"data_files": list(files)} if files else {}
        records = iter(datasets.load_dataset(name, split=split, streaming=True, **kwargs))
        for number, record in enumerate(records, 1):
            yield from document(record_text(record, key, f"{where}, record {number}"))
    except LoopformerError:
        raise
    except Exception as exc:  # datasets raises many kinds: missing data set, network, bad files
        raise DataError(f"cannot read {where}: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None


@dataclass
class Corpus:
    """What ``loopformer prepare text`` reads: files (text or JSONL), or a HF data set."""

    files: list[str]
    format: str = "auto"  # auto | text | jsonl
    field: str = "text"
    hf_dataset: str | None = None
    hf_split: str = "train"

    def pieces(self) -> Pieces:
        if self.hf_dataset is not None:
            yield from hf_pieces(self.hf_dataset, self.hf_split, self.files, self.field)
            return
        for path in self.files:
            if source_format(path, self.format) == "jsonl":
                yield from jsonl_pieces(path, self.field)
            else:
                yield from text_pieces(path)

    def describe(self) -> list[dict[str, Any]]:
        """The sources for the manifest: each file's size and sha256 (checked regular first)."""
        out = [{"path": os.path.abspath(p), "bytes": check_regular(p, "corpus file", DataError),
                "sha256": sha256_file(p, "corpus file", DataError),
                "format": "hf" if self.hf_dataset else source_format(p, self.format)} for p in self.files]
        if self.hf_dataset is not None:
            out.insert(0, {"hf_dataset": self.hf_dataset, "split": self.hf_split})
        return out
