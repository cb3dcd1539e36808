"""The ViT presets follow the official RingFormer vision code in the three places they once
departed from it: no dropout on the attention output before its residual addition,
per-level LayerNorms of RingFormer-ViT built with eps 1e-5, and the MLP initialised with
Xavier-uniform weights and N(0, 1e-6) biases. The old behaviour stays reachable by
setting the switches."""

import pytest
import torch
from torch import nn

from loopformer import create_model, get_config
from loopformer.analysis.params import count_parameters
from loopformer.config import ModelConfig
from loopformer.errors import ConfigError
from loopformer.layers.block import SharedInputs

VIT_PRESETS = ["vit-tiny", "vit-tiny-matched", "looped-vit-tiny", "uit-tiny", "ringformer-vit-tiny",
               "vit-s", "uit-s", "ringformer-vit-s", "vit-b", "ringformer-vit-b", "owf-vit-tiny"]
OLD = dict(attn_residual_dropout=True, level_norm_eps=1e-6, ffn_xavier_init=False)

# total trainable parameters of the Fashion-MNIST presets as published on the vision page
TINY_TOTALS = {"ringformer-vit-tiny": 571_402, "vit-tiny": 2_681_290, "uit-tiny": 576_298,
               "looped-vit-tiny": 576_298, "vit-tiny-matched": 569_986}


@pytest.mark.parametrize("preset", VIT_PRESETS)
def test_vit_presets_add_the_attention_output_undropped(preset):
    assert get_config(preset).attn_residual_dropout is False


def test_translation_and_lm_presets_keep_their_attention_dropout():
    assert get_config("ringformer-mt-small").attn_residual_dropout is True
    assert get_config("vanilla-lm-char").attn_residual_dropout is True


def _zero_ffn_branch(model) -> None:
    layer = model.encoder.core[0]
    nn.init.zeros_(layer.ffn.down.weight)
    nn.init.zeros_(layer.ffn.down.bias)


def _apply_level(model, h: torch.Tensor, level: int) -> torch.Tensor:
    stack = model.encoder
    hooks = stack.adapter.hooks(level, 0)
    return stack.core[0](h, hooks, SharedInputs(), ("enc", level))


def _attention_branch(model, h: torch.Tensor, level: int) -> torch.Tensor:
    """The attention branch of one level, computed in eval mode (nothing dropped)."""
    model.eval()
    with torch.no_grad():
        out = _apply_level(model, h, level) - h
    model.train()
    return out


@pytest.mark.parametrize("level", [0, 3])
def test_ringformer_vit_block_in_training_leaves_the_attention_branch_undropped(level):
    torch.manual_seed(0)
    model = create_model("ringformer-vit-tiny")
    _zero_ffn_branch(model)
    h = torch.randn(4, 17, 192)
    branch = _attention_branch(model, h, level)
    assert branch.abs().max() > 1e-3  # the branch is not trivially zero
    model.train()
    with torch.no_grad():
        out = _apply_level(model, h, level)
    assert torch.equal(out - h, branch)


def test_the_old_setting_drops_the_attention_branch_in_training():
    torch.manual_seed(0)
    model = create_model("ringformer-vit-tiny", **OLD)
    _zero_ffn_branch(model)
    h = torch.randn(4, 17, 192)
    branch = _attention_branch(model, h, 0)
    with torch.no_grad():
        out = _apply_level(model, h, 0)
    dropped = (out - h) == 0
    assert dropped.float().mean() > 0.05  # about 10% of the entries are zeroed
    assert not torch.allclose(out - h, branch)


@pytest.mark.parametrize("preset", ["ringformer-vit-tiny", "ringformer-vit-s", "ringformer-vit-b"])
def test_ringformer_vit_per_level_norms_use_eps_1e5(preset):
    cfg = get_config(preset)
    assert cfg.level_norm_eps == 1e-5 and cfg.norm_eps == 1e-6 and cfg.final_norm_eps == 1e-6
    if preset == "ringformer-vit-tiny":  # building the paper sizes is slow; the config says it
        model = create_model(preset)
        level_norms = [m for m in model.encoder.levels.modules() if isinstance(m, nn.LayerNorm)]
        assert len(level_norms) == 6 * 2 and all(m.eps == 1e-5 for m in level_norms)
        assert model.final_norm.eps == 1e-6


@pytest.mark.parametrize("preset", ["vit-tiny", "uit-tiny", "looped-vit-tiny"])
def test_baseline_vit_norms_keep_eps_1e6(preset):
    model = create_model(preset)
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    assert eps == {1e-6}


def test_old_level_eps_is_reachable():
    model = create_model("ringformer-vit-tiny", **OLD)
    assert {m.eps for m in model.encoder.levels.modules() if isinstance(m, nn.LayerNorm)} == {1e-6}


@pytest.mark.parametrize("preset,total", sorted(TINY_TOTALS.items()))
def test_preset_parameter_counts_are_unchanged(preset, total):
    assert count_parameters(create_model(preset)).total == total
    old = OLD if "ringformer" in preset else dict(OLD, level_norm_eps=None)
    assert count_parameters(create_model(preset, **old)).total == total


@pytest.mark.parametrize("preset", ["vit-tiny", "looped-vit-tiny", "uit-tiny", "vanilla-mt-small"])
def test_level_norm_eps_is_refused_where_there_are_no_per_level_norms(preset):
    with pytest.raises(ConfigError, match="level_norm_eps applies to per-level LayerNorms"):
        get_config(preset, level_norm_eps=1e-5)


def test_level_norm_eps_must_be_positive():
    with pytest.raises(ConfigError, match=r"level_norm_eps.*must be in \(0"):
        get_config("ringformer-vit-tiny", level_norm_eps=0.0)


def test_a_config_saved_before_the_switches_existed_keeps_its_behaviour():
    """Checkpoints written before these fields existed have no such keys in config.json:
    they rebuild the model they were trained as (dropout on, per-level eps = norm_eps)."""
    saved = get_config("ringformer-vit-tiny").to_dict()
    del saved["attn_residual_dropout"], saved["level_norm_eps"]
    cfg = ModelConfig.from_dict(saved)
    assert cfg.attn_residual_dropout is True and cfg.level_eps == 1e-6


@pytest.mark.parametrize("preset", VIT_PRESETS)
def test_vit_presets_initialise_the_mlp_as_the_official_code(preset):
    assert get_config(preset).ffn_xavier_init is True


def test_xavier_mlp_init_has_the_xavier_spread_and_near_zero_biases():
    torch.manual_seed(0)
    ffn = create_model("vit-tiny").encoder.prelude[0].ffn
    for lin in (ffn.up, ffn.down):
        fan_out, fan_in = lin.weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert lin.weight.abs().max() <= bound
        assert lin.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)
        assert lin.bias.abs().max() < 1e-5
    old = create_model("vit-tiny", ffn_xavier_init=False).encoder.prelude[0].ffn
    assert old.down.weight.std().item() < 0.6 * ffn.down.weight.std().item()  # PyTorch's default is narrower


def test_xavier_init_and_a_normal_init_std_are_refused_together():
    with pytest.raises(ConfigError, match="ffn_xavier_init and ffn_init_std"):
        get_config("vit-tiny", ffn_init_std=0.02)


def test_masking_target_padding_changes_no_logit_at_a_real_position():
    """docs/fidelity.md: the official decoder masks padded target keys, loopformer's training
    forward does not; with padding at the end, causal attention makes the two agree."""
    torch.manual_seed(0)
    model = create_model("ringformer-mt-small", vocab_size=50, d_model=32, n_heads=2, d_ff=64,
                         signal_rank=2).eval()
    src = torch.randint(3, 50, (3, 7))
    tgt = torch.randint(3, 50, (3, 9))
    lengths = torch.tensor([9, 5, 2])
    pad = torch.arange(9)[None, :] >= lengths[:, None]
    tgt = tgt.masked_fill(pad, model.config.pad_id)
    with torch.no_grad():
        memory, mem_pad = model.encode(src)
        plain = model.decode(tgt, memory, mem_pad)
        masked = model.decode(tgt, memory, mem_pad, tgt_padding_mask=pad)
    assert torch.equal(plain[~pad], masked[~pad])
