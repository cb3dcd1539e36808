"""Turn a :class:`ModelConfig` into looped stacks: the one place that knows how each
architecture (vanilla, looped, Universal, RingFormer) maps onto the engine."""

from __future__ import annotations

from ..config import ModelConfig
from ..layers.block import LayerSpec, TransformerLayer
from ..layers.signals import LevelSignals
from .levels import LevelAdapter, PerLevelNorms, UniversalTiming
from .stack import LoopedStack
from .state import build_state_update


def layer_spec(cfg: ModelConfig, cross: bool, own_norms: bool) -> LayerSpec:
    return LayerSpec(
        has_ffn=not (cfg.one_wide_ffn and cross),
        parallel=cfg.parallel_block,
        dim=cfg.d_model,
        n_heads=cfg.n_heads,
        d_ff=cfg.d_ff,
        cross=cross,
        norm_style=cfg.norm_style,
        bias=cfg.bias,
        dropout=cfg.dropout,
        attn_residual_dropout=cfg.attn_residual_dropout,
        attn_dropout=cfg.attn_dropout,
        norm_eps=cfg.norm_eps,
        ffn_init_std=cfg.ffn_init_std,
        ffn_xavier_init=cfg.ffn_xavier_init,
        own_norms=own_norms,
        shared_sublayer_norm=cfg.shared_sublayer_norm,
        signal_input=cfg.signal_input,
        ffn_signal_position=cfg.ffn_signal_position,
    )


def build_stack(cfg: ModelConfig, depth: int, cross: bool = False) -> LoopedStack:
    """A stack of unrolled depth ``depth`` for the configured architecture."""
    if cfg.arch == "vanilla":
        spec = layer_spec(cfg, cross, own_norms=True)
        layers = [TransformerLayer(spec) for _ in range(depth)]
        if cfg.one_wide_ffn and spec.has_ffn:
            for layer in layers[1:]:
                layer.ffn = layers[0].ffn  # One Wide FFN: every layer calls the same module
        return LoopedStack(core=[], n_loops=0, prelude=layers)

    k = cfg.core_layers
    n_pre, n_post = (cfg.n_prelude, cfg.n_coda) if not cross else (0, 0)
    n_loops = (depth - n_pre - n_post) // k
    spec = layer_spec(cfg, cross, own_norms=not cfg.has_level_norms)
    plain = layer_spec(cfg, cross, own_norms=True)
    core = [TransformerLayer(spec) for _ in range(k)]
    levels = level_adapter(cfg, n_loops, spec.n_sublayers, cross)
    return LoopedStack(
        core=core, n_loops=n_loops, levels=levels,
        prelude=[TransformerLayer(plain) for _ in range(n_pre)],
        coda=[TransformerLayer(plain) for _ in range(n_post)],
        state=build_state_update(cfg.state_update, n_loops, cfg.d_model, mesh_slots(cfg)),
        activation_checkpointing=cfg.activation_checkpointing,
    )


def level_adapter(cfg: ModelConfig, n_loops: int, n_sublayers: int, cross: bool = False) -> LevelAdapter | None:
    """What tells the ``n_loops`` iterations of a core apart, for any loop schedule: per-level
    norms (and RingFormer's signals), the Universal timing signal, or nothing."""
    levels_total = n_loops * cfg.core_layers
    if cfg.has_level_norms:
        signals = cross_q = cross_kv = None
        if cfg.has_signals:
            signals = LevelSignals(
                levels_total, cfg.d_model, cfg.rank, qkv_kinds=cfg.qkv_signal_kinds, ffn=cfg.signal_ffn,
                mode=cfg.signal_mode, init_std=cfg.signal_init_std, placement=cfg.signal_placement,
            )
        ring = cfg.arch == "ringformer"
        if cross and ring and cfg.cross_attention_signals:
            common = dict(ffn=False, mode=cfg.signal_mode, init_std=cfg.signal_init_std)
            cross_q = LevelSignals(levels_total, cfg.d_model, cfg.rank, qkv_kinds=("q",), layout="q", **common)
            cross_kv = LevelSignals(levels_total, cfg.d_model, cfg.rank, qkv_kinds=("k", "v"), layout="kv", **common)
        return PerLevelNorms(levels_total, cfg.d_model, n_sublayers, cfg.level_eps, signals, cross_q, cross_kv,
                             shared_norms=ring and cfg.shared_level_norms)
    if cfg.arch == "universal":
        return UniversalTiming(cfg.max_len, n_loops, cfg.d_model)
    return None


def mesh_slots(cfg: ModelConfig) -> int:
    """MeSH buffer size: ``core_layers + 3`` unless set."""
    return cfg.mesh_slots if cfg.mesh_slots is not None else cfg.core_layers + 3
