"""Depth as a dial: loops at inference, level rules, early exit (batched, cached) and
truncated backpropagation, on every looped model kind."""

import pytest
import torch

from loopformer import create_model
from loopformer.errors import ConfigError
from loopformer.models.depth import DepthPlan, ExitMeter, ExitRule, level_of, run_depth

SMALL = dict(d_model=32, n_heads=2, d_ff=64, vocab_size=29, dropout=0.0, max_len=64)
LMS = [("looped-lm-char", {}), ("ringformer-lm-char", dict(signal_rank=4)),
       ("universal-lm-small", {}), ("spiral-lm-char", {})]


def lm(name, **extra):
    torch.manual_seed(0)
    model = create_model(name, **{**SMALL, **extra}).eval()
    with torch.no_grad():  # untrained signals and routers start at zero: make them matter
        for pname, p in model.named_parameters():
            if "signals" in pname or "state." in pname:
                p.normal_(std=0.2)
    return model


def decode_cached(model, tokens, split=5, padding_mask=None):
    cache = model.new_cache()
    pad = padding_mask[:, :split] if padding_mask is not None else None
    outs = [model(tokens[:, :split], padding_mask=pad, cache=cache)]
    for k in range(split, tokens.shape[1]):
        pad = padding_mask[:, k : k + 1] if padding_mask is not None else None
        outs.append(model(tokens[:, k : k + 1], padding_mask=pad, cache=cache))
    return torch.cat(outs, 1)


def test_level_rules():
    assert [level_of(t, 6, 3, "repeat_last") for t in range(6)] == [0, 1, 2, 2, 2, 2]
    assert [level_of(t, 6, 3, "cycle") for t in range(6)] == [0, 1, 2, 0, 1, 2]
    assert [level_of(t, 5, 3, "spread") for t in range(5)] == [0, 0, 1, 2, 2]
    assert [level_of(t, 2, 3, "repeat_last") for t in range(2)] == [0, 1]
    assert [level_of(t, 2, 3, "spread") for t in range(2)] == [0, 2]
    assert DepthPlan(loops=3).levels(3) == [0, 1, 2]


@pytest.mark.parametrize("name,extra", LMS)
def test_the_trained_count_reproduces_the_model_exactly(name, extra):
    model = lm(name, **extra)
    tokens = torch.randint(0, 29, (2, 12))
    with torch.no_grad():
        want = model(tokens)
        got = model(tokens, loops=model.decoder.n_loops)
    assert torch.equal(got, want)


def test_the_trained_count_reproduces_translation_and_vit_exactly():
    torch.manual_seed(0)
    mt = create_model("ringformer-mt-small", **SMALL, signal_rank=4).eval()
    src, tgt = torch.randint(3, 29, (2, 7)), torch.randint(3, 29, (2, 6))
    vit = create_model("ringformer-vit-tiny", d_model=32, n_heads=2, d_ff=64, signal_rank=4, dropout=0.0).eval()
    images = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(mt(src, tgt, loops=3), mt(src, tgt))
        assert torch.equal(vit(images, loops=6), vit(images))
        assert not torch.equal(vit(images, loops=2), vit(images))


@pytest.mark.parametrize("name,extra", LMS)
@pytest.mark.parametrize("loops", [1, 7])
def test_any_loop_count_decodes_with_a_cache_as_the_full_sequence(name, extra, loops):
    model = lm(name, **extra)
    tokens = torch.randint(0, 29, (2, 14))
    with torch.no_grad(), run_depth(model, loops=loops, rule="cycle"):
        want = model(tokens)
        got = decode_cached(model, tokens)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_level_rules_choose_the_parameters_extra_loops_run():
    model = lm("ringformer-lm-char", signal_rank=4)
    tokens = torch.randint(0, 29, (1, 10))
    with torch.no_grad():
        outs = {}
        for rule in ("repeat_last", "cycle", "spread"):
            with run_depth(model, loops=6, rule=rule):
                outs[rule] = model(tokens)
    assert not torch.equal(outs["repeat_last"], outs["cycle"])
    assert not torch.equal(outs["cycle"], outs["spread"])


@pytest.mark.parametrize("name,extra", LMS[:3])
def test_a_never_firing_exit_is_full_compute(name, extra):
    model = lm(name, **extra)
    tokens = torch.randint(0, 29, (2, 12))
    meter = ExitMeter()
    with torch.no_grad():
        want = model(tokens)
        with run_depth(model, exit=ExitRule("change", 0.0), meter=meter):
            got = model(tokens)
    assert torch.equal(got, want)
    assert meter.mean_loops == model.decoder.n_loops


@pytest.mark.parametrize("criterion,threshold", [("change", 0.5), ("kl", 0.05), ("entropy", 3.2), ("argmax", 0.5)])
def test_cached_decoding_with_exits_equals_the_full_forward(criterion, threshold):
    model = lm("ringformer-lm-char", signal_rank=4, n_layers=10)
    tokens = torch.randint(0, 29, (3, 14))
    full, cached = ExitMeter(record=True), ExitMeter(record=True)
    rule = ExitRule(criterion, threshold)
    with torch.no_grad():
        with run_depth(model, exit=rule, meter=full):
            want = model(tokens)
        with run_depth(model, exit=rule, meter=cached):
            got = decode_cached(model, tokens)
    decisions = torch.cat(cached.loops_used, 1)
    assert torch.equal(decisions, full.loops_used[0])
    assert 1 < decisions.float().mean() < model.decoder.n_loops  # exits happened, not all at once
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_batch_with_mixed_exits_and_padding_decodes_as_each_sequence_alone():
    model = lm("ringformer-lm-char", signal_rank=4, n_layers=10)
    lengths = [9, 14, 11]
    rows = [torch.randint(0, 29, (n,)) for n in lengths]
    width = max(lengths)
    batch = torch.zeros(3, width, dtype=torch.long)
    pad = torch.ones(3, width, dtype=torch.bool)
    for i, r in enumerate(rows):  # left padding, as prompts are batched
        batch[i, width - len(r):], pad[i, width - len(r):] = r, False
    rule = ExitRule("change", 0.5)
    meter = ExitMeter(record=True)
    with torch.no_grad(), run_depth(model, exit=rule, meter=meter):
        got = decode_cached(model, batch, split=6, padding_mask=pad)
        used = torch.cat(meter.loops_used, 1)
        assert len(set(used[~pad].tolist())) > 1  # the batch mixes exit levels
        for i, r in enumerate(rows):
            alone = ExitMeter(record=True)
            with run_depth(model, exit=rule, meter=alone):
                want = decode_cached(model, r[None], split=6 - (width - len(r)))
            torch.testing.assert_close(got[i, width - len(r):], want[0], atol=1e-5, rtol=1e-5)
            assert torch.equal(used[i, width - len(r):], torch.cat(alone.loops_used, 1)[0])


def test_the_translation_decoder_exits_per_token_with_a_cache():
    torch.manual_seed(0)
    model = create_model("looped-mt-small", **SMALL, n_layers=6).eval()
    src, tgt = torch.randint(3, 29, (2, 7)), torch.randint(3, 29, (2, 8))
    rule = ExitRule("change", 0.3)
    full, cached = ExitMeter(record=True), ExitMeter(record=True)
    with torch.no_grad():
        memory, mem_pad = model.encode(src)
        with run_depth(model, exit=rule, meter=full):
            want = model.decode(tgt, memory, mem_pad)
        with run_depth(model, exit=rule, meter=cached):
            cache = model.new_cache()
            got = torch.cat([model.decode(tgt[:, k : k + 1], memory, mem_pad, cache) for k in range(8)], 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(torch.cat(cached.loops_used, 1), full.loops_used[0])
    assert full.mean_loops < 6


def test_encoders_and_vits_exit_per_sequence():
    torch.manual_seed(0)
    vit = create_model("looped-vit-tiny", d_model=32, n_heads=2, d_ff=64, dropout=0.0).eval()
    images = torch.randn(4, 1, 28, 28)
    meter = ExitMeter(record=True)
    with torch.no_grad(), run_depth(vit, exit=ExitRule("entropy", 10.0, min_loops=2), meter=meter):
        got = vit(images)
    assert meter.loops_used[0].tolist() == [2, 2, 2, 2]
    with torch.no_grad():
        torch.testing.assert_close(got, vit(images, loops=2))
    mt = create_model("looped-mt-small", **SMALL).eval()
    src = torch.randint(3, 29, (2, 5))
    meter = ExitMeter()
    with torch.no_grad():  # no predictions in an encoder: all loops under kl, per sequence under change
        with run_depth(mt, exit=ExitRule("kl", 10.0), meter=meter):
            assert torch.equal(mt.encode(src)[0], mt.encode(src)[0])
        assert meter.positions == {}
        with run_depth(mt, exit=ExitRule("change", 10.0), meter=meter):
            mt.encode(src)
    assert meter.positions == {"sequence": 2} and meter.mean("sequence") == 1


def test_settings_that_do_not_apply_are_refused():
    with pytest.raises(ConfigError, match="looped models only"), run_depth(create_model("vanilla-lm-small"), loops=2):
        pass
    with pytest.raises(ConfigError, match="full-resolution"), run_depth(lm("spiral-lm-char"), exit=ExitRule()):
        pass
    for bad in (dict(loops=0), dict(rule="last"), dict(backprop_loops=0)):
        with pytest.raises(ConfigError):
            DepthPlan(**bad)
    with pytest.raises(ConfigError, match="criterion"):
        ExitRule.parse("margin:0.1")
    assert ExitRule.parse("kl:0.01:2") == ExitRule("kl", 0.01, 2)


def test_a_plan_holds_inside_its_block_only():
    model = lm("looped-lm-char")
    with run_depth(model, loops=5):
        assert model.decoder.plan.loops == 5
    assert model.decoder.plan == DepthPlan()


def test_truncated_backprop_reaches_only_the_last_loops():
    model = lm("ringformer-lm-char", signal_rank=4, n_layers=10).train()
    tokens = torch.randint(0, 29, (2, 10))
    with run_depth(model, backprop_loops=1):
        model(tokens).sum().backward()
    # (level, ...), a level per application of the 2 core layers: only the last loop's learn
    grads = model.decoder.levels.signals.qkv_up.grad
    assert grads is not None and grads[-2:].abs().sum() > 0 and grads[:-2].abs().sum() == 0
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, loops=4), model(tokens))


def test_sampling_left_padded_prompts_with_exits_matches_each_prompt_alone():
    from loopformer.sampling import sample

    model = lm("ringformer-lm-char", signal_rank=4, n_layers=10)
    prompts = [torch.randint(0, 29, (n,)) for n in (3, 7)]
    batch = torch.zeros(2, 7, dtype=torch.long)
    pad = torch.ones(2, 7, dtype=torch.bool)
    for i, p in enumerate(prompts):
        batch[i, 7 - len(p):], pad[i, 7 - len(p):] = p, False
    rule = ExitRule("change", 0.5)
    with run_depth(model, exit=rule, loops=6):
        got = sample(model, batch, 8, temperature=0, padding_mask=pad)
        for i, p in enumerate(prompts):
            alone = sample(model, p[None], 8, temperature=0)
            assert torch.equal(got[i, 7:], alone[0, len(p):])


@pytest.mark.parametrize("beam", [1, 3])
def test_translation_search_with_exits_decodes_a_padded_batch_as_each_sentence_alone(beam):
    from loopformer.generate import decode

    torch.manual_seed(0)
    model = create_model("ringformer-mt-small", **SMALL, n_layers=4, signal_rank=4).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "signals" in name:
                p.normal_(std=0.2)
    sents = [torch.randint(3, 29, (n,)) for n in (4, 9, 6)]
    src = torch.zeros(3, 9, dtype=torch.long)  # pad_id 0, right padding as the library batches
    for i, s in enumerate(sents):
        src[i, : len(s)] = s
    rule = ExitRule("change", 0.3)
    meter = ExitMeter()
    with run_depth(model, exit=rule, meter=meter):
        batched = decode(model, src, 1, 2, 12, beam=beam, length_penalty=0.6)
        for i, s in enumerate(sents):
            alone = decode(model, s[None], 1, 2, 12, beam=beam, length_penalty=0.6)
            assert alone.tokens[0] == batched.tokens[i]
            assert alone.scores[0] == pytest.approx(batched.scores[i], abs=1e-4)
    assert 1 < meter.mean("token") < 4
