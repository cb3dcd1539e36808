"""Unrolling a looped model into the plain Transformer it computes (folded signals)."""

import pytest
import torch

from loopformer.errors import ConfigError
from loopformer.models.unroll import unroll
from tests.conftest import randomize_signals, tiny


def _perturb_norms(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize("arch", ["ringformer", "looped", "vanilla"])
def test_translation_model_unrolls_exactly(arch):
    model = tiny(arch, "mt", **({"signal_rank": 4} if arch == "ringformer" else {}))
    randomize_signals(model)
    _perturb_norms(model)
    model.eval()
    flat = unroll(model)
    assert flat.config.arch == "vanilla" and flat.config.n_layers == 3 and flat.config.n_dec_layers == 3
    src, tgt = torch.randint(4, 40, (3, 9)), torch.randint(4, 40, (3, 6))
    with torch.no_grad():
        assert (model(src, tgt) - flat(src, tgt)).abs().max() < 1e-5


def test_signal_placements_and_partial_kinds_fold():
    for extra in ({"signal_placement": "before"}, {"signal_k": False, "signal_ffn": False}):
        model = tiny("ringformer", "mt", signal_rank=4, **extra)
        randomize_signals(model)
        model.eval()
        src, tgt = torch.randint(4, 40, (2, 7)), torch.randint(4, 40, (2, 5))
        with torch.no_grad():
            assert (model(src, tgt) - unroll(model)(src, tgt)).abs().max() < 1e-5


def test_unrolled_model_has_loops_times_core_layers_and_no_signals():
    model = tiny("ringformer", "mt", signal_rank=4)
    flat = unroll(model)
    assert not any("signals" in n for n, _ in flat.named_parameters())
    assert len(flat.encoder.prelude) == 3 and len(flat.decoder.prelude) == 3


@pytest.mark.parametrize("arch,task,reason", [
    ("universal", "mt", "Universal timing"),
    ("ringformer", "vit", "raw residual"),
])
def test_what_does_not_fold_is_refused(arch, task, reason):
    model = tiny(arch, task, **({"signal_rank": 4} if arch == "ringformer" else {}))
    randomize_signals(model)
    with pytest.raises(ConfigError, match=reason):
        unroll(model)


def test_static_signals_need_biases():
    model = tiny("ringformer", "mt", signal_rank=4, signal_mode="static")
    randomize_signals(model)
    with pytest.raises(ConfigError, match="biases"):
        unroll(model)
