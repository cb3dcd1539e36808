"""Encoder-decoder for translation (post-norm per the RingFormer spec by default)."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from ..layers.block import SharedInputs
from ..layers.cache import KVCache
from ..layers.masks import AttnMask, build_mask
from .base import LoopformerModel, TextInput, make_rotary
from .build import build_stack
from .depth import run_depth


class Seq2SeqModel(LoopformerModel):
    embedding_prefixes = ("src_input.", "tgt_input.")
    head_prefixes = ("output.",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        cfg = config
        self.src_input = TextInput(cfg, cfg.vocab_size)
        self.tgt_input = TextInput(cfg, cfg.target_vocab_size)
        if cfg.tie_embeddings:
            self.tgt_input.embed.weight = self.src_input.embed.weight
        self.rotary = make_rotary(cfg)
        self.encoder = build_stack(cfg, cfg.n_layers)
        self.decoder = build_stack(cfg, cfg.decoder_layers, cross=True)
        self.enc_norm = nn.LayerNorm(cfg.d_model, eps=cfg.final_norm_eps) if cfg.final_norm else None
        self.dec_norm = nn.LayerNorm(cfg.d_model, eps=cfg.final_norm_eps) if cfg.final_norm else None
        self.output = nn.Linear(cfg.d_model, cfg.target_vocab_size, bias=cfg.output_bias)
        if cfg.tie_embeddings:
            self.output.weight = self.tgt_input.embed.weight

    def new_cache(self) -> KVCache:
        """An empty decoding cache for :meth:`decode` (the decoder stack's kind)."""
        return self.decoder.new_cache()

    def encode(self, src: Tensor, src_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Returns the encoder output and its padding mask (True = padding)."""
        if src_padding_mask is None:
            src_padding_mask = src.eq(self.config.pad_id)
        h = self.src_input(src)
        mask = build_mask(src.shape[1], src.shape[1], src_padding_mask, False, src.device)
        rope = self.rotary(src.shape[1]) if self.rotary is not None else None
        shared = SharedInputs(self_mask=mask, rope=rope, exit_scope="sequence", padding=src_padding_mask)
        h = self.encoder(h, shared)
        if self.enc_norm is not None:
            h = self.enc_norm(h)
        return h, src_padding_mask

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_padding_mask: Tensor,
        cache: KVCache | None = None,
        tgt_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits for ``tgt``; with a cache, ``tgt`` holds only the new positions.

        Target padding needs no mask in training: padding sits at the end and causal
        attention never lets a real position see it.
        """
        offset = cache.length if cache is not None else 0
        t = tgt.shape[1]
        pad = None
        if cache is not None:
            pad = cache.extend_padding(tgt_padding_mask, tgt.shape[0], t, tgt.device)
        elif tgt_padding_mask is not None:
            pad = tgt_padding_mask
        self_mask = build_mask(t, offset + t, pad, True, tgt.device)
        mem_mask = AttnMask(mask=(~memory_padding_mask)[:, None, None, :])
        rope = self.rotary(t, offset) if self.rotary is not None else None
        shared = SharedInputs(
            self_mask=self_mask, memory=memory, memory_mask=mem_mask, rope=rope, cache=cache,
            position_offset=offset, readout=self.readout, padding=tgt_padding_mask,
        )
        h = self.decoder(self.tgt_input(tgt, offset), shared)
        if cache is not None:
            cache.advance(t)
        if self.dec_norm is not None:
            h = self.dec_norm(h)
        return self.output(h)

    def readout(self, h: Tensor) -> Tensor:
        """Logits read off a decoder loop state (early exit's predictions)."""
        return self.output(self.dec_norm(h) if self.dec_norm is not None else h)

    def forward(self, src: Tensor, tgt: Tensor, src_padding_mask: Tensor | None = None,
                loops: int | None = None) -> Tensor:
        """Teacher-forced logits; ``loops`` runs both looped stacks that many times."""
        if loops is not None:
            with run_depth(self, loops=loops):
                return self.forward(src, tgt, src_padding_mask)
        memory, mem_pad = self.encode(src, src_padding_mask)
        return self.decode(tgt, memory, mem_pad)
