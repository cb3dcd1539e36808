"""Regional ``torch.compile``: compile the Transformer layer, not the whole model.

A looped model applies one layer at every level, so compiling that layer once covers
the whole depth: compile time does not grow with the number of levels, and changing
the loop count (at inference, or between models) reuses the compiled code. What differs
per level reaches the layer as arguments (the level index, per-level norms and
signals), so after the first two levels the level index is a symbolic integer and no
further level recompiles. Incremental decoding (a KV cache keyed by level) and
attention probes stay eager: they are Python bookkeeping that would only add guards.

This lives outside the model code on purpose: models stay plain ``nn.Module``\\ s, their
state dicts and checkpoints are unchanged, and :func:`uncompile_layers` restores them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layers.block import TransformerLayer

_MARK = "_loopformer_eager_forward"


def compile_layers(model: nn.Module, **options: Any) -> int:
    """Compile the forward of every :class:`TransformerLayer` in ``model`` in place
    (``options`` go to ``torch.compile``, e.g. ``mode`` or ``backend``); returns how
    many layers were compiled. Calling it again recompiles with the new options."""
    uncompile_layers(model)
    count = 0
    for layer in model.modules():
        if not isinstance(layer, TransformerLayer):
            continue
        eager = layer.forward
        compiled = torch.compile(eager, **options)

        def forward(h, lp, shared, key, _layer=layer, _eager=eager, _compiled=compiled):
            if shared.cache is not None or _layer.attn_probe is not None:
                return _eager(h, lp, shared, key)
            return _compiled(h, lp, shared, key)

        layer.forward = forward
        setattr(layer, _MARK, eager)
        count += 1
    return count


def uncompile_layers(model: nn.Module) -> None:
    """Undo :func:`compile_layers` (back to the eager forward)."""
    for layer in model.modules():
        if isinstance(layer, TransformerLayer) and hasattr(layer, _MARK):
            delattr(layer, _MARK)
            del layer.forward  # the instance attribute; the class method shows through again


def is_compiled(model: nn.Module) -> bool:
    return any(hasattr(m, _MARK) for m in model.modules())
