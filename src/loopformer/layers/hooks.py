"""The points where one application of a shared layer may differ from another.

A looped core applies the same :class:`~loopformer.layers.block.TransformerLayer` at
every level. Whatever tells those applications apart (per-level LayerNorms, RingFormer's
level signals, anything new) reaches the layer as a :class:`LayerHooks` object, which the
layer asks at fixed points: the LayerNorm of each sublayer, the split of the fused Q/K/V
projection (where additions to Q, K, V enter), the input of the FFN and the two
projections of cross-attention. This base class answers as a plain Transformer layer
would, so the layer computes exactly that when given it (or ``None``). The layer never
knows which model it is part of: level adapters (``loopformer.models.levels``) hand out
subclasses, one object per layer application.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor, nn

#: splits a fused projection into its parts (Q, K, V or K, V or Q), with any additions
Split = Callable[[Tensor], tuple[Tensor, ...]]


class LayerHooks:
    """Identity hooks: every answer is what a plain Transformer layer computes. Hooks on
    a projection return a function that splits it (adding what they add) or ``None``,
    which costs nothing: the layer then splits the projection itself."""

    def norms(self, own: Sequence[nn.Module] | None) -> Sequence[nn.Module]:
        """The LayerNorm of each sublayer (self-attention, cross-attention, FFN), given the
        layer's own (``None`` when the layer was built to take them from its levels)."""
        if own is None:
            raise RuntimeError("a layer built without its own norms needs per-level norms")
        return own

    def qkv_split(self, raw: Tensor, normed: Tensor, attention: nn.Module) -> Split | None:
        """How to turn the fused Q/K/V projection (..., 3d) of ``normed`` into Q, K, V.

        ``raw`` is the layer's input (equal to ``normed`` in a post-norm layer) and
        ``attention`` the self-attention module (its fused map is ``attention.qkv_proj``),
        for hooks that add terms computed from either input, or added before the map."""
        return None

    def ffn_input(self, h: Tensor, norm: nn.Module | None) -> Tensor:
        """What the FFN reads: ``norm(h)`` before a pre-norm FFN, ``h`` in a post-norm
        layer (``norm`` is ``None`` there: its norm comes after the residual sum)."""
        return h if norm is None else norm(h)

    def cross_q_split(self, x: Tensor) -> Split | None:
        """How to turn the cross-attention query projection of ``x`` into the query
        (a 1-tuple)."""
        return None

    def cross_kv_split(self, memory: Tensor) -> Split | None:
        """How to turn the fused K/V projection (..., 2d) of the encoder output into K, V."""
        return None


#: the hooks of a layer applied once (prelude, coda, vanilla layers): a plain layer
NO_HOOKS = LayerHooks()
