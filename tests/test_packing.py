import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import randomize_signals, tiny
from loopformer.generate import beam_search, greedy_search
from loopformer import packing
from loopformer.packing import _PACKED, _PackedForward, packed_linears, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN packed linear")


@pytest.fixture(autouse=True)
def pack_every_size(monkeypatch):
    """The tests' layers are tiny: pack them anyway (the size floor has its own test)."""
    monkeypatch.setattr(packing, "MIN_PACKED_MACS", 0)


def test_small_products_stay_on_f_linear(monkeypatch):
    monkeypatch.setattr(packing, "MIN_PACKED_MACS", 1 << 22)
    small, large = nn.Linear(128, 384), nn.Linear(512, 2048)
    with torch.no_grad(), packed_linears(nn.Sequential(small, large)) as n:
        assert n == 2
        small(torch.randn(1, 1, 128))  # 49k multiply-adds
        large(torch.randn(32, 1, 512))  # 33.5M
        assert small not in _PACKED and large in _PACKED


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 16), (3, 4, 16), (2, 3, 4, 16)])
def test_packed_linear_matches_f_linear(bias, shape):
    torch.manual_seed(0)
    layer = nn.Linear(16, 24, bias=bias)
    x = torch.randn(*shape)
    want = F.linear(x, layer.weight, layer.bias)
    with torch.no_grad(), packed_linears(layer) as n:
        assert n == 1 and isinstance(layer.__dict__["forward"], _PackedForward)
        got = layer(x)
        got_t = layer(x.transpose(0, -2).contiguous().transpose(0, -2))  # non-contiguous input
        assert layer in _PACKED
    assert layer not in _PACKED  # the copy lives as long as the block
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_t, want, rtol=1e-5, atol=1e-5)
    assert got.shape == want.shape and got.dtype == torch.float32


def test_empty_inputs_keep_their_shape():
    layer = nn.Linear(8, 4)
    with torch.no_grad(), packed_linears(layer):
        assert layer(torch.randn(0, 8)).shape == (0, 4)
        assert layer(torch.randn(2, 0, 8)).shape == (2, 0, 4)


def test_leaving_the_block_restores_the_module_even_after_an_error():
    layer = nn.Linear(8, 8)
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad(), packed_linears(layer):
        raise RuntimeError("boom")
    assert "forward" not in layer.__dict__
    assert set(layer.state_dict()) == {"weight", "bias"}
    copy.deepcopy(layer)  # nothing unpicklable left on the module


def test_nested_blocks_keep_packing_until_the_outer_one_ends():
    layer = nn.Linear(8, 8)
    with packed_linears(layer):
        with packed_linears(layer) as inner:
            assert inner == 1
        assert isinstance(layer.__dict__.get("forward"), _PackedForward)
    assert "forward" not in layer.__dict__


def test_gradients_and_other_dtypes_fall_through_to_f_linear():
    layer = nn.Linear(8, 8)
    x = torch.randn(4, 8)
    with packed_linears(layer):
        y = layer(x)  # grad enabled: the autograd path
        assert y.requires_grad
        y.sum().backward()
        assert layer.weight.grad is not None
    assert layer not in _PACKED  # nothing was packed: no call qualified
    wide = nn.Linear(8, 8).double()
    with torch.no_grad(), packed_linears(wide):
        assert wide(x.double()).dtype == torch.float64
    assert wide not in _PACKED


def test_a_changed_weight_is_repacked():
    torch.manual_seed(0)
    layer = nn.Linear(8, 8)
    x = torch.randn(4, 8)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    with packed_linears(layer):
        with torch.no_grad():
            before = layer(x)
        layer(x).square().sum().backward()
        opt.step()  # an in-place update: the weight's version moves
        with torch.no_grad():
            after = layer(x)
            expected = F.linear(x, layer.weight, layer.bias)
            layer.load_state_dict({"weight": torch.zeros(8, 8), "bias": torch.ones(8)})
            loaded = layer(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loaded, torch.ones(4, 8))


def test_disabled_block_turns_off_nested_packing():
    layer = nn.Linear(8, 8)
    with packed_linears(layer, enabled=False) as n:
        assert n == 0
        with packed_linears(layer) as inner:
            assert inner == 0 and "forward" not in layer.__dict__
    with packed_linears(layer) as n:
        assert n == 1


def test_flop_counting_sees_ordinary_linears():
    layer = nn.Linear(16, 32, bias=False)
    x = torch.randn(10, 16)
    with torch.no_grad(), packed_linears(layer), FlopCounterMode(display=False) as counter:
        layer(x)
    assert counter.get_total_flops() == 2 * 10 * 16 * 32


def test_decoding_packs_and_gives_the_same_hypotheses():
    torch.manual_seed(0)
    model = tiny("ringformer", "mt", cross_attention_signals=True).eval()
    randomize_signals(model)
    src = torch.randint(4, 40, (3, 6))
    seen = []
    hook = model.output.register_forward_hook(lambda mod, args, out: seen.append(type(mod.__dict__.get("forward"))))
    packed_g = greedy_search(model, src, 1, 2, max_len=8)
    packed_b = beam_search(model, src, 1, 2, max_len=8, beam=3)
    assert seen and set(seen) == {_PackedForward}  # decoding packed by itself
    hook.remove()
    with packed_linears(model, enabled=False):
        plain_g = greedy_search(model, src, 1, 2, max_len=8)
        plain_b = beam_search(model, src, 1, 2, max_len=8, beam=3)
    assert packed_g.tokens == plain_g.tokens and packed_b.tokens == plain_b.tokens
    assert packed_g.scores == pytest.approx(plain_g.scores, abs=1e-4)
    assert packed_b.scores == pytest.approx(plain_b.scores, abs=1e-4)
    assert all("forward" not in m.__dict__ for m in model.modules() if isinstance(m, nn.Linear))
    assert model.output not in _PACKED


@pytest.mark.parametrize("fused", [True, False])
def test_blocks_after_an_optimiser_step_see_the_new_weights(fused):
    """The fused AdamW kernel updates weights in place without moving their version
    counter: packed copies must not outlive the block that made them."""
    torch.manual_seed(0)
    layer = nn.Linear(16, 16)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, fused=fused)
    x = torch.randn(4, 16)
    with torch.no_grad(), packed_linears(layer):
        before = layer(x)
    layer(x).square().sum().backward()
    opt.step()
    with torch.no_grad(), packed_linears(layer):
        after = layer(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


def test_bf16_autocast_packs_the_cast_weight_once_and_matches_autocast():
    torch.manual_seed(0)
    layer = nn.Linear(32, 48)
    x = torch.randn(6, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = layer(x)
        with packed_linears(layer):
            got = layer(x)
            got_bf16_in = layer(x.bfloat16())
            assert set(_PACKED[layer]) == {torch.bfloat16}
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got_bf16_in, want, rtol=2e-2, atol=2e-2)


def test_bf16_weights_pack_without_autocast():
    layer = nn.Linear(16, 16).bfloat16()
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    with torch.no_grad():
        want = layer(x)
        with packed_linears(layer):
            got = layer(x)
            with pytest.raises(RuntimeError):  # F.linear refuses mixed dtypes: so does the packed path
                layer(x.float())
            assert set(_PACKED[layer]) == {torch.bfloat16}
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
