"""Training checkpoints: model directory + optimizer, RNG and data position, no pickle.

``<out>/last`` is the resumable state, ``<out>/best`` the best model by validation score.
Each is written to ``<name>.tmp`` first and swapped in by renames, so a crash at any
moment leaves either the old or the new checkpoint readable (``last.old`` is picked up
if the crash fell between the two renames).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import atomic_write_bytes, save_model
from ..errors import CheckpointError

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"


def optimizer_to_flat(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state dict (``opt.state_dict()`` form: state keyed by parameter index)
    -> safetensors tensors + JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                plain.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def optimizer_state_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`optimizer_to_flat`: a state dict ``opt.load_state_dict`` takes."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["plain"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    py = random.getstate()
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on the GPU draws from here
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    return tensors, {"python": [py[0], list(py[1]), py[2]]}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    v, internal, gauss = meta["python"]
    random.setstate((v, tuple(internal), gauss))


def write_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    save_assets: Callable[[Path], None],
    state: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a model checkpoint (plus training state when ``state`` is given) atomically."""
    from safetensors.torch import save

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, tmp)
    save_assets(tmp)
    if state is not None:
        tensors, rng_meta = rng_state()
        meta = dict(state, rng=rng_meta)
        if optimizer_state is not None:
            opt_tensors, opt_meta = optimizer_to_flat(optimizer_state)
            tensors.update(opt_tensors)
            meta["optimizer"] = opt_meta
        atomic_write_bytes(tmp / STATE_TENSORS, save(tensors))
        atomic_write_bytes(tmp / STATE_JSON, json.dumps(meta, indent=1).encode())
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)
    return folder


def resolve(folder: Path) -> Path | None:
    """The readable checkpoint at ``folder`` (or its ``.old`` twin after a crash mid-swap)."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    old = folder.with_name(folder.name + ".old")
    if (old / "config.json").is_file():
        return old
    return None


def read_training_state(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    js, ts = folder / STATE_JSON, folder / STATE_TENSORS
    for path in (js, ts):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: cannot resume from {folder}")
    try:
        meta = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{js} is corrupt: {exc}") from None
    try:
        tensors = load_file(str(ts))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{ts} is not a readable safetensors file: {exc}") from None
    return meta, tensors
