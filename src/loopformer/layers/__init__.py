"""Building blocks shared by every model: attention, FFN, positions, signals, cache."""

from .attention import CrossAttention, SelfAttention
from .block import LayerSpec, LevelParams, SharedInputs, TransformerLayer
from .cache import KVCache
from .ffn import FeedForward
from .masks import AttnMask, build_mask
from .positions import (
    LearnedPositions,
    RotaryPositions,
    SinusoidalPositions,
    apply_rotary,
    sinusoid_table,
    universal_timing_table,
)
from .signals import LevelSignals

__all__ = [
    "AttnMask", "CrossAttention", "FeedForward", "KVCache", "LayerSpec", "LearnedPositions",
    "LevelParams", "LevelSignals", "RotaryPositions", "SelfAttention", "SharedInputs",
    "SinusoidalPositions", "TransformerLayer", "apply_rotary", "build_mask", "sinusoid_table",
    "universal_timing_table",
]
