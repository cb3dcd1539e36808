"""Refuse to build a model whose weights cannot fit in memory, before allocating any.

Each size in a config is bounded on its own (:data:`loopformer.config.MAX_WIDTH` and
friends), but products of in-range sizes can still ask for terabytes: d_model 65,536
with d_ff 1,048,576 is 137 G parameters per layer. Allocating that fails after minutes
of swapping, or is killed by the OOM killer with no message. So a build first bounds
the bytes from the config alone (cheap, and far above the truth), and only when that
bound exceeds the memory available counts exactly on the meta device (no allocation)
and refuses with a one-line error saying how much is needed and how much there is.
"""

from __future__ import annotations

import os

import torch

from ..config import ModelConfig
from ..errors import ConfigError

GiB = float(1 << 30)
BYTES_PER_VALUE = 4  # fp32, how every model is built


def available_bytes() -> int:
    """Memory the kernel says a new allocation can use without swapping (MemAvailable);
    the physical memory where /proc/meminfo is not available."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def upper_bound_values(cfg: ModelConfig) -> int:
    """At least the number of parameters and buffer values the config builds (each layer
    counted as an unshared vanilla layer with cross-attention, every table at full size)."""
    d = cfg.d_model
    layers = cfg.n_layers + cfg.decoder_layers + cfg.n_prelude + cfg.n_coda
    per_layer = 12 * d * d + 2 * d * cfg.d_ff + 16 * d + cfg.d_ff
    vocab = cfg.vocab_size + cfg.target_vocab_size
    levels = layers * (8 * d + 8 * d * (cfg.rank + 1))  # per-level norms and signals
    tables = cfg.max_len * d * (layers + 4) + cfg.max_len * max(cfg.rotary_dims, 1)
    vision = cfg.in_channels * cfg.patch_size ** 2 * d + (cfg.image_size // cfg.patch_size + 1) ** 2 * d \
        + cfg.num_classes * (d + 1) if cfg.task == "vit" else 0
    return layers * per_layer + 3 * vocab * (d + 1) + levels + tables + vision


def exact_values(model_cls, cfg: ModelConfig) -> int:
    """Parameter and buffer values of the model, counted on the meta device."""
    with torch.device("meta"):
        model = model_cls(cfg)
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel()
    return total


def check_fits(model_cls, cfg: ModelConfig) -> None:
    """ConfigError when the weights of ``cfg`` would not fit in available memory."""
    if torch.get_default_device().type == "meta":  # counting only (``loopformer params``)
        return
    have = available_bytes()
    if upper_bound_values(cfg) * BYTES_PER_VALUE <= have:
        return
    values = exact_values(model_cls, cfg)
    need = values * BYTES_PER_VALUE
    if need > have:
        raise ConfigError(
            f"this {cfg.task} model has {values:,} weights and tables ({need / GiB:,.1f} GiB in fp32); "
            f"the machine has {have / GiB:,.1f} GiB available. Reduce d_model, d_ff, n_layers, vocab_size "
            f"or max_len"
        )
