"""Checkpoints of config format 1 (every checkpoint behind the result pages) still load,
and compute what they computed: tiny checkpoints written by the library before format 2,
with the outputs they gave then, are stored in tests/fixtures/v1/."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loopformer.checkpoint import load_model, read_checkpoint_config
from loopformer.config import ModelConfig
from loopformer.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
NAMES = sorted(p.name for p in FIXTURES.iterdir())


def test_the_fixtures_are_format_1():
    assert len(NAMES) == 4
    for name in NAMES:
        assert json.loads((FIXTURES / name / "config.json").read_text())["format_version"] == 1


@pytest.mark.parametrize("name", NAMES)
def test_a_format_1_checkpoint_loads_and_gives_the_same_outputs(name):
    model = load_model(FIXTURES / name).eval()
    saved = load_file(str(FIXTURES / name / "expected.safetensors"))
    inputs = [saved[k] for k in sorted(k for k in saved if k.startswith("input"))]
    with torch.no_grad():
        out = model(*inputs)
    assert torch.equal(out, saved["output"])


def test_settings_a_format_1_model_ignored_are_reset_on_load():
    raw = json.loads((FIXTURES / "vit-tiny" / "config.json").read_text())["model"]
    assert raw["ffn_signal_position"] == "before_norm"  # RingFormer-only, on a vanilla ViT
    with pytest.raises(ConfigError, match="ffn_signal_position"):
        ModelConfig.from_dict(raw)  # refused as a new config ...
    config, _ = read_checkpoint_config(FIXTURES / "vit-tiny")  # ... migrated as an old one
    assert config.ffn_signal_position == "after_norm"
    ring, _ = read_checkpoint_config(FIXTURES / "ringformer-vit-tiny")
    assert ring.ffn_signal_position == "before_norm" and ring.level_eps == 1e-6 and ring.attn_residual_dropout


def test_a_format_1_vit_with_rotary_positions_was_sinusoidal():
    raw = json.loads((FIXTURES / "vit-tiny" / "config.json").read_text())["model"]
    assert ModelConfig.from_v1(dict(raw, positional="rotary")).positional == "sinusoidal"


def test_migration_still_refuses_what_was_invalid_then():
    raw = json.loads((FIXTURES / "vit-tiny" / "config.json").read_text())["model"]
    with pytest.raises(ConfigError, match="d_model"):
        ModelConfig.from_v1(dict(raw, d_model=15))


def test_a_format_1_universal_model_with_unused_positions_migrates():
    raw = json.loads((FIXTURES / "ringformer-mt-small" / "config.json").read_text())["model"]
    raw = dict(raw, arch="universal", positional="learned", signal_rank=None)
    with pytest.raises(ConfigError, match="carries its own positions"):
        ModelConfig.from_dict(raw)
    assert ModelConfig.from_v1(raw).positional == "none"
