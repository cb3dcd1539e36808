"""One Transformer layer (self-attention, optional cross-attention, FFN), post- or pre-norm.

The layer holds only what is shared between the levels that apply it. What differs per
level (RingFormer's LayerNorms and signals) arrives in a :class:`LevelParams`, so the
same layer code serves vanilla, looped, Universal and RingFormer models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Hashable

from torch import Tensor, nn

from .attention import CrossAttention, SelfAttention
from .cache import KVCache
from .dropout import Dropout
from .ffn import FeedForward
from .masks import AttnMask
from .signals import LevelSignals


@dataclass
class LevelParams:
    """Per-level pieces for one application of a shared layer."""

    level: int
    norms: list[nn.Module] | None = None
    signals: LevelSignals | None = None
    cross_q: LevelSignals | None = None
    cross_kv: LevelSignals | None = None


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
    signal_input: str = "raw"
    ffn_signal_position: str = "after_norm"
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

    def _norm_list(self, lp: LevelParams | None) -> list[nn.Module]:
        norms = lp.norms if lp is not None and lp.norms is not None else self.norms
        if norms is None:
            raise RuntimeError("layer built without its own norms needs per-level norms")
        if len(norms) == 1:
            return [norms[0]] * self.spec.n_sublayers
        return list(norms)

    def forward(self, h: Tensor, lp: LevelParams | None, shared: SharedInputs, key: Hashable) -> Tensor:
        norms = self._norm_list(lp)
        sig = lp.signals if lp is not None else None
        level = lp.level if lp is not None else 0
        probe = None
        listener = self.attn_probe
        if listener is not None:
            probe = partial(listener, key, "self")
        if self.spec.norm_style == "post":
            return self._post(h, norms, sig, level, lp, shared, key, probe)
        return self._pre(h, norms, sig, level, lp, shared, key, probe)

    # --- post-norm (translation) -------------------------------------------------------

    def _post(self, h, norms, sig, level, lp, shared, key, probe) -> Tensor:
        add = None
        if sig is not None and sig.has_qkv:
            add = partial(sig.split_qkv, level=level, x=h, weight=self._qkv_weight(sig))
        a = self.self_attn(h, shared.self_mask, add, shared.rope, shared.cache, (key, "self"), probe)
        h = norms[0](h + self.attn_out_dropout(a))
        if self.cross_attn is not None:
            h = norms[1](h + self.dropout(self._cross(h, lp, shared, key)))
        if self.ffn is None:
            return h
        f_in = sig.add_ffn(h, level, h) if sig is not None and sig.has_ffn else h
        return norms[-1](h + self.dropout(self.ffn(f_in)))

    # --- pre-norm (ViT, GPT) -----------------------------------------------------------

    def _pre(self, h, norms, sig, level, lp, shared, key, probe) -> Tensor:
        u = norms[0](h)
        add = None
        if sig is not None and sig.has_qkv:
            src = h if self.spec.signal_input == "raw" else u
            add = partial(sig.split_qkv, level=level, x=src, weight=self._qkv_weight(sig))
        attn = self.attn_out_dropout(self.self_attn(u, shared.self_mask, add, shared.rope, shared.cache, (key, "self"), probe))
        if self.spec.parallel:
            return h + attn + self.dropout(self.ffn(self._ffn_input(h, norms[-1], sig, level)))
        h = h + attn
        if self.cross_attn is not None:
            h = h + self.dropout(self._cross(norms[1](h), lp, shared, key))
        if self.ffn is None:
            return h
        return h + self.dropout(self.ffn(self._ffn_input(h, norms[-1], sig, level)))

    def _qkv_weight(self, sig) -> Tensor | None:
        """The fused Q/K/V weight when signals enter before the projection, else None."""
        return self.self_attn.qkv_proj.weight if sig.placement == "before" else None

    def _ffn_input(self, h: Tensor, last: nn.Module, sig, level: int) -> Tensor:
        if sig is None or not sig.has_ffn:
            return last(h)
        if self.spec.ffn_signal_position == "before_norm":
            src = h if self.spec.signal_input == "raw" else last(h)
            return last(sig.add_ffn(h, level, src))
        u = last(h)
        return sig.add_ffn(u, level, h if self.spec.signal_input == "raw" else u)

    def _cross(self, x: Tensor, lp: LevelParams | None, shared: SharedInputs, key: Hashable) -> Tensor:
        if shared.memory is None:
            raise ValueError("a decoder layer with cross-attention needs the encoder output")
        q_sig = kv_sig = None
        if lp is not None and lp.cross_q is not None:
            q_sig = partial(lp.cross_q.split_qkv, level=lp.level, x=x)
            kv_sig = partial(lp.cross_kv.split_qkv, level=lp.level, x=shared.memory)
        listener = self.attn_probe
        probe = partial(listener, key, "cross") if listener is not None else None
        return self.cross_attn(
            x, shared.memory, shared.memory_mask, q_sig, kv_sig, shared.cache, (key, "cross"), probe
        )
