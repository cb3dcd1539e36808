"""Turn a :class:`ModelConfig` into looped stacks: the one place that knows how each
architecture maps onto the engine, i.e. which level adapter and which loop schedule a
stack gets (vanilla, looped, Universal, RingFormer; full resolution or spiral).

Modules are created in the order the library always created them, so that a seed builds
the same parameters as before (a full-resolution stack: core, adapter, prelude, coda,
state update; a spiral one: prelude, core, coda, schedule, adapter, state update).
"""

from __future__ import annotations

from ..config import ModelConfig
from ..layers.block import LayerSpec, TransformerLayer
from ..layers.positions import RotaryPositions
from ..layers.signals import LevelSignals
from .chunks import SpiralLevel
from .levels import LevelAdapter, PerLevelNorms, UniversalTiming
from .ringformer import RingFormerLevels
from .spiral import SpiralSchedule
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
    if cfg.is_spiral:
        return spiral_stack(cfg)
    n_pre, n_post = (cfg.n_prelude, cfg.n_coda) if not cross else (0, 0)
    n_loops = (depth - n_pre - n_post) // cfg.core_layers
    spec = layer_spec(cfg, cross, own_norms=not cfg.has_level_norms)
    plain = layer_spec(cfg, cross, own_norms=True)
    core = [TransformerLayer(spec) for _ in range(cfg.core_layers)]
    adapter = level_adapter(cfg, n_loops, spec.n_sublayers, cross)
    return LoopedStack(
        core=core, n_loops=n_loops, adapter=adapter,
        prelude=[TransformerLayer(plain) for _ in range(n_pre)],
        coda=[TransformerLayer(plain) for _ in range(n_post)],
        state=build_state_update(cfg.state_update, n_loops, cfg.d_model, mesh_slots(cfg)),
        activation_checkpointing=cfg.activation_checkpointing,
    )


def spiral_stack(cfg: ModelConfig) -> LoopedStack:
    """A causal LM's stack on SpiralFormer's schedule (``spiral_schedule``), any adapter."""
    plain = layer_spec(cfg, cross=False, own_norms=True)
    spec = layer_spec(cfg, cross=False, own_norms=not cfg.has_level_norms)
    prelude = [TransformerLayer(plain) for _ in range(cfg.n_prelude)]
    core = [TransformerLayer(spec) for _ in range(cfg.core_layers)]
    coda = [TransformerLayer(plain) for _ in range(cfg.n_coda)]
    levels = [SpiralLevel(cfg, g, w) for g, w in zip(cfg.schedule, cfg.offsets)]
    rotary = RotaryPositions(cfg.max_len, cfg.rotary_dims) if cfg.positional == "rotary" else None
    schedule = SpiralSchedule(levels, rotary, cfg.latent_positions)
    n_loops = len(levels)
    return LoopedStack(
        core=core, n_loops=n_loops, prelude=prelude, coda=coda, schedule=schedule,
        adapter=level_adapter(cfg, n_loops, spec.n_sublayers),
        state=build_state_update(cfg.state_update, n_loops, cfg.d_model, mesh_slots(cfg)),
        activation_checkpointing=cfg.activation_checkpointing,
    )


def level_adapter(cfg: ModelConfig, n_loops: int, n_sublayers: int, cross: bool = False) -> LevelAdapter:
    """What tells the ``n_loops`` iterations of a core apart, for any loop schedule:
    RingFormer's norms and signals, per-level norms, the Universal timing signal, or nothing."""
    k = cfg.core_layers
    if cfg.arch == "ringformer":
        signals, cross_q, cross_kv = ring_signals(cfg, n_loops * k, cross)
        return RingFormerLevels(n_loops, k, cfg.d_model, n_sublayers, cfg.level_eps, signals, cross_q, cross_kv,
                                shared_norms=cfg.shared_level_norms, signal_input=cfg.signal_input,
                                ffn_signal_position=cfg.ffn_signal_position)
    if cfg.has_level_norms:
        return PerLevelNorms(n_loops, k, cfg.d_model, n_sublayers, cfg.level_eps)
    if cfg.arch == "universal":
        return UniversalTiming(cfg.max_len, n_loops, cfg.d_model)
    return LevelAdapter()


def ring_signals(cfg: ModelConfig, n_levels: int, cross: bool):
    """RingFormer's signal modules: (self-attention and FFN, cross-attention Q, K/V)."""
    signals = cross_q = cross_kv = None
    if cfg.has_signals:
        signals = LevelSignals(
            n_levels, cfg.d_model, cfg.rank, qkv_kinds=cfg.qkv_signal_kinds, ffn=cfg.signal_ffn,
            mode=cfg.signal_mode, init_std=cfg.signal_init_std, placement=cfg.signal_placement,
        )
    if cross and cfg.cross_attention_signals:
        common = dict(ffn=False, mode=cfg.signal_mode, init_std=cfg.signal_init_std)
        cross_q = LevelSignals(n_levels, cfg.d_model, cfg.rank, qkv_kinds=("q",), layout="q", **common)
        cross_kv = LevelSignals(n_levels, cfg.d_model, cfg.rank, qkv_kinds=("k", "v"), layout="kv", **common)
    return signals, cross_q, cross_kv


def mesh_slots(cfg: ModelConfig) -> int:
    """MeSH buffer size: ``core_layers + 3`` unless set."""
    return cfg.mesh_slots if cfg.mesh_slots is not None else cfg.core_layers + 3
