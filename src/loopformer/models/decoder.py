"""Decoder-only causal language model and a bare text encoder on the looped engine."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from ..layers.block import SharedInputs
from ..layers.cache import KVCache
from ..layers.masks import build_mask
from .base import LoopformerModel, TextInput, make_rotary
from .build import build_stack


class CausalLM(LoopformerModel):
    embedding_prefixes = ("input.",)
    head_prefixes = ("output.",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        cfg = config
        self.input = TextInput(cfg, cfg.vocab_size)
        self.rotary = make_rotary(cfg)
        self.decoder = build_stack(cfg, cfg.n_layers)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.final_norm_eps) if cfg.final_norm else None
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.output_bias)
        if cfg.tie_embeddings:
            self.output.weight = self.input.embed.weight

    def forward(
        self, tokens: Tensor, padding_mask: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        """Logits (B, T, V). With a cache, ``tokens`` are the new positions only and
        ``padding_mask`` (True = padding, e.g. left padding of prompts) covers them."""
        offset = cache.length if cache is not None else 0
        t = tokens.shape[1]
        pad = padding_mask
        if cache is not None:
            pad = cache.extend_padding(padding_mask, tokens.shape[0], t, tokens.device)
        shared = SharedInputs(
            self_mask=build_mask(t, offset + t, pad, True, tokens.device),
            rope=self.rotary(t, offset) if self.rotary is not None else None,
            cache=cache,
            position_offset=offset,
        )
        h = self.decoder(self.input(tokens, offset), shared)
        if cache is not None:
            cache.advance(t)
        if self.final_norm is not None:
            h = self.final_norm(h)
        return self.output(h)


class TextEncoder(LoopformerModel):
    """Bidirectional encoder returning hidden states (B, T, d)."""

    embedding_prefixes = ("input.",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        cfg = config
        self.input = TextInput(cfg, cfg.vocab_size)
        self.rotary = make_rotary(cfg)
        self.encoder = build_stack(cfg, cfg.n_layers)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.final_norm_eps) if cfg.final_norm else None

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        if padding_mask is None:
            padding_mask = tokens.eq(self.config.pad_id)
        t = tokens.shape[1]
        shared = SharedInputs(
            self_mask=build_mask(t, t, padding_mask, False, tokens.device),
            rope=self.rotary(t) if self.rotary is not None else None,
        )
        h = self.encoder(self.input(tokens), shared)
        return self.final_norm(h) if self.final_norm is not None else h
