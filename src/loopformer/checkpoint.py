"""Model directories: ``config.json`` + ``model.safetensors`` + ``manifest.json``. Loading
never executes code.

``config.json`` is written after the weights and records their sha256; ``manifest.json``
is written last and lists every file of the folder with its byte count and sha256 (the
trainer's checkpoints add the task, tokenizer and training-state files). Loading checks,
in this order, before anything of the model's size is allocated or read:

1. ``config.json``: a bounded read of a regular file, strictly validated;
2. the safetensors *header* of the weights (bounded, read alone): well-formed, and the
   file's size exactly 8 + header + the data it declares, so a truncated or huge sparse
   file is refused without reading it;
3. the manifest: every listed file present, regular, of its size, then its streamed
   sha256; a file the library reads (:data:`READ_FILES`) present but unlisted is refused.
   A verified manifest proves that config and weights are the pair that was saved;
4. in a folder without a manifest, the header's names, shapes and dtypes against a model
   of the config built on the meta device, then the weights' streamed sha256 against
   ``config.json``.

Only then is the model built and the weights memory-mapped in. So an edit of
``config.json`` that would build a huge model is refused without allocating it, and every
byte of a sealed checkpoint is verified before use. The manifest guards integrity (disk
faults, partial copies, edits), not authenticity: whoever can rewrite every file can
rewrite the manifest too.

Folders without ``manifest.json`` (written by earlier versions, e.g. tests/fixtures/v1)
still load as before: their weights are checked by ``config.json``'s sha256 and the other
files only for structure, since nothing records their hashes. A file added to a sealed
folder after it was written (``save_model``, then a tokenizer saved beside it) must be
sealed again with :func:`write_manifest`.

Every file is written to a temporary name, fsynced and renamed, so an interrupted save
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .files import MiB, check_regular, parse_json, read_bytes, sha256_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "loopformer-model"
FORMAT_VERSION = 2  # 2: settings that do not apply to a model are refused (1 is migrated on load)
READABLE_VERSIONS = (1, 2)
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "loopformer-manifest"
# every file the library reads from a checkpoint folder (tokenizer.FILE_NAME,
# CharTokenizer.FILE_NAME, task_file.TASK_FILE, train.state.STATE_*): one of them present
# but not in the manifest was added or replaced after the checkpoint was sealed
READ_FILES = ("config.json", "model.safetensors", "task.json", "tokenizer.json", "chars.json",
              "trainer_state.json", "trainer_state.safetensors")
CONFIG_LIMIT = 16 * MiB  # config.json is ~2 kB; ``extra`` metadata may add some
MANIFEST_LIMIT = 1 * MiB  # a few lines per file
HEADER_LIMIT = 100 * MiB  # the safetensors library's own bound on a header
_SHA256 = re.compile(r"[0-9a-f]{64}")
# bytes per element of each safetensors dtype, and the names torch dtypes are stored under
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
                "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_STORED_AS = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without aliases (tied weights appear once, under their first name)."""
    seen: set[tuple[int, tuple[int, ...], tuple[int, ...]]] = set()
    out = {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()))
        if t.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().contiguous().cpu()
    return out


def save_model(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save a loopformer model into directory ``path`` (created if needed)."""
    from safetensors.torch import save

    from . import __version__

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create checkpoint directory {folder}: {exc.strerror}") from None
    config: ModelConfig = model.config
    blob = save(unique_state(model), metadata={"format": FORMAT})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "model": config.to_dict(),
    }
    if extra:
        meta["extra"] = extra
    try:
        atomic_write_bytes(folder / WEIGHTS_FILE, blob)
        atomic_write_bytes(folder / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
        write_manifest(folder, [CONFIG_FILE, WEIGHTS_FILE])
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint to {folder}: {exc.strerror}") from None
    return folder


def read_checkpoint_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """Parse and validate ``config.json``; returns the model config and the raw metadata."""
    cfg_path = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if not os.path.lexists(cfg_path):
        raise CheckpointError(f"{cfg_path} is missing: not a loopformer checkpoint directory")
    meta = _read_json(cfg_path, "model config", CONFIG_LIMIT)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a loopformer model config")
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{cfg_path} has format version {version!r}; this library reads {', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        config = ModelConfig.from_v1(meta.get("model")) if version == 1 else ModelConfig.from_dict(meta.get("model"))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{cfg_path} holds an invalid model config: {exc}") from None
    return config, meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the exact model saved in ``path``.

    Nothing of the model's size is allocated or read until the bytes are proven (see the
    module docstring for the order); the weights are then memory-mapped, never read
    whole into a bytes object."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import build_model

    config, meta = read_checkpoint_config(path)
    folder = Path(path)
    w_path, cfg_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    if not isinstance(meta.get("weights_sha256"), str) or not _SHA256.fullmatch(meta["weights_sha256"]):
        raise CheckpointError(f"{cfg_path} records no valid sha256 of {w_path}")
    entries = read_safetensors_header(w_path)
    sealed = verify_manifest(folder)
    if sealed is None:  # nothing proves config.json and the weights belong together: compare first
        _check_against_config(w_path, cfg_path, entries, _meta_specs(config))
    digest = sealed[WEIGHTS_FILE] if sealed else sha256_file(w_path, "weights file", CheckpointError)
    if digest != meta["weights_sha256"]:
        raise CheckpointError(f"{w_path} is corrupt or truncated (sha256 does not match {CONFIG_FILE})")
    model = build_model(config)
    _check_against_config(w_path, cfg_path, entries, _specs(model))  # e.g. saved by another library version
    try:
        tensors = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{w_path} is not a readable safetensors file: {_first_line(exc)}") from None
    if set(tensors) != set(entries):  # replaced between the checks and the read
        raise CheckpointError(f"{w_path} changed while it was being loaded")
    model.load_state_dict(tensors, strict=False)  # tied aliases are absent, by design
    return model.to(device)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _read_json(path: Path, what: str, limit: int) -> Any:
    """JSON from a bounded regular file; strict UTF-8, every failure a 'corrupt' line."""
    data = read_bytes(path, what, CheckpointError, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is corrupt: not UTF-8 (invalid byte at offset {exc.start})") from None
    return parse_json(text, str(path), CheckpointError)


# --- the safetensors header, read without the data -------------------------------------------


def read_safetensors_header(path: str | os.PathLike, what: str = "weights file") -> dict[str, dict[str, Any]]:
    """The tensor entries of a safetensors file (name -> dtype, shape, data_offsets), read
    without its data: the header length is bounded and must fit in the file, every entry
    is well-formed, and the file's size must be exactly 8 + header + data. So what a file
    holds is known, and checked, before a byte of it is read or allocated as a tensor."""
    path = Path(path)
    if not os.path.lexists(path):
        raise CheckpointError(f"{path} is missing")
    size = check_regular(path, what, CheckpointError)
    length, text = _header_text(path, size)
    entries = _header_entries(path, parse_json(text, str(path), CheckpointError))
    end = max((e["data_offsets"][1] for e in entries.values()), default=0)
    if 8 + length + end != size:
        raise CheckpointError(
            f"{path} is corrupt or truncated: it has {size:,} bytes, its header describes {8 + length + end:,}"
        )
    return entries


def _header_text(path: Path, size: int) -> tuple[int, str]:
    """The header's declared length and its text (8-byte little-endian length first)."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            prefix = fh.read(8)
            length = int.from_bytes(prefix, "little")
            if len(prefix) < 8 or length > size - 8:
                raise CheckpointError(
                    f"{path} is corrupt or truncated: its header claims {length:,} bytes but the file has {size:,}"
                )
            if length > HEADER_LIMIT:
                raise CheckpointError(f"{path} is corrupt: a header of {length:,} bytes (at most {HEADER_LIMIT:,})")
            raw = fh.read(length)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return length, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is corrupt: its header is not UTF-8 (byte {8 + exc.start})") from None


def _small_ints(value: Any, count: int | None = None) -> bool:
    """A list of non-negative ints below 2**63 (what safetensors stores as u64/usize)."""
    return (isinstance(value, list) and len(value) <= 64 and (count is None or len(value) == count)
            and all(type(v) is int and 0 <= v < 1 << 63 for v in value))


def _header_entries(path: Path, header: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupt: its header is not a mapping")
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, offsets = (entry.get(k) for k in ("dtype", "shape", "data_offsets")) \
            if isinstance(entry, dict) else (None, None, None)
        ok = (isinstance(dtype, str) and dtype in _DTYPE_BYTES and _small_ints(shape) and _small_ints(offsets, 2)
              and offsets[1] - offsets[0] == math.prod(shape) * _DTYPE_BYTES[dtype])
        if not ok:
            raise CheckpointError(f"{path} is corrupt: header entry {name!r:.80} is malformed")
        entries[name] = {"dtype": dtype, "shape": tuple(shape), "data_offsets": tuple(offsets)}
    return entries


def _meta_specs(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """What a model of ``config`` saves, from a model built on the meta device: no memory,
    whatever the config says. (Torch's meta kernels are Python decompositions that import
    torch._dynamo on first use, about a second and 70 MB once per process: that is why
    sealed folders, whose manifest already proves config and weights belong together,
    skip this.)"""
    from .models import build_model

    with torch.device("meta"):
        return _specs(build_model(config))


def _specs(model: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Names, shapes and dtypes of what :func:`unique_state` saves for ``model``. Tied
    weights are recognised by identity, which also works on the meta device, where
    tensors have no data pointers."""
    seen: set[int] = set()
    out = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if t.numel() and id(t) in seen:
            continue
        seen.add(id(t))
        out[name] = (tuple(t.shape), t.dtype)
    return out


def _few(names: list[str]) -> list[str]:
    """The first names of a list, shortened: a header can hold huge names."""
    return [n[:60] for n in names[:3]]


def _check_against_config(w_path: Path, cfg_path: Path, entries: dict[str, dict[str, Any]],
                          expected: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    """The weights' header must describe exactly the model config.json builds (``expected``):
    a config edited to describe another (or a huge) model is refused before it is built."""
    where = f"{w_path} is corrupt or does not match {cfg_path}"
    missing = sorted(set(expected) - set(entries))
    unexpected = sorted(set(entries) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{where}: missing {_few(missing)}, unexpected {_few(unexpected)}")
    for name, (shape, dtype) in expected.items():
        stored = entries[name]
        if stored["shape"] != shape:
            raise CheckpointError(f"{where}: tensor {name} has shape {stored['shape']}, config expects {shape}")
        if stored["dtype"] != _STORED_AS.get(dtype):
            raise CheckpointError(f"{where}: tensor {name} is {stored['dtype']}, config expects {dtype}")


# --- the manifest: every file of a folder, sealed ---------------------------------------------


def write_manifest(folder: str | os.PathLike, names: list[str] | None = None) -> Path:
    """Seal ``folder``: write ``manifest.json`` with the byte count and sha256 of ``names``
    (None: every file in the folder but hidden temporaries), hashed back from disk so the
    manifest describes what was really written. It must be the last file written: any
    later change to a listed file, or a new file the library reads, is then refused."""
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST_FILE)
    files = {}
    for name in names:
        path = folder / name
        files[name] = {"bytes": check_regular(path, "checkpoint file", CheckpointError),
                       "sha256": sha256_file(path, "checkpoint file", CheckpointError)}
    target = folder / MANIFEST_FILE
    atomic_write_bytes(target, json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=1).encode())
    return target


def verify_manifest(folder: str | os.PathLike) -> dict[str, str] | None:
    """Check every file ``manifest.json`` lists (present, regular, byte count, streamed
    sha256) and that no file the library reads is present but unlisted. Returns the
    verified sha256 by file name, or None for a folder written before manifests existed.
    All sizes are checked (largest file first: a swapped weights file is named even when
    config.json was edited to match it) before any hash, then the smallest files are
    hashed first, so a truncated, swapped or edited file is refused without reading the
    large ones."""
    folder = Path(folder)
    manifest = folder / MANIFEST_FILE
    if not os.path.lexists(manifest):
        return None
    listed = _read_manifest(manifest)
    for name in READ_FILES:
        if name not in listed and os.path.lexists(folder / name):
            raise CheckpointError(f"{folder / name} is not listed in {manifest}: it was added after the checkpoint "
                                  "was written")
    for name in sorted(listed, key=lambda n: -listed[n][0]):
        path, size = folder / name, listed[name][0]
        if not os.path.lexists(path):
            raise CheckpointError(f"{path} is missing (listed in {manifest})")
        actual = check_regular(path, "checkpoint file", CheckpointError)
        if actual != size:
            raise CheckpointError(f"{path} is corrupt, truncated or replaced: its size {actual:,} does not match "
                                  f"the {size:,} bytes {manifest} lists (size mismatch)")
    hashes = {}
    for name in sorted(listed, key=lambda n: listed[n][0]):
        hashes[name] = sha256_file(folder / name, "checkpoint file", CheckpointError)
        if hashes[name] != listed[name][1]:
            raise CheckpointError(f"{folder / name} is corrupt: its sha256 does not match {manifest}")
    return hashes


def _plain_name(name: Any) -> bool:
    """A file directly inside the folder: a manifest never points elsewhere."""
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST_FILE)
            and not any(c in name for c in "/\\\x00"))


def _read_manifest(path: Path) -> dict[str, tuple[int, str]]:
    """name -> (bytes, sha256) from a well-formed manifest; anything else is one line."""
    data = _read_json(path, "checkpoint manifest", MANIFEST_LIMIT)
    files = data.get("files") if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None
    if not isinstance(files, dict):
        raise CheckpointError(f"{path} is not a loopformer checkpoint manifest")
    listed = {}
    for name, entry in files.items():
        size, digest = (entry.get("bytes"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
        if not (_plain_name(name) and type(size) is int and size >= 0
                and isinstance(digest, str) and _SHA256.fullmatch(digest)):
            raise CheckpointError(f"{path} is corrupt: bad entry {name!r:.80}")
        listed[name] = (size, digest)
    return listed
