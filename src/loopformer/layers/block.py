"""One Transformer layer (self-attention, optional cross-attention, FFN), post- or pre-norm.

The layer holds only what is shared between the levels that apply it. What differs per
application arrives as a :class:`~loopformer.layers.hooks.LayerHooks` object that the layer
asks at fixed points (sublayer norms, Q/K/V, FFN input, cross-attention), so the same
layer code serves every model without knowing which one it is part of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Hashable

from torch import Tensor, nn

from .attention import CrossAttention, SelfAttention
from .cache import KVCache
from .dropout import Dropout
from .ffn import FeedForward
from .hooks import NO_HOOKS, LayerHooks
from .masks import AttnMask


@dataclass
class SharedInputs:
    """Per-forward inputs common to every layer of a stack (built by the task model)."""

    self_mask: AttnMask = field(default_factory=AttnMask)
    memory: Tensor | None = None
    memory_mask: AttnMask = field(default_factory=AttnMask)
    rope: tuple[Tensor, Tensor] | None = None
    cache: KVCache | None = None
    position_offset: int = 0
    token_embeddings: Tensor | None = None  # the input embeddings (MeSH's slot 0)
    # early exit (models/early_exit.py): the model's prediction read off a loop state,
    # whether positions exit one by one ("token") or whole sequences at once ("sequence"),
    # the padding of the positions (True = padding) that never count, and the keys and
    # values exited tokens keep (set by the stack for its core)
    readout: Callable[[Tensor], Tensor] | None = None
    exit_scope: str = "token"
    padding: Tensor | None = None
    frozen_kv: Any = None


@dataclass(frozen=True)
class LayerSpec:
    dim: int
    n_heads: int
    d_ff: int
    cross: bool = False
    norm_style: str = "post"
    bias: bool = False
    dropout: float = 0.1
    attn_dropout: float = 0.0
    attn_residual_dropout: bool = True  # dropout on the self-attention output before the residual sum
    norm_eps: float = 1e-5
    ffn_init_std: float | None = None
    ffn_xavier_init: bool = False
    own_norms: bool = True
    shared_sublayer_norm: bool = False
    has_ffn: bool = True  # False: attention-only layer (One Wide FFN decoder)
    parallel: bool = False  # GPT-NeoX block: h + Attn(LN1 h) + MLP(LN2 h)

    @property
    def n_sublayers(self) -> int:
        return (2 if self.cross else 1) + int(self.has_ffn)


class TransformerLayer(nn.Module):
    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.self_attn = SelfAttention(spec.dim, spec.n_heads, spec.bias, spec.attn_dropout)
        self.cross_attn = (
            CrossAttention(spec.dim, spec.n_heads, spec.bias, spec.attn_dropout) if spec.cross else None
        )
        self.ffn = (
            FeedForward(spec.dim, spec.d_ff, spec.bias, spec.dropout, spec.ffn_init_std, spec.ffn_xavier_init)
            if spec.has_ffn else None
        )
        self.dropout = Dropout(spec.dropout)
        # the official ViTs add the attention output undropped; an identity keeps one code path
        self.attn_out_dropout = self.dropout if spec.attn_residual_dropout else nn.Identity()
        # set by analysis tools to receive attention weights (key, kind, (B, H, T, S)); None = free
        self.attn_probe: Callable[[Hashable, str, Tensor], None] | None = None
        if not spec.own_norms:
            self.norms = None
        elif spec.shared_sublayer_norm:
            # One LayerNorm reused by every sublayer (as in the RingFormer authors' vanilla).
            self.norms = nn.ModuleList([nn.LayerNorm(spec.dim, eps=spec.norm_eps)])
        else:
            self.norms = nn.ModuleList(nn.LayerNorm(spec.dim, eps=spec.norm_eps) for _ in range(spec.n_sublayers))

    def _sublayer_norms(self, hooks: LayerHooks) -> list[nn.Module]:
        norms = hooks.norms(self.norms)
        if len(norms) == 1:  # one LayerNorm reused by every sublayer
            return [norms[0]] * self.spec.n_sublayers
        return list(norms)

    def forward(self, h: Tensor, hooks: LayerHooks | None, shared: SharedInputs, key: Hashable) -> Tensor:
        """``hooks``: what this application asks of its level (``None``: a plain layer);
        ``key`` names the application in the cache and for attention probes."""
        hooks = NO_HOOKS if hooks is None else hooks
        norms = self._sublayer_norms(hooks)
        probe = None
        listener = self.attn_probe
        if listener is not None:
            probe = partial(listener, key, "self")
        if self.spec.norm_style == "post":
            return self._post(h, norms, hooks, shared, key, probe)
        return self._pre(h, norms, hooks, shared, key, probe)

    # --- post-norm (translation) -------------------------------------------------------

    def _post(self, h, norms, hooks, shared, key, probe) -> Tensor:
        sa = self.self_attn
        split = hooks.qkv_split(h, h, sa)
        a = sa(h, shared.self_mask, split, shared.rope, shared.cache, (key, "self"), probe)
        h = norms[0](h + self.attn_out_dropout(a))
        if self.cross_attn is not None:
            h = norms[1](h + self.dropout(self._cross(h, hooks, shared, key)))
        if self.ffn is None:
            return h
        return norms[-1](h + self.dropout(self.ffn(hooks.ffn_input(h, None))))

    # --- pre-norm (ViT, GPT) -----------------------------------------------------------

    def _pre(self, h, norms, hooks, shared, key, probe) -> Tensor:
        u = norms[0](h)
        sa = self.self_attn
        split = hooks.qkv_split(h, u, sa)
        attn = self.attn_out_dropout(sa(u, shared.self_mask, split, shared.rope, shared.cache, (key, "self"), probe))
        if self.spec.parallel:
            return h + attn + self.dropout(self.ffn(hooks.ffn_input(h, norms[-1])))
        h = h + attn
        if self.cross_attn is not None:
            h = h + self.dropout(self._cross(norms[1](h), hooks, shared, key))
        if self.ffn is None:
            return h
        return h + self.dropout(self.ffn(hooks.ffn_input(h, norms[-1])))

    def _cross(self, x: Tensor, hooks: LayerHooks, shared: SharedInputs, key: Hashable) -> Tensor:
        if shared.memory is None:
            raise ValueError("a decoder layer with cross-attention needs the encoder output")
        q_split, kv_split = hooks.cross_q_split(x), hooks.cross_kv_split(shared.memory)
        listener = self.attn_probe
        probe = partial(listener, key, "cross") if listener is not None else None
        return self.cross_attn(
            x, shared.memory, shared.memory_mask, q_split, kv_split, shared.cache, (key, "cross"), probe
        )
