"""The engine as a loop schedule times a level adapter: the adapters' hooks, the schedules,
their composition by injection, the decoding cache the stack makes, and the state-dict
names that keep old checkpoints loading."""

import pytest
import torch

from loopformer import create_model
from loopformer.layers import KVCache, LayerHooks, LayerSpec, SharedInputs, TransformerLayer
from loopformer.layers.masks import AttnMask
from loopformer.layers.signals import LevelSignals
from loopformer.models import FullResolution, LevelAdapter, LoopedStack, PerLevelNorms, RingFormerLevels
from loopformer.models.spiral import SpiralCache, SpiralSchedule

SMALL = dict(d_model=32, n_heads=2, d_ff=64, vocab_size=29, dropout=0.0)


def layer(style="pre", own_norms=True, cross=False):
    return TransformerLayer(LayerSpec(dim=16, n_heads=2, d_ff=32, norm_style=style, own_norms=own_norms,
                                      cross=cross, dropout=0.0))


@pytest.mark.parametrize("style", ["pre", "post"])
def test_per_level_norms_are_the_layers_norms_at_that_level(style):
    adapter = PerLevelNorms(n_loops=3, core_layers=2, dim=16, n_sublayers=2, eps=1e-5)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_()
    shared_layer, reference = layer(style, own_norms=False), layer(style)
    reference.load_state_dict(shared_layer.state_dict(), strict=False)
    h = torch.randn(2, 5, 16)
    for t, j in [(0, 0), (1, 1), (2, 0)]:
        reference.norms.load_state_dict(adapter.norms[2 * t + j].state_dict())
        with torch.no_grad():
            assert torch.equal(shared_layer(h, adapter.hooks(t, j), SharedInputs(), "k"),
                               reference(h, None, SharedInputs(), "k"))


@pytest.mark.parametrize("style", ["pre", "post"])
@pytest.mark.parametrize("placement", ["after", "before"])
def test_ringformer_hooks_with_zero_signals_are_per_level_norms(style, placement):
    signals = LevelSignals(4, 16, 2, placement=placement)
    cross_q = LevelSignals(4, 16, 2, qkv_kinds=("q",), layout="q", ffn=False)
    cross_kv = LevelSignals(4, 16, 2, qkv_kinds=("k", "v"), layout="kv", ffn=False)
    ring = RingFormerLevels(2, 2, 16, 3, 1e-5, signals, cross_q, cross_kv)
    norms_only = PerLevelNorms(2, 2, 16, 3, 1e-5)
    norms_only.norms.load_state_dict(ring.norms.state_dict())
    shared_layer = layer(style, own_norms=False, cross=True)
    h, shared = torch.randn(2, 5, 16), SharedInputs(memory=torch.randn(2, 3, 16))
    with torch.no_grad():
        same = shared_layer(h, ring.hooks(1, 0), shared, "k")
        assert torch.equal(same, shared_layer(h, norms_only.hooks(1, 0), shared, "k"))
        for p in (signals.qkv_up, signals.ffn_up, cross_q.qkv_up, cross_kv.qkv_up):
            p.normal_()
        assert not torch.allclose(shared_layer(h, ring.hooks(1, 0), shared, "k"), same)


def test_the_full_resolution_stack_is_the_core_applied_in_a_loop():
    core = [layer(), layer()]
    stack = LoopedStack(core=core, n_loops=3).eval()
    assert isinstance(stack.schedule, FullResolution) and type(stack.adapter) is LevelAdapter
    h = torch.randn(2, 6, 16)
    want = h
    with torch.no_grad():
        for _ in range(3):
            for block in core:
                want = block(want, None, SharedInputs(), "k")
        assert torch.equal(stack(h, SharedInputs()), want)


class Recorder(LevelAdapter):
    """An adapter of the test's own: notes what the stack asks and shifts each iteration."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def enter(self, t, h, shared):
        self.asked.append(("enter", t))
        return h + 0.1 * (t + 1)

    def hooks(self, t, j):
        self.asked.append(("hooks", t, j))
        return LayerHooks()


class Twice(FullResolution):
    """A schedule of the test's own: every iteration runs the core twice."""

    def iterate(self, t, level, h, shared, core):
        return core(t, level, core(t, level, h, shared), shared)


def test_adapters_and_schedules_are_injected_objects():
    torch.manual_seed(0)
    core = [layer(), layer()]
    plain = LoopedStack(core=core, n_loops=4).eval()
    adapter = Recorder()
    stack = LoopedStack(core=core, n_loops=2, adapter=adapter, schedule=Twice()).eval()
    h = torch.randn(1, 4, 16)
    with torch.no_grad():
        got = stack(h, SharedInputs())
        # twice per iteration, the adapter's shift before each iteration: a 4-loop plain stack
        # whose input for loops 0-1 and 2-3 carries those shifts reproduces it
        want = plain.run_core(0, 0, plain.run_core(0, 0, h + 0.1, SharedInputs()), SharedInputs())
        want = plain.run_core(1, 1, plain.run_core(1, 1, want + 0.2, SharedInputs()), SharedInputs())
    assert torch.equal(got, want)
    assert adapter.asked[:5] == [("enter", 0), ("hooks", 0, 0), ("hooks", 0, 1), ("hooks", 0, 0), ("hooks", 0, 1)]


def test_any_adapter_composes_with_the_spiral_schedule():
    """An adapter of one's own on a spiral loop: asked for the hooks of every core layer at
    every iteration, on latents, as on a full-resolution loop."""
    model = create_model("spiral-lm-char", **SMALL).eval()
    stack = model.decoder
    recorder = Recorder()
    spiral = LoopedStack(core=list(stack.core), n_loops=3, prelude=list(stack.prelude), coda=list(stack.coda),
                         adapter=recorder, schedule=stack.schedule, state=stack.state)
    with torch.no_grad():
        spiral(torch.randn(2, 12, 32), SharedInputs(self_mask=AttnMask(is_causal=True)))
    assert [a for a in recorder.asked if a[0] == "hooks"] == [("hooks", t, j) for t in range(3) for j in range(2)]


def test_stacks_make_the_cache_their_schedule_needs():
    looped = create_model("looped-lm-char", **SMALL)
    spiral = create_model("spiral-lm-char", **SMALL)
    mt = create_model("ringformer-mt-small", **SMALL, signal_rank=4)
    assert type(looped.new_cache()) is KVCache and type(mt.new_cache()) is KVCache
    cache = spiral.new_cache()
    assert isinstance(cache, SpiralCache) and len(cache.levels) == 3
    assert isinstance(spiral.decoder.schedule, SpiralSchedule)


def test_state_dict_names_are_those_checkpoints_have_always_used():
    ring = create_model("ringformer-lm-char", **SMALL, signal_rank=4)
    assert ring.decoder.levels is ring.decoder.adapter
    assert "decoder.levels.signals.qkv_down" in ring.state_dict()
    spiral_ring = create_model("ringformer-lm-char", **SMALL, signal_rank=4, spiral_schedule="4,2,1")
    keys = list(spiral_ring.state_dict())
    assert spiral_ring.decoder.levels is spiral_ring.decoder.schedule
    assert "decoder.adapter.signals.qkv_down" in keys and "decoder.adapter.norms.0.0.weight" in keys
    self_pool = create_model("spiral-lm-char", **SMALL, spiral_pool="self")
    assert "decoder.levels.0.scorer.weight" in self_pool.state_dict()
    assert not any(".schedule." in k for k in keys + list(ring.state_dict()))


def test_a_spiral_cache_reorders_like_the_batch():
    torch.manual_seed(0)
    model = create_model("spiral-lm-char", **SMALL).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "state." in name:
                p.normal_(std=0.3)
        tokens = torch.randint(0, 29, (2, 14))
        index = torch.tensor([1, 1])
        cache = model.new_cache()
        model(tokens[:, :5], cache=cache)
        cache.reorder(index)
        got = torch.cat([model(tokens[index, k : k + 1], cache=cache) for k in range(5, 14)], dim=1)
        want = model(tokens[index])[:, 5:]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_spiral_loop_refuses_a_plain_token_cache():
    model = create_model("spiral-lm-char", **SMALL).eval()
    with pytest.raises(TypeError, match="new_cache"):
        model(torch.ones(1, 3, dtype=torch.long), cache=KVCache())


@pytest.mark.parametrize("extra", [dict(per_level_norms=True), dict(arch="ringformer", signal_rank=4)])
def test_level_norms_on_a_spiral_loop_decode_like_the_full_sequence(extra):
    model = create_model("spiral-lm-char", **SMALL, **extra).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_up") or "adapter.norms" in name or "state." in name:
                p.normal_(std=0.3)
        tokens = torch.randint(0, 29, (2, 17))
        full = model(tokens)
        cache = model.new_cache()
        steps = [model(tokens[:, :4], cache=cache)] + [model(tokens[:, k : k + 1], cache=cache) for k in range(4, 17)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
