"""RingFormer's ablation switches: each changes only what it names.

Parameter differences are checked against hand counts for `ringformer-mt-small`
(d 256, 3 encoder + 3 decoder levels, rank 16; the encoder layer has 2 sublayer norms,
the decoder layer 3) and `ringformer-vit-tiny` (d 192, 6 levels, rank 12).
"""

import pytest
import torch

from loopformer import create_model, get_config
from loopformer.analysis.params import count_parameters
from loopformer.errors import ConfigError
from loopformer.layers.signals import LevelSignals

D, L, R = 256, 3, 16  # ringformer-mt-small
ENC_NORMS, DEC_NORMS = 2, 3


def n_params(preset: str, **kw) -> int:
    return count_parameters(create_model(preset, **kw)).total


@pytest.fixture(scope="module")
def base():
    return n_params("ringformer-mt-small")


@pytest.mark.parametrize("switch,delta", [
    # static: a learned vector per level and kind (3 attention + 1 FFN) instead of 2 r d
    (dict(signal_mode="static"), 2 * L * 4 * (D - 2 * R * D)),
    (dict(signal_q=False, signal_k=False, signal_v=False), -2 * L * 3 * 2 * R * D),  # attention signals off
    (dict(signal_ffn=False), -2 * L * 2 * R * D),  # FFN signal off
    (dict(signal_placement="before"), 0),  # same matrices, other place
    # one set of norms (weight + bias, 2 d each) instead of one per level
    (dict(shared_level_norms=True), -(L - 1) * (ENC_NORMS + DEC_NORMS) * 2 * D),
    (dict(signal_rank_divisor=32), -2 * L * 4 * 2 * (R // 2) * D),  # rank 8 instead of 16
    (dict(signal_rank_divisor=16), 0),  # the default, spelled as a fraction
])
def test_parameter_counts_match_the_hand_count(base, switch, delta):
    assert n_params("ringformer-mt-small", **switch) - base == delta


def test_vision_counts_match_the_hand_count():
    d, levels, r = 192, 6, 12
    base = n_params("ringformer-vit-tiny")
    assert n_params("ringformer-vit-tiny", signal_ffn=False) - base == -levels * 2 * r * d
    assert n_params("ringformer-vit-tiny", shared_level_norms=True) - base == -(levels - 1) * 2 * 2 * d
    assert n_params("ringformer-vit-tiny", signal_rank_divisor=4) - base == levels * 4 * 2 * (d // 4 - r) * d


TINY = dict(d_model=32, n_heads=2, d_ff=64, n_layers=3, vocab_size=30, dropout=0.0)


def _outputs(**kw):
    torch.manual_seed(0)
    model = create_model("ringformer-mt-small", **TINY, **kw).eval()
    g = torch.Generator().manual_seed(1)
    src, tgt = torch.randint(4, 30, (2, 6), generator=g), torch.randint(4, 30, (2, 5), generator=g)
    return model, model(src, tgt)


@pytest.mark.parametrize("switch", [dict(shared_level_norms=True), dict(signal_rank_divisor=2),
                                    dict(signal_placement="before")])
def test_switches_equal_the_default_model_where_they_should(switch):
    """At initialisation all per-level norms are identical and signals are zero, so sharing
    the norms, spelling the preset's rank 16 as d // 2 (d = 32), or moving zero signals before the projections
    computes exactly the default model (the switches add nothing else)."""
    _, ref = _outputs()
    _, out = _outputs(**switch)
    assert torch.equal(out, ref)


def test_placement_before_is_the_projection_of_the_shifted_input():
    torch.manual_seed(0)
    d = 8
    proj_layer = torch.nn.Linear(d, 3 * d)
    sig = LevelSignals(2, d, 2, placement="before")
    with torch.no_grad():
        sig.qkv_up.normal_()
        sig.qkv_down.normal_()
    x = torch.randn(4, d)
    q, k, v = sig.split_qkv(proj_layer(x), 1, x, weight=proj_layer.weight)
    s = sig.qkv(1, x)  # (4, 3, d)
    w_q, w_k, w_v = proj_layer.weight.view(3, d, d)
    b_q, b_k, b_v = proj_layer.bias.view(3, d)
    torch.testing.assert_close(q, (x + s[:, 0]) @ w_q.T + b_q)
    torch.testing.assert_close(k, (x + s[:, 1]) @ w_k.T + b_k)
    torch.testing.assert_close(v, (x + s[:, 2]) @ w_v.T + b_v)
    # and it differs from adding the same signals after the projection
    q_after, _, _ = sig.split_qkv(proj_layer(x), 1, x)
    assert not torch.allclose(q, q_after)


def test_placement_before_changes_a_trained_looking_model():
    model, _ = _outputs(signal_placement="before")
    for m in model.modules():
        if isinstance(m, LevelSignals):
            torch.nn.init.normal_(m.qkv_up, std=0.2)
    after = create_model("ringformer-mt-small", **TINY).eval()
    after.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(1)
    src, tgt = torch.randint(4, 30, (2, 6), generator=g), torch.randint(4, 30, (2, 5), generator=g)
    assert not torch.allclose(model(src, tgt), after(src, tgt))


def test_bad_combinations_are_one_line_errors():
    with pytest.raises(ConfigError, match="not both"):
        get_config("ringformer-mt-small", signal_rank=8, signal_rank_divisor=16)
    with pytest.raises(ConfigError, match="signal_placement must be one of after, before|'signal_placement'"):
        get_config("ringformer-mt-small", signal_placement="middle")
    with pytest.raises(ConfigError, match="cross_attention_signals"):
        get_config("ringformer-mt-small", signal_placement="before", cross_attention_signals=True)
    with pytest.raises(ConfigError, match=r"signal_rank_divisor.*\[1, "):
        get_config("ringformer-mt-small", signal_rank_divisor=0)
