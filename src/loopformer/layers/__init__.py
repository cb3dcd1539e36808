"""Building blocks shared by every model: attention, FFN, positions, signals, cache, and
the hooks through which a shared layer asks its level what differs."""

from .attention import CrossAttention, SelfAttention
from .block import LayerSpec, SharedInputs, TransformerLayer
from .cache import KVCache
from .ffn import FeedForward
from .hooks import NO_HOOKS, LayerHooks
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
    "AttnMask", "CrossAttention", "FeedForward", "KVCache", "LayerHooks", "LayerSpec", "LearnedPositions",
    "LevelSignals", "NO_HOOKS", "RotaryPositions", "SelfAttention", "SharedInputs",
    "SinusoidalPositions", "TransformerLayer", "apply_rotary", "build_mask", "sinusoid_table",
    "universal_timing_table",
]
