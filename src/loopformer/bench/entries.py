"""What ``loopformer bench`` times: library presets (or trained checkpoint folders), each
at a precision and optionally compiled, and a ``torch.nn.Transformer`` reference of the
same size."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..compile import compile_layers
from ..config import ModelConfig, rule_fields, split_applicable
from ..errors import ConfigError
from ..layers.positions import sinusoid_table
from ..registry import get_config

PRECISIONS = ("fp32", "bf16")
REFERENCES = ("torch-transformer",)


@dataclass
class Shape:
    """Task shape: batch, sequence lengths or image size, decoding lengths."""

    batch: int = 32
    src_len: int = 32  # encoder-decoder: source tokens
    tgt_len: int = 32  # encoder-decoder: target tokens (training) and new tokens (decoding)
    context: int = 256  # causal LM: training/prefill length
    prompt: int = 16  # causal LM: prompt before generation
    new_tokens: int = 32  # causal LM: generated tokens
    beam: int = 4
    positions: tuple[int, ...] = (64, 512)  # causal LM: positions of the per-token decode timing


@dataclass
class Entry:
    """One benchmarked model: ``PRESET[:fp32|bf16][+compile][+nopack]`` or a reference name.

    ``+nopack`` times inference without the pre-packed linear weights that decoding
    uses by default (:mod:`loopformer.packing`), to show what packing buys."""

    name: str
    task: str  # seq2seq | decoder | vit
    model: nn.Module
    precision: str = "fp32"
    compiled: bool = False
    config: ModelConfig | None = None  # None for references
    packed: bool = True
    # test-time depth (loops, rule, exit) the entry runs with: models.depth.run_depth's arguments
    depth: dict | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None


FLAGS = ("compile", "nopack")


def split_name(text: str, default_precision: str) -> tuple[str, str, set[str]]:
    """``"ringformer-mt-base:bf16+compile"`` -> (preset, precision, {"compile"})."""
    base, *flags = text.split("+")
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise ConfigError(f"unknown option '+{unknown[0]}' in '{text}'; choose from "
                          + ", ".join("+" + f for f in FLAGS))
    preset, _, precision = base.partition(":")
    precision = precision or default_precision
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}' in '{text}'; choose from {', '.join(PRECISIONS)}")
    return preset, precision, set(flags)


def parse_entry(
    text: str, overrides: dict, device: torch.device, default_precision: str = "fp32", like: ModelConfig | None = None
) -> Entry:
    """Build the model an entry names, on ``device``, in training mode, seeded."""
    from ..models import build_model

    preset, precision, flags = split_name(text, default_precision)
    compiled, packed = "compile" in flags, "nopack" not in flags
    torch.manual_seed(0)
    if Path(preset).is_dir():  # a trained checkpoint, timed as it is
        from ..checkpoint import load_model

        model = load_model(preset).to(device)
        if compiled:
            compile_layers(model)
        return Entry(text, model.config.task, model, precision, compiled, model.config, packed)
    if preset in REFERENCES:
        if like is None or like.task != "seq2seq":
            raise ConfigError(f"'{preset}' is sized after an encoder-decoder preset: list one before it")
        model = TorchTransformerSeq2Seq(like).to(device)
        if compiled:
            model = torch.compile(model)
        return Entry(text, "seq2seq", model, precision, compiled, None, packed)
    # overrides on the command line are shared by every entry: each entry takes those that
    # apply to it (RingFormer's signal settings are not a vanilla model's) and says so
    base = get_config(preset, **{k: v for k, v in overrides.items() if k not in rule_fields()})
    kept, dropped = split_applicable(base, overrides)
    if dropped:
        print(f"{text}: {', '.join(dropped)} not set (does not apply to this model)", file=sys.stderr)
    config = get_config(preset, **kept)
    model = build_model(config).to(device)
    if compiled:
        compile_layers(model)
    return Entry(text, config.task, model, precision, compiled, config, packed)


class TorchTransformerSeq2Seq(nn.Module):
    """``torch.nn.Transformer`` with embeddings, sinusoidal positions and an output layer,
    sized like a library encoder-decoder config: what a user would write by hand."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.src_embed = nn.Embedding(cfg.vocab_size, d)
        self.tgt_embed = nn.Embedding(cfg.target_vocab_size, d)
        self.register_buffer("positions", sinusoid_table(cfg.max_len, d), persistent=False)
        layer = dict(d_model=d, nhead=cfg.n_heads, dim_feedforward=cfg.d_ff, dropout=cfg.dropout, activation="gelu",
                     batch_first=True, norm_first=cfg.norm_style == "pre", bias=cfg.bias)
        encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), cfg.n_layers, enable_nested_tensor=False)
        decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), cfg.decoder_layers)
        self.transformer = nn.Transformer(d_model=d, nhead=cfg.n_heads, custom_encoder=encoder,
                                          custom_decoder=decoder, batch_first=True)
        self.output = nn.Linear(d, cfg.target_vocab_size)
        self.scale = d**0.5

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        s = self.src_embed(src) * self.scale + self.positions[: src.shape[1]]
        t = self.tgt_embed(tgt) * self.scale + self.positions[: tgt.shape[1]]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=tgt.device)
        h = self.transformer(s, t, tgt_mask=causal, tgt_is_causal=True)
        return self.output(h)
