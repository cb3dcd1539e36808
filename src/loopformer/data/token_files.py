"""A tokenised corpus on disk (nanoGPT's ``train.bin``): every token id of a corpus in one
flat binary file, read by slicing a memory map, so that training memory stays the same
whether the corpus has a million characters or ten billion.

A prepared folder holds:

- ``tokens.bin``: the ids, ``uint16`` when the vocabulary fits (at most 65,536 ids), else
  ``uint32``; documents are separated by ``<eos>`` (BPE) or by a ``"\\n"`` (characters);
- ``tokenizer.json`` (BPE) or ``chars.json`` (characters), the tokenizer's own files;
- ``prepared.json``, the manifest: sizes, the train / validation cut (the validation
  part is the contiguous tail, as in :mod:`.text`), the sources with their sha256, and the
  sha256 of ``tokens.bin``. It is written last, so a folder without it is not a prepared
  folder, whatever an interrupted run left there.

Writing streams: documents are read in bounded pieces (text files cut at line breaks,
JSONL one record at a time), tokenised in batches (byte-level BPE in the Rust library's
threads; characters by a vectorised table lookup, ten times a Python loop's speed and
more than a process pool could gain on the transfer cost) and appended to the file. Only
the BPE training sample (``tokenizer_sample_chars``, from the start of the corpus) is
ever held in memory whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import CheckpointError, LoopformerError
from ..files import MiB, check_regular, read_json, sha256_file
from .download import DataError
from .text import CharTokenizer
from .tokenizer import EOS, FILE_NAME as BPE_FILE, BPETokenizer

MANIFEST = "prepared.json"
TOKENS = "tokens.bin"
FORMAT = "loopformer-tokens"
VERSION = 1
MANIFEST_LIMIT = 64 * MiB  # a manifest lists its sources: ~200 bytes each
LINE_LIMIT = 64 * MiB  # one JSONL record
READ_CHARS = 1 << 20  # text read from a file at once
PIECE_CHARS = 1 << 16  # the unit of tokenisation (BPE batches spread pieces over threads)
BATCH_CHARS = 1 << 21  # text tokenised per call; bounds the memory of one batch
CHECKED_IDS = 1 << 20  # ids checked against the vocabulary when a folder is opened
KINDS = ("bpe", "char")
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
Pieces = Iterator["str | None"]  # text pieces; None ends a document


# --- reading documents ------------------------------------------------------------------


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


# --- writing a prepared folder -----------------------------------------------------------


@dataclass
class Prepare:
    """The settings of one ``prepare text`` run (see the command for their meaning)."""

    out: Path
    tokenizer: str = "bpe"
    vocab_size: int = 8192
    val_fraction: float = 0.005
    tokenizer_sample_chars: int = 100_000_000
    force: bool = False
    progress: bool = True
    counts: dict[str, int] = field(default_factory=lambda: {"characters": 0, "documents": 0, "tokens": 0})


def check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite a prepared folder without ``force``, or to write into a file."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output folder {out} exists and is not a folder")
    if os.path.lexists(out / MANIFEST) and not force:
        raise DataError(f"{out} already holds a prepared corpus ({MANIFEST}); give --force to replace it")


def clear_out(out: Path) -> None:
    """The output folder, created, without the files of an earlier preparation (``--force``:
    the manifest goes first, so the folder never looks complete with old and new mixed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in (MANIFEST, TOKENS, BPE_FILE, CharTokenizer.FILE_NAME):
            (out / stale).unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write output folder {out}: {exc.strerror or exc}") from None


def sample(pieces: Pieces, limit: int) -> Iterator[str]:
    """The first ``limit`` characters of the corpus, piece by piece (a BPE training sample)."""
    seen = 0
    for piece in pieces:
        if piece is not None:
            yield piece[: limit - seen]
            seen += len(piece)
            if seen >= limit:
                return


def char_vocabulary(pieces: Pieces, bar) -> CharTokenizer:
    """Every distinct character of the corpus (one pass), and the document separator."""
    chars = {"\n"}
    for piece in pieces:
        if piece is not None:
            chars.update(piece)
            bar.update(len(piece))
    return CharTokenizer(sorted(chars))


def char_encoder(tok: CharTokenizer) -> Callable[[list[str]], list[np.ndarray]]:
    """Characters to ids through a table indexed by code point (vectorised)."""
    table = np.full(max(map(ord, tok.chars)) + 1, -1, dtype=np.int64)
    table[[ord(c) for c in tok.chars]] = np.arange(len(tok.chars))

    def encode(texts: list[str]) -> list[np.ndarray]:
        out = []
        for text in texts:
            points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            ids = table[np.minimum(points, len(table) - 1)]
            if (ids < 0).any() or (points >= len(table)).any():
                raise DataError("the corpus changed while it was read: a character missing from the first pass")
            out.append(ids)
        return out

    return encode


def bpe_encoder(path: Path) -> Callable[[list[str]], list[np.ndarray]]:
    """The saved BPE tokenizer's batch encoder (threaded; the offset-free one where there is)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return lambda texts: [np.asarray(e.ids, dtype=np.int64) for e in batch(texts)] if texts else []


def train_tokenizer(corpus: Corpus, job: Prepare):
    """The tokenizer, trained on the corpus (BPE: on its first ``tokenizer_sample_chars``)."""
    if job.tokenizer == "char":
        with progress_bar(job.progress, "scan") as bar:
            return char_vocabulary(corpus.pieces(), bar)
    texts = sample(corpus.pieces(), job.tokenizer_sample_chars)
    return BPETokenizer.train(texts, vocab_size=job.vocab_size)


def progress_bar(enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit="char", unit_scale=True, mininterval=1.0, disable=not enabled)


def batches(pieces: Pieces, size: int = BATCH_CHARS) -> Iterator[list[str | None]]:
    batch, chars = [], 0
    for piece in pieces:
        batch.append(piece)
        chars += len(piece) if piece is not None else 0
        if chars >= size:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def encode_batch(batch: list[str | None], encode, separator: int, counts: dict[str, int]) -> np.ndarray:
    """The ids of a batch of pieces, a separator where a document ends."""
    encoded = iter(encode([p for p in batch if p is not None]))
    parts = []
    for piece in batch:
        if piece is None:
            parts.append(np.array([separator]))
            counts["documents"] += 1
        else:
            parts.append(next(encoded))
            counts["characters"] += len(piece)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def write_tokens(corpus: Corpus, job: Prepare, encode, separator: int, dtype: str) -> str:
    """Stream the corpus through ``encode`` into ``tokens.bin`` (a temporary name until
    complete); the sha256 of what was written."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{TOKENS}.", suffix=".tmp", dir=job.out)
    try:
        with os.fdopen(fd, "wb") as fh, progress_bar(job.progress, "encode") as bar:
            for batch in batches(corpus.pieces()):
                ids = encode_batch(batch, encode, separator, job.counts)
                data = ids.astype(DTYPES[dtype]).tobytes()
                fh.write(data)
                digest.update(data)
                job.counts["tokens"] += len(ids)
                bar.update(sum(len(p) for p in batch if p is not None))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, job.out / TOKENS)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, the folder removed meanwhile
            raise DataError(f"cannot write {job.out / TOKENS}: {exc.strerror or exc}") from None
        raise
    return digest.hexdigest()


def prepare_text(corpus: Corpus, job: Prepare) -> dict[str, Any]:
    """Tokenise ``corpus`` into the folder ``job.out``; the manifest written last."""
    from ..checkpoint import atomic_write_bytes

    start = time.perf_counter()
    job.out = Path(job.out)
    check_out(job.out, job.force)
    sources = corpus.describe()
    clear_out(job.out)
    tok = train_tokenizer(corpus, job)
    try:
        saved = tok.save(job.out)
    except OSError as exc:
        raise DataError(f"cannot write the tokenizer into {job.out}: {exc.strerror or exc}") from None
    dtype = "uint16" if tok.vocab_size <= 1 << 16 else "uint32"
    if job.tokenizer == "char":
        encode, separator = char_encoder(tok), tok.encode("\n")[0]
    else:
        encode, separator = bpe_encoder(saved), EOS
    digest = write_tokens(corpus, job, encode, separator, dtype)
    counts = job.counts
    if counts["characters"] == 0:
        raise DataError(f"the corpus ({', '.join(corpus.files) or corpus.hf_dataset}) holds no text")
    val = int(counts["tokens"] * job.val_fraction)
    manifest = {"format": FORMAT, "version": VERSION, "tokenizer": job.tokenizer, "vocab_size": tok.vocab_size,
                "dtype": dtype, "tokens": counts["tokens"], "train_tokens": counts["tokens"] - val,
                "val_tokens": val, "val_fraction": job.val_fraction, "separator": separator,
                "characters": counts["characters"], "documents": counts["documents"],
                "tokenizer_sample_chars": job.tokenizer_sample_chars if job.tokenizer == "bpe" else None,
                "sources": sources, "tokens_sha256": digest, "seconds": round(time.perf_counter() - start, 3)}
    try:
        atomic_write_bytes(job.out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
    except OSError as exc:
        raise DataError(f"cannot write {job.out / MANIFEST}: {exc.strerror or exc}") from None
    return manifest


# --- reading a prepared folder -----------------------------------------------------------

COUNTS = ("vocab_size", "tokens", "train_tokens", "val_tokens", "characters", "documents")


def check_manifest(data: Any, path: Path) -> dict[str, Any]:
    """The manifest's fields, each of the right kind; one DataError line naming the file."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path} is not a token-file manifest (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise DataError(f"{path} has format version {data.get('version')!r}; this loopformer reads {VERSION}")
    if data.get("tokenizer") not in KINDS:
        raise DataError(f"{path}: tokenizer must be one of {', '.join(KINDS)}, got {data.get('tokenizer')!r}")
    if data.get("dtype") not in DTYPES:
        raise DataError(f"{path}: dtype must be one of {', '.join(DTYPES)}, got {data.get('dtype')!r}")
    for key in COUNTS:
        value = data.get(key)
        if type(value) is not int or not 0 <= value < 1 << 62:
            raise DataError(f"{path}: {key} must be a count (an integer >= 0), got {str(value)[:40]!r}")
    if data["train_tokens"] + data["val_tokens"] != data["tokens"] or data["tokens"] == 0:
        raise DataError(f"{path}: train_tokens + val_tokens must equal tokens (> 0)")
    if data["dtype"] == "uint16" and data["vocab_size"] > 1 << 16:
        raise DataError(f"{path}: a vocabulary of {data['vocab_size']:,} does not fit uint16")
    return data


class TokenFile:
    """A prepared folder, checked when opened: the manifest, the size of ``tokens.bin``, the
    tokenizer's vocabulary, and the first and last ids against it. Windows are read from a
    memory map opened per call, so pages read for one batch are not held by the next (the
    resident memory does not creep up to the corpus size over a long run)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.manifest_path = self.folder / MANIFEST
        if not self.manifest_path.exists() and self.folder.is_dir():
            raise DataError(f"{self.folder} holds no {MANIFEST}: not a prepared corpus "
                            f"(make one with loopformer prepare text)")
        self.manifest = check_manifest(read_json(self.manifest_path, "token-file manifest", DataError,
                                                 MANIFEST_LIMIT), self.manifest_path)
        self.sha256 = sha256_file(self.manifest_path, "token-file manifest", DataError)
        self.kind: str = self.manifest["tokenizer"]
        self.dtype = np.dtype(DTYPES[self.manifest["dtype"]])
        self.path = self.folder / TOKENS
        size = check_regular(self.path, "token file", DataError)
        expected = self.manifest["tokens"] * self.dtype.itemsize
        if size != expected:
            raise DataError(f"{self.path} has {size:,} bytes; {MANIFEST} says {self.manifest['tokens']:,} "
                            f"{self.dtype.name} tokens = {expected:,} bytes (truncated or replaced?)")
        self.tokenizer = self.load_tokenizer()
        self.check_ids()

    def load_tokenizer(self):
        try:
            tok = CharTokenizer.load(self.folder) if self.kind == "char" else BPETokenizer.load(self.folder)
        except CheckpointError as exc:
            raise DataError(str(exc)) from None
        if tok.vocab_size != self.manifest["vocab_size"]:
            raise DataError(f"{self.manifest_path}: vocab_size {self.manifest['vocab_size']:,} but the folder's "
                            f"tokenizer has {tok.vocab_size:,} tokens")
        return tok

    def check_ids(self) -> None:
        """A sample of ids (the first and the last ``CHECKED_IDS``) must be in the vocabulary."""
        n = self.manifest["tokens"]
        for start in sorted({0, max(0, n - CHECKED_IDS)}):
            ids = self.read(start, min(CHECKED_IDS, n - start))
            if len(ids) and int(ids.max()) >= self.manifest["vocab_size"]:
                raise DataError(f"{self.path} holds id {int(ids.max()):,}, beyond the vocabulary of "
                                f"{self.manifest['vocab_size']:,} (corrupt?)")

    def length(self, split: str) -> int:
        return self.manifest["train_tokens" if split == "train" else "val_tokens"]

    def read(self, start: int, count: int) -> np.ndarray:
        """``count`` ids from ``start`` (a copy; the memory map is closed again)."""
        return self.windows_at([start], count)[0]

    def windows_at(self, starts: Iterable[int], length: int) -> np.ndarray:
        try:
            data = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.manifest["tokens"],))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read token file {self.path}: {exc}") from None
        try:
            return np.stack([np.array(data[s : s + length]) for s in starts])
        finally:
            del data  # unmapped: the pages read leave this process's resident memory

    def windows(self, split: str, starts: torch.Tensor | Sequence[int], length: int) -> torch.Tensor:
        """Windows of ``length`` ids of a split at the given offsets into it, as a
        (len(starts), length) LongTensor."""
        offset, size = (0, self.length("train")) if split == "train" else (self.length("train"), self.length("val"))
        starts = [int(s) for s in starts]
        if any(s < 0 or s + length > size for s in starts):
            raise ValueError(f"a window of {length} ids does not fit the {split} part ({size:,} ids)")
        if not starts:
            return torch.zeros(0, length, dtype=torch.long)
        return torch.from_numpy(self.windows_at([offset + s for s in starts], length).astype(np.int64))
