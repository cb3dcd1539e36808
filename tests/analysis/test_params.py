"""Parameter accounting sees every looped stack, full-resolution or spiral."""

import pytest

from loopformer import create_model
from loopformer.analysis.params import count_parameters


@pytest.mark.parametrize("name,extra", [("spiral-lm-char", {}), ("looped-lm-char", {}),
                                        ("ringformer-lm-char", {}), ("ringformer-lm-char", {"spiral_schedule": "4,2,1"})])
def test_shared_core_and_unshared_layers_are_counted_in_every_lm(name, extra):
    model = create_model(name, **extra)
    count = count_parameters(model)
    core = sum(p.numel() for p in model.decoder.core.parameters())
    ends = sum(p.numel() for p in model.decoder.prelude.parameters()) + sum(
        p.numel() for p in model.decoder.coda.parameters())
    assert count.shared == core and count.layers == ends
    assert count.effective == count.total + core * (model.decoder.n_loops - 1)
    assert count.other == sum(p.numel() for p in model.final_norm.parameters())


def test_a_spirals_pooling_weights_and_ringformer_levels_are_per_level():
    spiral = count_parameters(create_model("spiral-lm-char"))
    levels = create_model("spiral-lm-char").decoder.levels
    assert spiral.per_level == sum(p.numel() for p in levels.parameters())
    ring = create_model("ringformer-lm-char", spiral_schedule="4,2,1")
    per_level = sum(p.numel() for p in ring.decoder.levels.parameters()) + sum(
        p.numel() for p in ring.decoder.adapter.parameters())
    assert count_parameters(ring).per_level == per_level
