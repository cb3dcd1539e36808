"""Training checkpoints: model directory + optimizer, RNG and data position, no pickle.

``<out>/last`` is the resumable state, ``<out>/best`` the best model by validation score.
Each is written to ``<name>.tmp`` first and swapped in by renames, so a crash at any
moment leaves either the old or the new checkpoint readable (``last.old`` is picked up
if the crash fell between the two renames). ``manifest.json`` is written last inside
``<name>.tmp``, before the renames: it seals every file of the checkpoint (see
:mod:`loopformer.checkpoint`), so a bit flip in the optimizer or RNG state is refused on
resume instead of silently continuing a different run. ``trainer_state.json`` is
validated field by field, so damage there is one CheckpointError, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import atomic_write_bytes, read_safetensors_header, save_model, verify_manifest, write_manifest
from ..errors import CheckpointError
from ..files import read_json

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
    write_manifest(tmp)  # last: it seals every file written above
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


COUNTERS = ("step", "epoch", "position", "tokens_seen")
STATE_JSON_LIMIT = 64 << 20  # param groups, the Python RNG: tens of kB
_OPT_KEY = re.compile(r"opt\.([0-9]{1,18})\.([A-Za-z_][A-Za-z0-9_]*)")
_INDEX = re.compile(r"[0-9]{1,18}")


def read_training_state(folder: Path, check_manifest: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and tensor halves of a checkpoint's training state, both validated.

    The manifest is verified before either file is parsed; ``check_manifest=False`` is for
    a caller that has just verified it (``load_model`` does), so resuming hashes each file
    once. The tensor file's header is checked against its size before it is read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    js, ts = folder / STATE_JSON, folder / STATE_TENSORS
    for path in (js, ts):
        if not os.path.lexists(path):
            raise CheckpointError(f"{path} is missing: cannot resume from {folder}")
    if check_manifest:
        verify_manifest(folder)
    meta = read_json(js, "training state", CheckpointError, STATE_JSON_LIMIT)
    _check_training_state(meta, js)
    read_safetensors_header(ts, "training state")
    try:
        tensors = load_file(str(ts))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ts} is not a readable safetensors file: {str(exc).strip()[:300]}") from None
    _check_state_tensors(tensors, ts)
    return meta, tensors


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _check_training_state(meta: Any, path: Path) -> None:
    """Every field resuming uses, with its type and range: damage is one line naming the file."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is corrupt: not a mapping")
    for key in COUNTERS:
        if type(meta.get(key)) is not int or meta[key] < 0:
            raise CheckpointError(f"{path} is corrupt: {key} must be a non-negative integer, not {meta.get(key)!r:.40}")
    if not _finite(meta.get("train_seconds")) or meta["train_seconds"] < 0:
        raise CheckpointError(f"{path} is corrupt: train_seconds must be a finite number >= 0")
    if meta.get("best_score") is not None and not _finite(meta["best_score"]):
        raise CheckpointError(f"{path} is corrupt: best_score must be null or a finite number")
    if "best_score" not in meta or not isinstance(meta.get("train_config"), dict):
        raise CheckpointError(f"{path} is corrupt: best_score and the train_config mapping are required")
    _check_python_rng(meta.get("rng"), path)
    _check_optimizer_meta(meta.get("optimizer"), path)


def _check_python_rng(rng: Any, path: Path) -> None:
    """``random.getstate()`` as JSON: [version, 624 words + position, gauss_next]."""
    py = rng.get("python") if isinstance(rng, dict) else None
    ok = (isinstance(py, list) and len(py) == 3 and py[0] == random.Random.VERSION and type(py[0]) is int
          and isinstance(py[1], list) and len(py[1]) == 625
          and all(type(w) is int and 0 <= w < 1 << 32 for w in py[1]) and py[1][-1] <= 624
          and (py[2] is None or _finite(py[2])))
    if not ok:
        raise CheckpointError(f"{path} is corrupt: rng.python is not a Python random state")


def _check_optimizer_meta(opt: Any, path: Path) -> None:
    """The JSON half of :func:`optimizer_to_flat`: groups of parameter indices, settings,
    and per-parameter plain values keyed by index."""
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    plain = opt.get("plain") if isinstance(opt, dict) else None
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list)
        and all(type(i) is int and i >= 0 for i in g["params"]) for g in groups
    ):
        raise CheckpointError(f"{path} is corrupt: optimizer.param_groups must be a list of parameter index groups")
    scalar = (type(None), bool, int, float, str)
    if not isinstance(plain, dict) or not all(
        _INDEX.fullmatch(k) and isinstance(v, dict) and all(isinstance(x, scalar) for x in v.values())
        for k, v in plain.items()
    ):
        raise CheckpointError(f"{path} is corrupt: optimizer.plain must map parameter indices to plain values")


def _check_state_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Only RNG states and ``opt.<index>.<name>`` tensors, the torch RNG state the size
    ``torch.set_rng_state`` takes."""
    rng = tensors.get("rng.torch")
    size = torch.get_rng_state().numel()
    if rng is None or rng.dtype != torch.uint8 or rng.dim() != 1 or rng.numel() != size:
        raise CheckpointError(f"{path} is corrupt: rng.torch must be {size} bytes of torch RNG state")
    cuda = tensors.get("rng.cuda")
    if cuda is not None and (cuda.dtype != torch.uint8 or cuda.dim() != 1):
        raise CheckpointError(f"{path} is corrupt: rng.cuda is not a CUDA RNG state")
    for key in tensors:
        if key not in ("rng.torch", "rng.cuda") and not _OPT_KEY.fullmatch(key):
            raise CheckpointError(f"{path} holds an unknown tensor {key[:60]!r}")


def check_optimizer_state(opt_meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                          optimizer: torch.optim.Optimizer, path: Path) -> None:
    """The saved optimizer state (validated flat form) must fit ``optimizer``: as many
    groups, each holding as many parameters in index order with settings of the same kinds,
    and every state tensor the shape of its parameter. ``load_state_dict`` checks little of
    this: a wrong shape would fail at the first step, or broadcast silently."""
    live, saved = optimizer.param_groups, opt_meta["param_groups"]
    if len(saved) != len(live):
        raise CheckpointError(f"{path}: {len(saved)} optimizer parameter groups; the optimizer has {len(live)}")
    shapes: list[tuple[int, ...]] = []
    for i, (group, own) in enumerate(zip(saved, live)):
        size = len(own["params"])
        if group["params"] != list(range(len(shapes), len(shapes) + size)):
            raise CheckpointError(f"{path}: optimizer group {i} lists {len(group['params'])} parameters, "
                                  f"not this model's {size} in order")
        shapes += [tuple(p.shape) for p in own["params"]]
        for key, want in own.items():
            if key != "params" and key in group and not _same_kind(group[key], want):
                raise CheckpointError(f"{path}: optimizer group {i} has {key}={group[key]!r:.40}, unlike {want!r:.40}")
    for key, value in tensors.items():
        m = _OPT_KEY.fullmatch(key)
        if m and (int(m[1]) >= len(shapes) or (value.numel() != 1 if m[2] == "step"
                                               else tuple(value.shape) != shapes[int(m[1])])):
            raise CheckpointError(f"{path}: optimizer tensor {key} does not fit this model's parameters")
    if any(int(k) >= len(shapes) for k in opt_meta["plain"]):
        raise CheckpointError(f"{path}: optimizer.plain names a parameter this model does not have")


def _same_kind(got: Any, want: Any) -> bool:
    """Whether a saved optimizer setting is of the kind the live one is (flags, numbers,
    tuples of numbers such as betas)."""
    if want is None or isinstance(want, bool):
        return got is None or isinstance(got, bool)
    if isinstance(want, (int, float, torch.Tensor)):
        return _finite(got)
    if isinstance(want, (tuple, list)):
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(map(_same_kind, got, want))
    if isinstance(want, str):
        return isinstance(got, str)
    return True
