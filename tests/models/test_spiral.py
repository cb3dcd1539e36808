"""SpiralFormer: exact causality, the all-ones schedule, cached decoding."""

import itertools

import pytest
import torch

from loopformer import create_model
from loopformer.models import LevelAdapter

BASE = dict(task="decoder", d_model=32, n_heads=2, d_ff=64, vocab_size=37, max_len=64, norm_style="pre",
            dropout=0.0, bias=True, final_norm=True, positional="rotary", rotary_fraction=0.5,
            output_bias=False, n_prelude=1, n_coda=1, core_layers=2)


def spiral(schedule: str, **kw):
    n = len(schedule.split(","))
    cfg = dict(BASE, arch="spiral", spiral_schedule=schedule, n_layers=2 + 2 * n, state_update="anchor")
    cfg.update(kw)
    from loopformer.config import ModelConfig
    from loopformer.models import build_model

    model = build_model(ModelConfig.from_dict(cfg)).eval()
    with torch.no_grad():  # leave the zero init so that scorers and allocations matter
        for name, p in model.named_parameters():
            if "scorer" in name or "allocation" in name or "state." in name:
                p.normal_(std=0.5)
    return model


def assert_causal(model, positions, length: int = 23) -> None:
    """Perturbing token k leaves every earlier logit bit-identical and changes a later one."""
    tokens = torch.randint(0, 37, (2, length))
    with torch.no_grad():
        base = model(tokens)
        for k in positions:
            changed = tokens.clone()
            changed[:, k] = (changed[:, k] + 5) % 37
            out = model(changed)
            assert torch.equal(out[:, :k], base[:, :k]), f"position < {k} changed"
            if k < length - 1:
                assert not torch.equal(out[:, k:], base[:, k:])


MATRIX = [
    dict(schedule=s, spiral_offsets=o, spiral_pool=p, spiral_upscale=u, state_update=st)
    for (s, o), p, u, st in itertools.product(
        [("4,2,1", "0"), ("4,2,1", "half"), ("3,2", "1,1"), ("8,4,2", "0"), ("5,1,3", "2,0,1")],
        ["mean", "self"], ["copy", "uniform", "learned"], ["anchor", "mesh"],
    )
]


@pytest.mark.parametrize("case", MATRIX,
                         ids=lambda c: "-".join(str(v) for v in c.values()))
def test_perturbing_token_k_leaves_earlier_logits_bit_identical(case):
    case = dict(case)
    model = spiral(case.pop("schedule"), **case)
    assert_causal(model, (0, 3, 7, 12, 22))


def test_no_overlap_variant_is_causal_too():
    model = spiral("4,2", spiral_shift="no_overlap")
    tokens = torch.randint(0, 37, (1, 17))
    with torch.no_grad():
        base = model(tokens)
        changed = tokens.clone()
        changed[:, 9] = (changed[:, 9] + 1) % 37
        assert torch.equal(model(changed)[:, :9], base[:, :9])


@pytest.mark.parametrize("state", ["anchor", "mesh", "none"])
@pytest.mark.parametrize("pool, up", [("self", "learned"), ("mean", "copy")])
def test_all_ones_schedule_equals_the_full_resolution_loop(state, pool, up):
    from loopformer.config import ModelConfig
    from loopformer.models import build_model

    spiral_model = spiral("1,1,1", state_update=state, spiral_pool=pool, spiral_upscale=up)
    looped = build_model(ModelConfig.from_dict(dict(BASE, arch="looped", n_layers=8, state_update=state))).eval()
    assert set(spiral_model.state_dict()) == set(looped.state_dict())
    looped.load_state_dict(spiral_model.state_dict())
    tokens = torch.randint(0, 37, (3, 19))
    with torch.no_grad():
        assert torch.equal(spiral_model(tokens), looped(tokens))


CACHED = ["4,2,1", "3,1", "8,4,2"]


@pytest.mark.parametrize("schedule", CACHED)
@pytest.mark.parametrize("offsets", ["0", "half"])
@pytest.mark.parametrize("latent_positions", ["index", "last_token"])
def test_token_by_token_decoding_matches_full_sequence(schedule, offsets, latent_positions):
    model = spiral(schedule, spiral_offsets=offsets, latent_positions=latent_positions, state_update="mesh")
    tokens = torch.randint(0, 37, (3, 21))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache()
        prefix = model(tokens[:, :5], cache=cache)  # a prompt, then one token at a time
        steps = [prefix] + [model(tokens[:, k : k + 1], cache=cache) for k in range(5, 21)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_spiral_cache_refuses_padding():
    model = spiral("2,1")
    pad = torch.zeros(1, 3, dtype=torch.bool)
    pad[0, 0] = True
    with pytest.raises(ValueError, match="unpadded"):
        model(torch.ones(1, 3, dtype=torch.long), padding_mask=pad, cache=model.new_cache())


def test_schedule_validation():
    from loopformer.errors import ConfigError

    with pytest.raises(ConfigError, match="n_layers"):
        spiral("4,2", n_layers=5)
    with pytest.raises(ConfigError, match="offset"):
        spiral("4,2", spiral_offsets="4,0")
    with pytest.raises(ConfigError, match="integers"):
        spiral("4,x")
    with pytest.raises(ConfigError, match="spiral_schedule"):
        create_model("vanilla-lm-small", spiral_schedule="2,1")


@pytest.mark.parametrize("name", ["vanilla-lm-char", "looped-lm-char", "ringformer-lm-char", "universal-lm-small",
                                  "spiral-lm-char", "spiral-coarse-lm-char"])
@pytest.mark.parametrize("extra", [{}, {"state_update": "mesh", "parallel_block": True}])
def test_every_lm_decodes_token_by_token_like_the_full_sequence(name, extra):
    if name.startswith("vanilla") and "state_update" in extra:
        extra = {"parallel_block": True}
    model = create_model(name, d_model=32, n_heads=2, d_ff=64, vocab_size=29, dropout=0.0, **extra).eval()
    with torch.no_grad():
        for p_name, p in model.named_parameters():
            if p_name.endswith(("_up", "scorer.weight", "allocation.weight")) or ".state." in p_name:
                p.normal_(std=0.3)
        tokens = torch.randint(0, 29, (2, 30))
        full = model(tokens)
        cache = model.new_cache()
        parts = [model(tokens[:, :7], cache=cache)] + [model(tokens[:, k : k + 1], cache=cache) for k in range(7, 30)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_sampling_is_seeded_and_greedy_matches_argmax():
    from loopformer.sampling import sample

    model = create_model("spiral-lm-char", d_model=32, n_heads=2, d_ff=64, vocab_size=29).eval()
    prompt = torch.randint(0, 29, (2, 4))
    a = sample(model, prompt, 12, 1.0, 5, torch.Generator().manual_seed(1))
    b = sample(model, prompt, 12, 1.0, 5, torch.Generator().manual_seed(1))
    assert a.shape == (2, 16) and torch.equal(a, b) and torch.equal(a[:, :4], prompt)
    greedy = sample(model, prompt, 6, 0.0)
    seq = prompt
    with torch.no_grad():
        for _ in range(6):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, seq)
    # generation stops at the context length instead of failing
    long = sample(model, torch.randint(0, 29, (1, 250)), 50, 0.0)
    assert long.shape == (1, 256)


# --- any level adapter on the spiral schedule -------------------------------------------

def ring_spiral(schedule: str = "4,2,1", **kw):
    """RingFormer's per-level norms and signals on SpiralFormer's coarse-to-fine loop."""
    from conftest import randomize_signals

    model = spiral(schedule, arch="ringformer", signal_rank=4, **kw)
    randomize_signals(model)
    return model


def test_ringformer_signals_on_a_spiral_schedule_have_their_parameters():
    model = ring_spiral()
    assert model.decoder.adapter.signals is not None
    assert len(model.decoder.adapter.norms) == 3 * 2  # iterations x core layers
    assert all(layer.norms is None for layer in model.decoder.core)  # the levels own the norms
    plain = spiral("4,2,1")  # the identity adapter: nothing per level
    assert type(plain.decoder.adapter) is LevelAdapter and not list(plain.decoder.adapter.parameters())


@pytest.mark.parametrize("schedule,offsets", [("4,2,1", "0"), ("3,2", "1,1"), ("8,4,2", "half")])
def test_ringformer_signals_on_a_spiral_schedule_are_exactly_causal(schedule, offsets):
    model = ring_spiral(schedule, spiral_offsets=offsets)
    assert_causal(model, (0, 5, 12, 22))


@pytest.mark.parametrize("schedule", CACHED)
@pytest.mark.parametrize("state_update", ["anchor", "mesh"])
def test_ringformer_signals_on_a_spiral_schedule_decode_like_the_full_sequence(schedule, state_update):
    model = ring_spiral(schedule, state_update=state_update)
    tokens = torch.randint(0, 37, (3, 21))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache()
        steps = [model(tokens[:, :5], cache=cache)] + [model(tokens[:, k : k + 1], cache=cache) for k in range(5, 21)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_the_signals_act_on_the_spiral_loop():
    model = ring_spiral()
    tokens = torch.randint(0, 37, (2, 16))
    with torch.no_grad():
        with_signals = model(tokens)
        for name, p in model.named_parameters():
            if name.endswith("_up"):
                p.zero_()
        without = model(tokens)
    assert not torch.allclose(with_signals, without)


@pytest.mark.parametrize("arch,why", [("universal", "timing signal"), ("vanilla", "no loop")])
def test_a_spiral_schedule_refuses_adapters_it_cannot_run(arch, why):
    from loopformer.errors import ConfigError

    with pytest.raises(ConfigError, match=why):
        spiral("4,2", arch=arch, state_update="none")
