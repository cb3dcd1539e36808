"""Analytic forward FLOPs (SpiralFormer spec, section 8), counted per model configuration.

A layer of width ``d`` and MLP width ``f`` on ``n`` positions costs
``F(n) = 8 n d^2 + 4 n d f + 4 n^2 d`` forward FLOPs (Q/K/V/O projections, the MLP, and
the two attention matmuls); with ``f = 4d`` this is the paper's ``24 n d^2 + 4 n^2 d``.
A model costs ``(N_pre + N_post) F(L) + N_loop * sum_t F(L_t)`` where ``L_t`` is the
number of positions iteration ``t`` runs on (``ceil((L + w_t) / g_t)`` chunk latents for
SpiralFormer, ``L`` otherwise). Level signals, the LM head and MeSH routers are listed
separately; pooling, norms and softmax are ignored, as in the paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import ModelConfig


@dataclass
class FlopCount:
    context: int
    layers: float  # transformer layers, whole sequence
    signals: float  # RingFormer level signals
    state: float  # MeSH routers
    head: float  # output projection
    per_token: float  # everything / context

    def to_dict(self) -> dict:
        return asdict(self)


def layer_flops(n: int, d: int, f: int) -> float:
    return 8.0 * n * d * d + 4.0 * n * d * f + 4.0 * n * n * d


def lm_flops(cfg: ModelConfig, context: int | None = None) -> FlopCount:
    """Forward FLOPs of a decoder-only LM on one sequence of ``context`` tokens."""
    if cfg.task != "decoder":
        raise ValueError(f"FLOP accounting covers causal LMs (task=decoder), not {cfg.task!r}")
    L = context or cfg.max_len
    d, f = cfg.d_model, cfg.d_ff
    if not cfg.is_looped:
        layers = cfg.n_layers * layer_flops(L, d, f)
    else:
        lengths = [L] * cfg.n_loops
        if cfg.is_spiral:
            lengths = [-(-(L + w) // g) for g, w in zip(cfg.schedule, cfg.offsets)]
        layers = (cfg.n_prelude + cfg.n_coda) * layer_flops(L, d, f)
        layers += cfg.core_layers * sum(layer_flops(n, d, f) for n in lengths)
    signals = 0.0
    if cfg.has_signals:
        kinds = len(cfg.qkv_signal_kinds) + int(cfg.signal_ffn)
        positions = cfg.core_layers * sum(lengths)  # every core application, at its iteration's length
        signals = positions * kinds * (4.0 * d * cfg.rank if cfg.signal_mode == "dynamic" else d)
    state = 0.0
    if cfg.state_update == "mesh":
        from ..models.build import mesh_slots

        slots = mesh_slots(cfg)
        state = cfg.n_loops * L * (4.0 * d * slots + 4.0 * slots * d)  # two routers, write and read
    head = 2.0 * L * d * cfg.vocab_size
    total = layers + signals + state + head
    return FlopCount(context=L, layers=layers, signals=signals, state=state, head=head, per_token=total / L)
