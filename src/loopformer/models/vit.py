"""Vision Transformer classifier (pre-norm, cls token, fixed sinusoidal positions)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..layers.block import SharedInputs
from ..layers.dropout import Dropout
from ..layers.masks import AttnMask
from ..layers.positions import LearnedPositions, SinusoidalPositions
from .base import LoopformerModel
from .build import build_stack
from .depth import run_depth


class ViTClassifier(LoopformerModel):
    embedding_prefixes = ("patch_embed.", "cls_token", "positions.")
    head_prefixes = ("head.",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        cfg = config
        self.n_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.n_tokens = self.n_patches + 1
        self.patch_embed = nn.Conv2d(cfg.in_channels, cfg.d_model, cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        if cfg.timing_positions or cfg.positional == "none":
            self.positions = None
        elif cfg.positional == "learned":
            self.positions = LearnedPositions(self.n_tokens, cfg.d_model)
        else:
            self.positions = SinusoidalPositions(self.n_tokens, cfg.d_model)
        self.dropout = Dropout(cfg.dropout)
        self.encoder = build_stack(cfg.replace(max_len=self.n_tokens), cfg.n_layers)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.final_norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.num_classes)

    def features(self, images: Tensor) -> Tensor:
        """Token states after the encoder and the final LayerNorm: (B, 1 + patches, d)."""
        cfg = self.config
        if images.dim() != 4 or images.shape[1:] != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ValueError(
                f"expected images of shape (B, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), "
                f"got {tuple(images.shape)}"
            )
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        if self.positions is not None:
            x = x + self.positions(self.n_tokens).to(x.dtype)
        shared = SharedInputs(self_mask=AttnMask(), readout=self.readout, exit_scope="sequence")
        return self.final_norm(self.encoder(self.dropout(x), shared))

    def readout(self, h: Tensor) -> Tensor:
        """Class logits read off a loop state (early exit's predictions, per image)."""
        return self.head(self.final_norm(h[:, 0]))

    def forward(self, images: Tensor, loops: int | None = None) -> Tensor:
        """Class logits; ``loops`` runs the looped encoder that many times."""
        if loops is not None:
            with run_depth(self, loops=loops):
                return self.forward(images)
        return self.head(self.features(images)[:, 0])
