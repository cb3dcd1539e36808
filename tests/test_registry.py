import pytest
import torch

from loopformer import ConfigError, count_parameters, create_model, get_config, list_models
from loopformer.models import build_model

# RingFormer spec section 5 (translation at vocabulary 52,000; vision 224x224 / patch 16 / 100 classes).
MT_COUNTS = {
    "vanilla-mt-base": (44_052_480, 123_976_480),
    "ringformer-mt-base": (8_943_616, 88_867_616),
    "universal-mt-base": (7_345_152, 87_269_152),
}
VIT_COUNTS = {
    "vit-s": 19_360_868,
    "ringformer-vit-s": 8_824_348,
    "uit-s": 8_836_788,
    "vit-b": 85_724_260,
    "ringformer-vit-b": 30_796_824,
}


def _count_on_meta(name, **kw):
    with torch.device("meta"):
        return count_parameters(build_model(get_config(name, **kw)))


@pytest.mark.parametrize("name", sorted(MT_COUNTS))
def test_translation_paper_counts(name):
    non_emb, total = MT_COUNTS[name]
    count = _count_on_meta(name, vocab_size=52_000)
    assert count.non_embedding == non_emb
    assert count.total == total
    # two embeddings of 52,000 x 512 and an output layer with bias, in every row
    assert count.embedding == 2 * 26_624_000
    assert count.head == 26_676_000


def test_vanilla_with_one_norm_per_sublayer():
    count = _count_on_meta("vanilla-mt-base", vocab_size=52_000, shared_sublayer_norm=False)
    assert count.non_embedding == 44_070_912
    assert count.total == 123_994_912


def test_ringformer_breakdown_and_closed_form():
    count = _count_on_meta("ringformer-mt-base", vocab_size=52_000)
    assert count.shared == 3_145_728 + 4_194_304
    assert count.per_level == 30_720 + 1_572_864
    for r in (8, 16, 64):
        assert _count_on_meta("ringformer-mt-base", signal_rank=r).non_embedding == 7_370_752 + 49_152 * r


@pytest.mark.parametrize("name", sorted(VIT_COUNTS))
def test_vision_paper_counts(name):
    assert _count_on_meta(name).total == VIT_COUNTS[name]


def test_effective_counts_shared_weights_per_use():
    count = _count_on_meta("ringformer-mt-base", vocab_size=52_000)
    assert count.effective == count.total + 5 * count.shared


def test_count_matches_real_model_and_torch():
    model = create_model("ringformer-mt-small", vocab_size=100)
    assert count_parameters(model).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in list_models() if n.endswith(("small", "tiny", "matched"))])
def test_every_cpu_preset_builds_and_runs(name):
    model = create_model(name).eval()
    cfg = model.config
    with torch.no_grad():
        if cfg.task == "vit":
            out = model(torch.randn(2, cfg.in_channels, cfg.image_size, cfg.image_size))
            assert out.shape == (2, cfg.num_classes)
        elif cfg.task == "seq2seq":
            out = model(torch.randint(1, cfg.vocab_size, (2, 5)), torch.randint(1, cfg.vocab_size, (2, 4)))
            assert out.shape == (2, 4, cfg.target_vocab_size)
        else:
            out = model(torch.randint(1, cfg.vocab_size, (2, 5)))
            assert out.shape == (2, 5, cfg.vocab_size)
    assert torch.isfinite(out).all()


def test_list_models_has_every_paper_preset():
    names = set(list_models())
    for required in list(MT_COUNTS) + list(VIT_COUNTS):
        assert required in names
    for family in ("vanilla", "looped", "universal", "ringformer"):
        assert any(n.startswith(family) and n.endswith("small") for n in names)


def test_unknown_preset_and_override():
    with pytest.raises(ConfigError, match="unknown preset"):
        create_model("ringformer-mt-huge")
    with pytest.raises(ConfigError, match="unknown config key"):
        create_model("ringformer-mt-small", hidden_size=3)


def test_tiny_vision_presets_are_matched_in_size():
    counts = {n: count_parameters(create_model(n)).total
              for n in ("vit-tiny", "vit-tiny-matched", "uit-tiny", "looped-vit-tiny", "ringformer-vit-tiny")}
    assert counts["ringformer-vit-tiny"] == 571_402
    assert counts["uit-tiny"] == counts["looped-vit-tiny"] == 576_298
    assert counts["vit-tiny-matched"] == 569_986
    for name in ("uit-tiny", "vit-tiny-matched"):
        assert abs(counts[name] / counts["ringformer-vit-tiny"] - 1) < 0.01
    vit, ring = create_model("vit-tiny").config, create_model("ringformer-vit-tiny").config
    assert (vit.d_model, vit.n_layers) == (ring.d_model, ring.n_layers)
