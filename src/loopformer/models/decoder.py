"""Decoder-only causal language model on the looped engine (any loop schedule)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..config import ModelConfig
from ..layers.block import SharedInputs
from ..layers.cache import KVCache
from ..layers.masks import build_mask
from .base import LoopformerModel, TextInput, make_rotary
from .build import build_stack
from .depth import run_depth


class CausalLM(LoopformerModel):
    """Token embeddings -> looped stack (any schedule, any adapter) -> final norm -> head."""

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
        if cfg.depth_scaled_init:
            scale_output_projections(self.decoder, self.decoder.depth)

    def new_cache(self) -> KVCache:
        """An empty decoding cache of the kind this model's stack needs."""
        return self.decoder.new_cache()

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None, cache: KVCache | None = None,
                loops: int | None = None) -> Tensor:
        """Logits (B, T, V). With a cache (see :meth:`new_cache`), ``tokens`` are the new
        positions only and ``padding_mask`` (True = padding, e.g. left padding of prompts)
        covers them; a SpiralFormer cache refuses padding (its chunks count from position 0).
        ``loops`` runs the looped core that many times (``models.depth.run_depth`` sets
        loops, level rule and early exit for a whole generation)."""
        if loops is not None:
            with run_depth(self, loops=loops):
                return self.forward(tokens, padding_mask, cache)
        offset = cache.length if cache is not None else 0
        t = tokens.shape[1]
        pad = padding_mask
        if cache is not None:
            pad = cache.extend_padding(padding_mask, tokens.shape[0], t, tokens.device)
        x = self.input(tokens, offset)
        shared = SharedInputs(
            self_mask=build_mask(t, offset + t, pad, True, tokens.device),
            rope=self.rotary(t, offset) if self.rotary is not None else None,
            cache=cache,
            position_offset=offset,
            token_embeddings=x,
            readout=self.readout,
            padding=padding_mask,
        )
        h = self.decoder(x, shared)
        if cache is not None:
            cache.advance(t)
        if self.final_norm is not None:
            h = self.final_norm(h)
        return self.output(h)

    def readout(self, h: Tensor) -> Tensor:
        """Logits read off a loop state (early exit's predictions)."""
        return self.output(self.final_norm(h) if self.final_norm is not None else h)


def scale_output_projections(stack: nn.Module, depth: int) -> None:
    """GPT-NeoX init: attention-output and MLP-down weights ~ N(0, 0.02 / sqrt(2 * depth))."""
    from ..layers.block import TransformerLayer

    std = 0.02 / math.sqrt(2 * max(depth, 1))
    for module in stack.modules():
        if isinstance(module, TransformerLayer):
            nn.init.normal_(module.self_attn.out_proj.weight, std=std)
            if module.ffn is not None:
                nn.init.normal_(module.ffn.down.weight, std=std)
