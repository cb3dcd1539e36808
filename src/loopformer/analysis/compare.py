"""Layer-by-layer comparisons of models on batches: CKA and attention distances.

Batches are ``(model inputs, {stack name: (B, T) real-position mask or None})``, as a
task's ``analysis_batches`` yields them; loading checkpoints and choosing the inputs is
the tasks' side (:mod:`loopformer.tasks.analyze`)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from torch import Tensor

from ..errors import ConfigError
from .attention import mean_attention_distance, token_attention_distance
from .cka import MinibatchCKA
from .hooks import capture


def token_rows(states: Tensor, mask: Tensor | None) -> Tensor:
    """(B, T, d) -> (n, d): the rows of real (non-padding) positions."""
    if mask is None:
        return states.reshape(-1, states.shape[-1])
    return states[mask]


def key_label(key) -> str:
    """("prelude", j) -> "layer j" (a vanilla model's layers are its prelude), (t, j) ->
    "level t" (".j" for the j-th layer of a multi-layer core), ("level", t) -> "iter t"."""
    if isinstance(key[0], str):
        name = {"prelude": "layer", "level": "iter"}.get(key[0], key[0])
        return f"{name} {key[1]}"
    return f"level {key[0]}" + (f".{key[1]}" if key[1] else "")


def cka_of(pairs: Iterable[tuple[int, str, list, list]]) -> dict[str, Any]:
    """CKA between every layer application of A and of B, per stack, accumulated over the
    batches of :func:`paired_states`."""
    accum: dict[str, MinibatchCKA] = {}
    labels: dict[str, tuple[list[str], list[str]]] = {}
    for _, stack, xs, ys in pairs:
        if stack not in accum:
            accum[stack] = MinibatchCKA(len(xs), len(ys))
            labels[stack] = ([key_label(k) for k, _ in xs], [key_label(k) for k, _ in ys])
        accum[stack].update([v for _, v in xs], [v for _, v in ys])
    if not accum:
        raise ConfigError("no comparable layer outputs were captured")
    return {stack: {"a_layers": labels[stack][0], "b_layers": labels[stack][1],
                    "cka": m.result().tolist(), "batches": m.batches} for stack, m in accum.items()}


def paired_states(model_a, model_b, batches: Iterable) -> Iterator[tuple[int, str, list, list]]:
    """Per batch and stack: (batch index, stack, A's [(key, rows)], B's [(key, rows)]), the
    rows being the real positions of every layer application's output, on the same inputs."""
    for index, (inputs, masks) in enumerate(batches):
        with capture(model_a) as cap_a:
            model_a(*inputs)
        with capture(model_b) as cap_b:
            model_b(*inputs)
        for stack, mask in masks.items():
            length = _positions(model_a, inputs, stack)
            xs = [(k, token_rows(v, mask)) for (s, k), v in cap_a.states.items() if s == stack and v.shape[1] == length]
            ys = [(k, token_rows(v, mask)) for (s, k), v in cap_b.states.items() if s == stack and v.shape[1] == length]
            if xs and ys:
                yield index, stack, xs, ys


def _positions(model, inputs: tuple, stack: str) -> int:
    """Token positions of a stack's states: patches + the cls token for a ViT (whose inputs
    are images), else the length of the stack's input ids."""
    cfg = model.config
    if cfg.task == "vit":
        return (cfg.image_size // cfg.patch_size) ** 2 + 1
    return inputs[0 if stack == "encoder" else -1].shape[1]


def attention_distances_of(model, batches: Iterable) -> dict[str, Any]:
    """Per stack, per layer application: mean attention distance per head (pixels for ViTs
    (MAD), tokens otherwise) and its mean over heads."""
    sums: dict[tuple, Tensor] = {}
    counts: dict[tuple, float] = {}
    cfg = model.config
    vision = cfg.task == "vit"
    for inputs, masks in batches:
        with capture(model, states=False, attention=True) as cap:
            model(*inputs)
        for (stack, key, kind_attn), w in cap.attention.items():
            if kind_attn != "self":
                continue
            if vision:
                value = mean_attention_distance(w, cfg.image_size // cfg.patch_size, cfg.patch_size)
                n = float(w.shape[0])
            else:
                value, n = _token_distance(model, w, key, masks.get(stack), _positions(model, inputs, stack))
            k = (stack, key)
            sums[k] = sums.get(k, 0) + value * n
            counts[k] = counts.get(k, 0.0) + n
    out: dict[str, Any] = {"unit": "pixels" if vision else "tokens", "stacks": {}}
    for (stack, key), total in sums.items():
        per_head = (total / counts[(stack, key)]).tolist()
        out["stacks"].setdefault(stack, []).append(
            {"layer": key_label(key), "per_head": per_head, "mean": sum(per_head) / len(per_head)})
    return out


def _token_distance(model, w: Tensor, key, mask: Tensor | None, length: int) -> tuple[Tensor, float]:
    """Mean distance in tokens of one attention map and its weight. A coarse iteration's
    latents (fewer queries than tokens) stand for chunks of the schedule's size."""
    latent = isinstance(key[0], int) and w.shape[-2] != length
    mask = None if latent else mask
    unit = float(model.config.schedule[key[0]]) if latent else 1.0
    value = token_attention_distance(w, mask, unit=unit)
    return value, float(mask.sum()) if mask is not None else float(w.shape[0] * w.shape[2])
