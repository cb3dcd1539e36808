"""Analytic FLOP accounting against the paper's worked example and hand counts."""

import pytest

from loopformer.analysis.flops import layer_flops, lm_flops
from loopformer.cli import main
from loopformer.config import ModelConfig
from loopformer.registry import get_config


def lm(**kw):
    base = dict(task="decoder", d_model=1024, n_heads=16, d_ff=4096, vocab_size=100, norm_style="pre",
                positional="rotary", max_len=4096)
    return ModelConfig.from_dict({**base, **kw})


def test_paper_example_spiral_is_086_of_a_24_layer_vanilla():
    vanilla = lm(arch="vanilla", n_layers=24)
    spiral = lm(arch="spiral", n_prelude=4, n_coda=4, core_layers=8, n_layers=32, spiral_schedule="4,2,1",
                state_update="anchor")
    ratio = lm_flops(spiral, 4096).layers / lm_flops(vanilla, 4096).layers
    assert ratio == pytest.approx(0.86, abs=0.005)


def test_layer_formula_and_full_resolution_loop():
    assert layer_flops(10, 8, 32) == 24 * 10 * 64 + 4 * 100 * 8
    looped = lm(arch="looped", n_prelude=1, n_coda=1, core_layers=2, n_layers=8, state_update="anchor")
    ones = lm(arch="spiral", n_prelude=1, n_coda=1, core_layers=2, n_layers=8, spiral_schedule="1,1,1",
              state_update="anchor")
    assert lm_flops(looped, 512).layers == lm_flops(ones, 512).layers == 8 * layer_flops(512, 1024, 4096)


def test_partial_chunks_count_as_latents():
    cfg = lm(arch="spiral", core_layers=1, n_layers=1, spiral_schedule="4", spiral_offsets="2")
    assert lm_flops(cfg, 10).layers == layer_flops(3, 1024, 4096)  # chunks: 2 + 4 + 4 tokens


def test_cli_flops(capsys):
    assert main(["flops", "spiral-lm-char", "--context", "128"]) == 0
    assert "per token" in capsys.readouterr().out
    assert main(["flops", "vit-tiny"]) == 2
    assert main(["flops", "spiral-lm-char", "--context", "9999"]) == 2
    assert lm_flops(get_config("ringformer-lm-char")).signals > 0


def test_signals_on_a_spiral_schedule_count_the_latents_of_each_iteration():
    ring = lm(arch="ringformer", n_prelude=1, n_coda=1, core_layers=2, n_layers=8, spiral_schedule="4,2,1",
              state_update="anchor", signal_rank=8)
    # 512 tokens -> 128, 256 and 512 positions; 2 core layers; q, k, v and FFN signals of 4 d r each
    assert lm_flops(ring, 512).signals == 2 * (128 + 256 + 512) * 4 * (4.0 * 1024 * 8)
    full = lm(arch="ringformer", n_prelude=1, n_coda=1, core_layers=2, n_layers=8, state_update="anchor",
              signal_rank=8)
    assert lm_flops(full, 512).signals == 2 * 3 * 512 * 4 * (4.0 * 1024 * 8)
