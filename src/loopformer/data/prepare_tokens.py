"""Writing a prepared folder (``loopformer prepare text``; the format is in
:mod:`.token_files`).

Writing streams: documents are read in bounded pieces (:mod:`.corpus_sources`: text files
cut at line breaks, JSONL one record at a time), tokenised in batches (byte-level BPE in
the Rust library's threads; characters by a vectorised table lookup, ten times a Python
loop's speed and more than a process pool could gain on the transfer cost) and appended to
the file. Only the BPE training sample (``tokenizer_sample_chars``, from the start of the
corpus) is ever held in memory whole. The manifest is written last, so a folder without
it is not a prepared folder, whatever an interrupted run left there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .corpus_sources import Corpus, Pieces
from .download import DataError
from .text import CharTokenizer
from .token_files import DTYPES, FORMAT, MANIFEST, TOKENS, VERSION
from .tokenizer import EOS, FILE_NAME as BPE_FILE, BPETokenizer

BATCH_CHARS = 1 << 21  # text tokenised per call; bounds the memory of one batch


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
