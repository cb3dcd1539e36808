"""Capture hidden states and attention maps of any model, without touching its code paths.

Stacks already call observers after each layer application and layers call an attention
listener when one is set; both are ``None`` (free) unless a capture is active.

    with capture(model, attention=True) as cap:
        model(tokens)
    cap.states      # {(stack, key): (B, T, d)}, in the order the forward pass produced them
    cap.attention   # {(stack, key, "self" | "cross"): (B, H, T, S)}

Keys are ``("prelude", j)``, ``(t, j)`` for core layer ``j`` at iteration ``t``, and
``("coda", j)``; a vanilla model's layers are its prelude. SpiralFormer core keys carry
latents (one position per chunk) and ``("level", t)`` its token states after iteration t.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Hashable, Iterator

from torch import Tensor, nn


@dataclass
class Captured:
    states: dict[tuple[str, Hashable], Tensor] = field(default_factory=dict)
    attention: dict[tuple[str, Hashable, str], Tensor] = field(default_factory=dict)


def stacks_of(model: nn.Module) -> dict[str, nn.Module]:
    """Every looped stack of a model by attribute name (``encoder``, ``decoder``)."""
    return {name: m for name, m in model.named_modules() if name and hasattr(m, "add_observer")}


@contextmanager
def capture(model: nn.Module, states: bool = True, attention: bool = False) -> Iterator[Captured]:
    from ..layers.block import TransformerLayer

    cap = Captured()
    removers = []
    probed: list[TransformerLayer] = []
    for name, stack in stacks_of(model).items():
        if states:
            def keep(key, h, name=name):
                cap.states[(name, key)] = h.detach()

            removers.append(stack.add_observer(keep))
        if attention:
            def listen(key, kind, weights, name=name):
                cap.attention[(name, key, kind)] = weights.detach()

            for layer in stack.modules():
                if isinstance(layer, TransformerLayer):
                    layer.attn_probe = listen
                    probed.append(layer)
    try:
        yield cap
    finally:
        for remove in removers:
            remove()
        for layer in probed:
            layer.attn_probe = None
