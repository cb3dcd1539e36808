"""Named presets: the papers' configurations and small CPU-sized versions of each family.

``create_model(name, **overrides)`` builds a fresh model; ``get_config`` gives just the
config. Paper presets reproduce the published parameter counts exactly (see
``tests/test_registry.py``).
"""

from __future__ import annotations

import difflib
from typing import Any

from .config import ModelConfig
from .errors import ConfigError

# --- shared settings per task -----------------------------------------------------------

_MT = dict(
    task="seq2seq", norm_style="post", bias=False, dropout=0.1, attn_dropout=0.0, norm_eps=1e-5,
    ffn_init_std=0.02, output_bias=True, tie_embeddings=False, positional="sinusoidal",
    final_norm=False, max_len=256,
)
_MT_BASE = dict(_MT, d_model=512, n_heads=8, d_ff=2048, n_layers=6, vocab_size=52000)
_MT_SMALL = dict(_MT, d_model=256, n_heads=4, d_ff=1024, n_layers=3, vocab_size=8000)

_VIT = dict(
    task="vit", norm_style="pre", bias=True, dropout=0.1, attn_dropout=0.0, norm_eps=1e-6,
    final_norm_eps=1e-6, final_norm=True, ffn_init_std=None, positional="sinusoidal",
    attn_residual_dropout=False, ffn_xavier_init=True,
)
# RingFormer-ViT: signals from the raw residual, the FFN signal added before the pre-FFN
# LayerNorm, and per-level LayerNorms at PyTorch's default eps (1e-5) while its final norm,
# and every norm of the official ViT and UiT, uses 1e-6.
_RING_VIT = dict(level_norm_eps=1e-5, signal_input="raw", ffn_signal_position="before_norm")
_VIT_IMAGENET = dict(_VIT, image_size=224, patch_size=16, in_channels=3, num_classes=100)
_VIT_FMNIST = dict(_VIT, image_size=28, patch_size=7, in_channels=1, num_classes=10)

_LM = dict(
    task="decoder", norm_style="pre", bias=True, dropout=0.0, attn_dropout=0.0, norm_eps=1e-5,
    final_norm=True, ffn_init_std=None, positional="learned", output_bias=False, max_len=256,
)
_LM_SMALL = dict(_LM, d_model=128, n_heads=4, d_ff=512, n_layers=4, vocab_size=65)
# SpiralFormer comparison on characters: 4 unique layers each, rotary on 25% of head dims
# (as in the Pythia-style backbone), context 256; looped models are 1 + 2 x T + 1.
_LM_CHAR = dict(_LM_SMALL, positional="rotary", rotary_fraction=0.25, max_len=256)
_LM_LOOP = dict(_LM_CHAR, n_prelude=1, n_coda=1, core_layers=2, state_update="anchor")

PRESETS: dict[str, dict[str, Any]] = {
    # translation, paper sizes (RingFormer spec section 3 and 5)
    "vanilla-mt-base": dict(_MT_BASE, arch="vanilla", shared_sublayer_norm=True),
    "looped-mt-base": dict(_MT_BASE, arch="looped"),
    "universal-mt-base": dict(_MT_BASE, arch="universal"),
    "ringformer-mt-base": dict(_MT_BASE, arch="ringformer", signal_rank=32),
    # translation, CPU sizes
    "vanilla-mt-small": dict(_MT_SMALL, arch="vanilla", shared_sublayer_norm=True),
    "looped-mt-small": dict(_MT_SMALL, arch="looped"),
    "universal-mt-small": dict(_MT_SMALL, arch="universal"),
    "ringformer-mt-small": dict(_MT_SMALL, arch="ringformer", signal_rank=16),
    "owf-mt-small": dict(_MT_SMALL, arch="vanilla", one_wide_ffn=True, d_ff=2048),
    # vision, paper sizes (ImageNet-100 head, 224x224, patch 16)
    "vit-s": dict(_VIT_IMAGENET, arch="vanilla", d_model=512, n_heads=8, d_ff=2048, n_layers=6),
    "uit-s": dict(_VIT_IMAGENET, arch="universal", d_model=848, n_heads=8, d_ff=3072, n_layers=6),
    "ringformer-vit-s": dict(_VIT_IMAGENET, **_RING_VIT, arch="ringformer", d_model=728, n_heads=8, d_ff=3072,
                             n_layers=6, signal_rank=45),
    "vit-b": dict(_VIT_IMAGENET, arch="vanilla", d_model=768, n_heads=12, d_ff=3072, n_layers=12),
    "ringformer-vit-b": dict(_VIT_IMAGENET, **_RING_VIT, arch="ringformer", d_model=1284, n_heads=12, d_ff=5120,
                             n_layers=12, signal_rank=80),
    # vision, CPU sizes (Fashion-MNIST: 28x28 grey, patch 7 (16 patches + cls), 10 classes,
    # 6 levels). As in the paper, the looped models are matched in size: RingFormer (d 192,
    # r 12: 571,402) against UiT and the plain looped ViT (width 216: 576,298), and a narrow
    # 6-layer ViT (d 88: 569,986) stands for "ViT with RingFormer's parameter count".
    # vit-tiny has RingFormer's depth and width. Patch 7 rather than 4: on a CPU budget it
    # learns faster per step and costs a third of the compute.
    "vit-tiny": dict(_VIT_FMNIST, arch="vanilla", d_model=192, n_heads=4, d_ff=768, n_layers=6),
    "vit-tiny-matched": dict(_VIT_FMNIST, arch="vanilla", d_model=88, n_heads=4, d_ff=352, n_layers=6),
    "looped-vit-tiny": dict(_VIT_FMNIST, arch="looped", d_model=216, n_heads=4, d_ff=864, n_layers=6),
    "uit-tiny": dict(_VIT_FMNIST, arch="universal", d_model=216, n_heads=4, d_ff=864, n_layers=6),
    "ringformer-vit-tiny": dict(_VIT_FMNIST, **_RING_VIT, arch="ringformer", d_model=192, n_heads=4, d_ff=768,
                                n_layers=6, signal_rank=12),
    # One Wide FFN (optional baseline): six attention layers sharing one FFN twice as wide
    "owf-vit-tiny": dict(_VIT_FMNIST, arch="vanilla", one_wide_ffn=True, d_model=192, n_heads=4, d_ff=1536,
                         n_layers=6),
    # causal language models, CPU sizes (character level)
    "vanilla-lm-small": dict(_LM_SMALL, arch="vanilla"),
    "looped-lm-small": dict(_LM_SMALL, arch="looped"),
    "universal-lm-small": dict(_LM_SMALL, arch="universal", positional="none"),
    "ringformer-lm-small": dict(_LM_SMALL, arch="ringformer", signal_rank=8),
    # the SpiralFormer comparison (equal unique layers: 1 prelude + 2 core + 1 coda = 4)
    "vanilla-lm-char": dict(_LM_CHAR, arch="vanilla"),
    "looped-lm-char": dict(_LM_LOOP, arch="looped", n_layers=8),
    "ringformer-lm-char": dict(_LM_LOOP, arch="ringformer", n_layers=8, signal_rank=8),
    "spiral-lm-char": dict(_LM_LOOP, arch="spiral", n_layers=8, spiral_schedule="4,2,1"),
    "spiral-coarse-lm-char": dict(_LM_LOOP, arch="spiral", n_layers=8, spiral_schedule="8,4,2"),
    # a paper-scale SpiralFormer backbone (Pythia-160M widths, MeSH split 2+4R+2)
    "spiral-lm-160m": dict(_LM, arch="spiral", d_model=768, n_heads=12, d_ff=3072, vocab_size=50304,
                           positional="rotary", rotary_fraction=0.25, max_len=4096, parallel_block=True,
                           scale_embeddings=True, depth_scaled_init=True, n_prelude=2, n_coda=2, core_layers=4,
                           n_layers=16, spiral_schedule="4,2,1", state_update="mesh"),
}


def list_models() -> list[str]:
    return sorted(PRESETS)


def get_config(name: str, **overrides: Any) -> ModelConfig:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; available: {', '.join(list_models())}"
        raise ConfigError(f"unknown preset '{name}'{hint}")
    fields = dict(PRESETS[name])
    # the rank is given one way or the other: an override of either spelling replaces the preset's
    for given, other in (("signal_rank_divisor", "signal_rank"), ("signal_rank", "signal_rank_divisor")):
        if overrides.get(given) is not None and other not in overrides:
            fields.pop(other, None)
    return ModelConfig.from_dict({**fields, **overrides})


def create_model(name: str, **overrides: Any):
    """Build the named preset, with any config field overridden by keyword."""
    from .models import build_model

    return build_model(get_config(name, **overrides))
