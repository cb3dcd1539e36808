"""A tokenised corpus on disk (nanoGPT's ``train.bin``): every token id of a corpus in one
flat binary file, read by slicing a memory map, so that training memory stays the same
whether the corpus has a million characters or ten billion. This module holds the format
and its reader (:class:`TokenFile`); :mod:`.prepare_tokens` writes a prepared folder.

A prepared folder holds:

- ``tokens.bin``: the ids, ``uint16`` when the vocabulary fits (at most 65,536 ids), else
  ``uint32``; documents are separated by ``<eos>`` (BPE) or by a ``"\\n"`` (characters);
- ``tokenizer.json`` (BPE) or ``chars.json`` (characters), the tokenizer's own files;
- ``prepared.json``, the manifest: sizes, the train / validation cut (the validation
  part is the contiguous tail, as in :mod:`.text`), the sources with their sha256, and the
  sha256 of ``tokens.bin``. It is written last, so a folder without it is not a prepared
  folder, whatever an interrupted run left there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import CheckpointError
from ..files import MiB, check_regular, read_json, sha256_file
from .download import DataError
from .text import CharTokenizer
from .tokenizer import BPETokenizer

MANIFEST = "prepared.json"
TOKENS = "tokens.bin"
FORMAT = "loopformer-tokens"
VERSION = 1
MANIFEST_LIMIT = 64 * MiB  # a manifest lists its sources: ~200 bytes each
CHECKED_IDS = 1 << 20  # ids checked against the vocabulary when a folder is opened
KINDS = ("bpe", "char")
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
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
