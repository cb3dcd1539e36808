"""Dataset files: upstream address + sha256, a cache directory and an offline mirror.

Resolution order for ``fetch(dataset, file)``:
1. ``$LOOPFORMER_DATA_MIRROR/<dataset>/<file>`` when the mirror setting is present
   (read in place, checksum verified; the network is never used);
2. the cache, ``$LOOPFORMER_CACHE/<dataset>/<file>`` (default ``~/.cache/loopformer``),
   trusted only if its checksum matches;
3. a download from the upstream address into a temporary file in the cache, renamed
   into place only after the checksum matches.
Every failure is a one-line :class:`DataError`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import files
from ..errors import LoopformerError

MIRROR_ENV = "LOOPFORMER_DATA_MIRROR"
CACHE_ENV = "LOOPFORMER_CACHE"


class DataError(LoopformerError):
    """A dataset file could not be found, downloaded or verified."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str


_M30K = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
_FMNIST = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"

DATASETS: dict[str, dict[str, RemoteFile]] = {
    "multi30k": {
        name: RemoteFile(_M30K + name, sha)
        for name, sha in {
            "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
            "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
            "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
            "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
            "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
            "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
            "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
            "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
        }.items()
    },
    "tinyshakespeare": {
        "input.txt": RemoteFile(
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        )
    },
    "fashion-mnist": {
        name: RemoteFile(_FMNIST + name, sha)
        for name, sha in {
            "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        }.items()
    },
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "loopformer")


def sha256_file(path: Path) -> str:
    """sha256 of a data file (only a regular file is read: a FIFO in the cache never blocks)."""
    return files.sha256_file(path, "data file", DataError)


def _cache_error(folder: Path, exc: OSError) -> DataError:
    """A cache that cannot be written (read-only, a file in the way) is one line naming the setting."""
    return DataError(f"cannot write to the dataset cache {folder} ({exc.strerror or exc}); set {CACHE_ENV} "
                     f"to a writable folder or {MIRROR_ENV} to a local copy")


def _lookup(dataset: str, name: str) -> RemoteFile:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset '{dataset}'; known: {', '.join(sorted(DATASETS))}")
    files = DATASETS[dataset]
    if name not in files:
        raise DataError(f"dataset '{dataset}' has no file '{name}'; files: {', '.join(sorted(files))}")
    return files[name]


def fetch(dataset: str, name: str, timeout: float = 60.0) -> Path:
    """Path to a verified local copy of ``dataset/name`` (see the module docstring)."""
    remote = _lookup(dataset, name)
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        path = Path(mirror) / dataset / name
        if not path.is_file():
            raise DataError(f"{path} not found in the data mirror ({MIRROR_ENV}={mirror})")
        if sha256_file(path) != remote.sha256:
            raise DataError(f"{path}: sha256 mismatch (the mirror's copy is corrupt or a different file)")
        return path
    target = cache_dir() / dataset / name
    if target.is_file():
        if sha256_file(target) == remote.sha256:
            return target
        try:
            target.unlink()  # a stale or damaged cache entry: fetch it again
        except OSError as exc:
            raise _cache_error(target.parent, exc) from None
    return download(remote, target, timeout)


def download(remote: RemoteFile, target: Path, timeout: float = 60.0) -> Path:
    """Download to a temporary file beside ``target``; rename only once the checksum matches."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise _cache_error(target.parent, exc) from None
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(remote.url, timeout=timeout) as resp:
                    expected = resp.headers.get("Content-Length")
                    got = 0
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        h.update(block)
                        got += len(block)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                if isinstance(exc, http.client.IncompleteRead):
                    raise DataError(f"download of {remote.url} was interrupted") from None
                reason = getattr(exc, "reason", exc)
                raise DataError(
                    f"cannot download {remote.url} ({reason}); offline? set {MIRROR_ENV} to a local copy"
                ) from None
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and got != int(expected):
            raise DataError(f"download of {remote.url} was interrupted ({got} of {expected} bytes)")
        if h.hexdigest() != remote.sha256:
            raise DataError(f"download of {remote.url} has the wrong sha256 (corrupt or changed upstream)")
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _cache_error(target.parent, exc) from None
        return target
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
