"""Reading and writing the files a user or a checkpoint names, safely.

Every command opens user-named paths (configs, corpora, images, checkpoint files). A
FIFO would block a read forever, a device file never ends, a huge file would be read
whole, and JSON or YAML can be crafted to exhaust memory. So every read goes through
here: only regular files, within a size bound, hashed in streamed chunks, parsed with
every parser error mapped to the caller's error class and the file's name. Outputs are
checked before the work that produces them, so a bad path fails in a second, not
after an hour.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import LoopformerError

MiB = 1 << 20
JSON_LIMIT = 256 * MiB  # a tokenizer of a million merges is ~50 MB
CONFIG_LIMIT = 1 * MiB  # a YAML settings file is a few hundred bytes
_CHUNK = 4 * MiB


def check_regular(path: str | os.PathLike, what: str, error: type[LoopformerError]) -> int:
    """The size of ``path``; ``error`` unless it is an existing regular file (following
    symlinks). FIFOs, sockets, devices and directories are refused without opening them."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise error(f"{what} {path} is {kind}")
    return st.st_size


def read_bytes(path: str | os.PathLike, what: str, error: type[LoopformerError], limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (None: no bound)."""
    size = check_regular(path, what, error)
    if limit is not None and size > limit:
        raise error(f"{what} {path} has {size:,} bytes; more than the {limit:,} a {what} may have")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the stat and the open
            raise error(f"{what} {path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1 if limit is not None else -1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise error(f"{what} {path} grew past {limit:,} bytes while being read")
    return data


def read_text(path: str | os.PathLike, what: str, error: type[LoopformerError], limit: int | None = None) -> str:
    data = read_bytes(path, what, error, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (invalid byte at offset {exc.start})") from None


def parse_json(text: str | bytes, where: str, error: type[LoopformerError]) -> Any:
    """JSON from text, every parser failure (syntax, nesting depth, a number with more
    digits than Python converts) as one ``error`` naming ``where``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{where} is corrupt: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def read_json(path: str | os.PathLike, what: str, error: type[LoopformerError], limit: int = JSON_LIMIT) -> Any:
    return parse_json(read_bytes(path, what, error, limit), str(path), error)


def sha256_file(path: str | os.PathLike, what: str, error: type[LoopformerError]) -> str:
    """The hex sha256 of a regular file, read in chunks (memory stays flat for any size)."""
    check_regular(path, what, error)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def check_writable(path: str | os.PathLike, what: str, error: type[LoopformerError]) -> Path:
    """Prove that a file can be written at ``path`` (its folder exists and accepts a new
    file; the path is not a folder) before the work whose result goes there."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise error(f"cannot write {what} {path}: folder {folder} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise error(f"cannot write {what} {path}: permission denied")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise error(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    return path
