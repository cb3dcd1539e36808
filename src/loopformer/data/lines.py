"""Lines of a user's text file, each checked, numbered and bounded.

A corpus of someone else's making has blank lines, a stray Latin-1 byte, a line of a
megabyte where a sentence was expected. Any of them, found an hour into training (or
never: a blank target teaches the model to stop at once), costs more than a clear line
at load time naming the file and line. So every line is read with a byte bound (one
giant line cannot exhaust memory), decoded strictly, and either accepted, refused in
one :class:`DataError` line, or skipped and counted, as :class:`LinePolicy` says.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..files import check_regular
from .download import DataError

BAD_LINE_CHOICES = ("error", "skip")


@dataclass
class LinePolicy:
    """What to do with a bad line (``error`` or ``skip``), the longest line accepted in
    characters, and the count of what was skipped, by reason."""

    bad_lines: str = "error"
    max_chars: int = 2000
    skipped: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.bad_lines not in BAD_LINE_CHOICES:
            raise DataError(f"bad_lines must be error or skip, got {self.bad_lines!r}")

    def reject(self, where: str, kind: str, detail: str = "") -> None:
        """Refuse the line at ``where`` (``file:line``), or count it under ``kind`` when skipping."""
        if self.bad_lines == "error":
            raise DataError(f"{where}: {kind}{detail} (bad_lines=skip skips such lines and counts them)")
        self.skipped[kind] += 1

    def check(self, where: str, *texts: str) -> bool:
        """Whether every text of a line (or of a sentence pair) is usable."""
        for text in texts:
            if not text.strip():
                self.reject(where, "empty sentence")
                return False
            if len(text) > self.max_chars:
                self.reject(where, "over-long line", f" ({len(text):,} characters; max_line_chars={self.max_chars:,})")
                return False
        return True


def open_binary(path: Path):
    """A file handle on ``path`` (transparently gunzipped when it ends in ``.gz``)."""
    check_regular(path, "data file", DataError)
    try:
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def numbered_lines(path: Path, policy: LinePolicy) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for every line of ``path``; text is None for a line that was
    not UTF-8 or too long to read and was skipped (the number still advances, so aligned
    files stay aligned)."""
    limit = 4 * policy.max_chars + 2  # UTF-8 needs at most 4 bytes a character, plus CR LF
    with open_binary(path) as fh:
        number = 0
        while True:
            try:
                raw = fh.readline(limit + 1)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataError(f"{path}: cannot be read after line {number}: {exc}") from None
            if not raw:
                return
            number += 1
            yield number, decode_line(path, number, raw, fh, limit, policy)


def decode_line(path: Path, number: int, raw: bytes, fh, limit: int, policy: LinePolicy) -> str | None:
    """The text of one line read as ``raw``; a line longer than ``limit`` bytes is
    consumed to its end unread."""
    where = f"{path}:{number}"
    if len(raw) > limit and not raw.endswith(b"\n"):
        while raw and not raw.endswith(b"\n"):  # skip the rest without holding it
            raw = fh.readline(1 << 20)
        policy.reject(where, "over-long line", f" (more than {limit:,} bytes; max_line_chars={policy.max_chars:,})")
        return None
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        policy.reject(where, "not UTF-8 text", f" (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)")
        return None
