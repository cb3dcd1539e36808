"""Model directories: ``config.json`` + ``model.safetensors``. Loading never executes code.

``config.json`` is written last and records the sha256 of the weights file, so a
directory whose weights were truncated, corrupted or swapped is refused with a one-line
error naming the file. Every file is written to a temporary name, fsynced and renamed,
so an interrupted save never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .errors import CheckpointError, ConfigError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "loopformer-model"
FORMAT_VERSION = 2  # 2: settings that do not apply to a model are refused (1 is migrated on load)
READABLE_VERSIONS = (1, 2)


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
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint to {folder}: {exc.strerror}") from None
    return folder


def read_checkpoint_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """Parse and validate ``config.json``; returns the model config and the raw metadata."""
    cfg_path = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} is missing: not a loopformer checkpoint directory")
    try:
        meta = json.loads(cfg_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{cfg_path} is corrupt: {str(exc) or type(exc).__name__}") from None
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
    """Rebuild the exact model saved in ``path``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from .models import build_model

    config, meta = read_checkpoint_config(path)
    w_path = Path(path) / WEIGHTS_FILE
    if not w_path.is_file():
        raise CheckpointError(f"{w_path} is missing")
    blob = w_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{w_path} is corrupt or truncated (sha256 does not match {CONFIG_FILE})")
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{w_path} is not a readable safetensors file: {exc}") from None
    model = build_model(config)
    expected = unique_state(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{w_path} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for name, t in tensors.items():
        if t.shape != expected[name].shape:
            raise CheckpointError(
                f"{w_path}: tensor {name} has shape {tuple(t.shape)}, config expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=False)
    return model.to(device)
