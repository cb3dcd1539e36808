"""Pieces every task model shares: config handling, text embeddings and positions."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..config import ModelConfig
from ..layers.dropout import Dropout
from ..layers.positions import LearnedPositions, RotaryPositions, SinusoidalPositions


class LoopformerModel(nn.Module):
    """Base of all task models: remembers its config (saved with checkpoints) and says
    which parameters are embeddings / output head for parameter accounting."""

    #: parameter-name prefixes counted as input embeddings
    embedding_prefixes: tuple[str, ...] = ()
    #: parameter-name prefixes counted as the output layer / classifier head
    head_prefixes: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config


class TextInput(nn.Module):
    """Token embedding plus additive positions (none for rotary and Universal models,
    which inject positions elsewhere)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.scale = math.sqrt(cfg.d_model) if cfg.scale_embeddings else 1.0
        self.dropout = Dropout(cfg.dropout)
        if cfg.timing_positions or cfg.positional in ("rotary", "none"):
            self.positions = None
        elif cfg.positional == "learned":
            self.positions = LearnedPositions(cfg.max_len, cfg.d_model)
        else:
            self.positions = SinusoidalPositions(cfg.max_len, cfg.d_model)

    def forward(self, tokens: Tensor, offset: int = 0) -> Tensor:
        h = self.embed(tokens)
        if self.scale != 1.0:
            h = h * self.scale
        if self.positions is not None:
            h = h + self.positions(tokens.shape[1], offset).to(h.dtype)
        return self.dropout(h)


def make_rotary(cfg: ModelConfig) -> RotaryPositions | None:
    if cfg.positional != "rotary" or cfg.timing_positions:
        return None
    return RotaryPositions(cfg.max_len, cfg.rotary_dims)
