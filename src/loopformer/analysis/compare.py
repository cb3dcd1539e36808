"""Run analyses on checkpoints of any task: inputs, masks, CKA and attention distances.

Inputs come from the checkpoint's own task (teacher-forced test pairs for translation,
test images for vision, validation windows for language models), so two checkpoints of
the same task see exactly the same examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from ..errors import ConfigError
from ..tasks.task_file import task_name
from .attention import mean_attention_distance, token_attention_distance
from .cka import MinibatchCKA
from .hooks import capture


def token_rows(states: Tensor, mask: Tensor | None) -> Tensor:
    """(B, T, d) -> (n, d): the rows of real (non-padding) positions."""
    if mask is None:
        return states.reshape(-1, states.shape[-1])
    return states[mask]


def load_for_analysis(folder: str | Path) -> tuple[Any, Any, str]:
    kind = task_name(folder)
    if kind == "translation":
        from ..tasks.translation_run import load_translation_checkpoint as load
    elif kind == "vision":
        from ..tasks.vision_run import load_vision_checkpoint as load
    else:
        from ..tasks.language_run import load_language_checkpoint as load
    model, task = load(folder)
    return model.eval(), task, kind


def batches(task, kind: str, split: str | None, batch_size: int, max_batches: int | None
            ) -> Iterator[tuple[tuple[Tensor, ...], dict[str, Tensor | None]]]:
    """(model inputs, {stack name: (B, T) real-position mask or None}) per batch."""
    count = 0
    if kind == "translation":
        from ..data.batching import pad_batch
        from ..data.tokenizer import PAD

        src, ref = task.split(split or "test2016")
        s_ids, t_ids = task._encode_pairs(src, ref)
        for i in range(0, len(s_ids), batch_size):
            s, t = pad_batch(s_ids[i : i + batch_size], PAD), pad_batch(t_ids[i : i + batch_size], PAD)
            t_in = t[:, :-1]
            yield (s, t_in), {"encoder": s.ne(PAD), "decoder": t_in.ne(PAD)}
            count += 1
            if max_batches and count >= max_batches:
                return
    elif kind == "vision":
        images, _ = task.split(split or "test")
        for i in range(0, len(images), batch_size):
            yield (task.prepare_images(images[i : i + batch_size]),), {"encoder": None}
            count += 1
            if max_batches and count >= max_batches:
                return
    else:
        if split not in (None, "val"):
            raise ConfigError(f"language-model analyses run on the validation split, not {split!r}")
        windows = task.eval_windows()
        for i in range(0, len(windows), batch_size):
            yield (windows[i : i + batch_size, :-1],), {"decoder": None}
            count += 1
            if max_batches and count >= max_batches:
                return


def _key_label(key) -> str:
    """("prelude", j) -> "layer j" (a vanilla model's layers are its prelude), (t, j) ->
    "level t" (".j" for the j-th layer of a multi-layer core), ("level", t) -> "iter t"."""
    if isinstance(key[0], str):
        name = {"prelude": "layer", "level": "iter"}.get(key[0], key[0])
        return f"{name} {key[1]}"
    return f"level {key[0]}" + (f".{key[1]}" if key[1] else "")


@torch.no_grad()
def compare_cka(path_a: str, path_b: str, split: str | None = None, batch_size: int = 64,
                max_batches: int | None = None) -> dict[str, Any]:
    """CKA between every layer application of A and of B, per stack (encoder / decoder)."""
    model_a, task_a, kind = load_for_analysis(path_a)
    model_b, _, kind_b = load_for_analysis(path_b)
    if kind != kind_b:
        raise ConfigError(f"cannot compare a {kind} checkpoint with a {kind_b} one")
    _same_inputs(path_a, path_b, kind)
    accum: dict[str, MinibatchCKA] = {}
    labels: dict[str, tuple[list[str], list[str]]] = {}
    for _, stack, xs, ys in paired_states(model_a, model_b, task_a, kind, split, batch_size, max_batches):
        if stack not in accum:
            accum[stack] = MinibatchCKA(len(xs), len(ys))
            labels[stack] = ([_key_label(k) for k, _ in xs], [_key_label(k) for k, _ in ys])
        accum[stack].update([v for _, v in xs], [v for _, v in ys])
    if not accum:
        raise ConfigError("no comparable layer outputs were captured")
    return {stack: {"a_layers": labels[stack][0], "b_layers": labels[stack][1],
                    "cka": m.result().tolist(), "batches": m.batches} for stack, m in accum.items()}


def paired_states(model_a, model_b, task, kind: str, split: str | None, batch_size: int,
                  max_batches: int | None) -> Iterator[tuple[int, str, list, list]]:
    """Per batch and stack: (batch index, stack, A's [(key, rows)], B's [(key, rows)]), the
    rows being the real positions of every layer application's output, on the same inputs."""
    for index, (inputs, masks) in enumerate(batches(task, kind, split, batch_size, max_batches)):
        with capture(model_a) as cap_a:
            model_a(*inputs)
        with capture(model_b) as cap_b:
            model_b(*inputs)
        for stack, mask in masks.items():
            if kind == "vision":  # patches + the cls token (inputs are images, not tokens)
                cfg = model_a.config
                length = (cfg.image_size // cfg.patch_size) ** 2 + 1
            else:
                length = inputs[0 if stack == "encoder" else -1].shape[1]
            xs = [(k, token_rows(v, mask)) for (s, k), v in cap_a.states.items() if s == stack and v.shape[1] == length]
            ys = [(k, token_rows(v, mask)) for (s, k), v in cap_b.states.items() if s == stack and v.shape[1] == length]
            if xs and ys:
                yield index, stack, xs, ys


def _same_inputs(path_a: str, path_b: str, kind: str) -> None:
    names = {"translation": "tokenizer.json", "language": "chars.json"}
    if kind not in names:
        return
    a, b = Path(path_a), Path(path_b)
    fa, fb = a / names[kind], b / names[kind]
    if kind == "language" and not fa.is_file():
        fa, fb = a / "tokenizer.json", b / "tokenizer.json"
    if fa.is_file() and fb.is_file() and fa.read_bytes() != fb.read_bytes():
        raise ConfigError("the two checkpoints use different tokenizers; CKA needs the same inputs for both")


@torch.no_grad()
def attention_distances(path: str, split: str | None = None, batch_size: int = 64,
                        max_batches: int | None = None) -> dict[str, Any]:
    """Per stack, per layer application: mean attention distance per head (pixels for ViTs
    (MAD), tokens otherwise) and its mean over heads."""
    model, task, kind = load_for_analysis(path)
    sums: dict[tuple, Tensor] = {}
    counts: dict[tuple, float] = {}
    units = {}
    if model.config.arch == "spiral":
        units = {t: float(level.g) for t, level in enumerate(model.decoder.levels)}
    cfg = model.config
    for inputs, masks in batches(task, kind, split, batch_size, max_batches):
        with capture(model, states=False, attention=True) as cap:
            model(*inputs)
        for (stack, key, kind_attn), w in cap.attention.items():
            if kind_attn != "self":
                continue
            if kind == "vision":
                value = mean_attention_distance(w, cfg.image_size // cfg.patch_size, cfg.patch_size)
                n = float(w.shape[0])
            else:
                latent = isinstance(key[0], int) and w.shape[-2] != inputs[0 if stack == "encoder" else -1].shape[1]
                mask = None if latent else masks.get(stack)
                unit = units.get(key[0], 1.0) if latent else 1.0
                value = token_attention_distance(w, mask, unit=unit)
                n = float(mask.sum()) if mask is not None else float(w.shape[0] * w.shape[2])
            k = (stack, key)
            sums[k] = sums.get(k, 0) + value * n
            counts[k] = counts.get(k, 0.0) + n
    out: dict[str, Any] = {"unit": "pixels" if kind == "vision" else "tokens", "stacks": {}}
    for (stack, key), total in sums.items():
        per_head = (total / counts[(stack, key)]).tolist()
        out["stacks"].setdefault(stack, []).append(
            {"layer": _key_label(key), "per_head": per_head, "mean": sum(per_head) / len(per_head)})
    return out


@torch.no_grad()
def signal_norms(path: str, split: str | None = None, batch_size: int = 64,
                 max_batches: int | None = None) -> list[dict[str, Any]]:
    """RingFormer checkpoints: per signal module, level and kind, E||signal|| / E||base||
    on a data split (see :mod:`loopformer.analysis.signal_norms`)."""
    from .signal_norms import record_signal_norms

    model, task, kind = load_for_analysis(path)
    if model.config.arch != "ringformer":
        raise ConfigError(f"{path} is a {model.config.arch} model; level signals exist in ringformer models only")
    if model.config.signal_mode != "dynamic":
        raise ConfigError(f"{path} has static level signals; their size does not depend on the input")
    with record_signal_norms(model) as norms:
        for inputs, _ in batches(task, kind, split, batch_size, max_batches):
            model(*inputs)
    return norms.table()
