"""Plain-text corpora for language modelling: Tiny Shakespeare or any local UTF-8 file.

The split follows nanoGPT's: the first 90% of the characters train, the last 10%
validate (a contiguous split, so validation text is never seen in training windows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import CheckpointError
from .download import DataError, fetch

BUILTIN = {"tinyshakespeare": ("tinyshakespeare", "input.txt")}


def load_text(source: str) -> str:
    """The whole text of a built-in corpus name or a path to a UTF-8 file. Only regular
    files are read (a FIFO or a device named by a task.json would block or never end)."""
    from ..files import read_text

    if source in BUILTIN:
        path = fetch(*BUILTIN[source])
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(
                f"text source '{source}' is neither a built-in corpus ({', '.join(BUILTIN)}) nor a file"
            )
    text = read_text(path, "text file", DataError)
    if not text:
        raise DataError(f"{path} is empty")
    return text


def split_text(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


class CharTokenizer:
    """One id per character of the corpus (nanoGPT's ``shakespeare_char``): ids are the
    sorted distinct characters of the whole text, so validation never meets an unknown one."""

    FILE_NAME = "chars.json"

    def __init__(self, chars: Sequence[str]) -> None:
        if not chars or len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary needs distinct single characters")
        self.chars = list(chars)
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as exc:
            raise DataError(f"character {exc.args[0]!r} is not in this model's vocabulary") from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def save(self, folder: str | Path) -> Path:
        from ..checkpoint import atomic_write_bytes

        path = Path(folder) / self.FILE_NAME
        atomic_write_bytes(path, json.dumps({"chars": self.chars}, ensure_ascii=False).encode("utf-8"))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "CharTokenizer":
        """The vocabulary saved in ``folder``: a bounded read of a regular file, every
        parser or shape problem one CheckpointError line."""
        from ..files import read_json

        path = Path(folder) / cls.FILE_NAME
        data = read_json(path, "character vocabulary", CheckpointError)
        chars = data.get("chars") if isinstance(data, dict) else None
        try:
            if not isinstance(chars, list):
                raise ValueError("'chars' must be a list of characters")
            return cls(chars)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path} is not a readable character vocabulary: {exc}") from None
