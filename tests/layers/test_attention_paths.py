"""The explicit short-sequence attention path (CPU, bf16) against SDPA."""

import pytest
import torch
import torch.nn.functional as F

from loopformer.layers.attention import EXPLICIT_MAX_KEYS, CrossAttention, attend
from loopformer.layers.cache import KVCache
from loopformer.layers.masks import AttnMask, build_mask


def _qkv(t, s, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(3, 2, t, 16, generator=g)
    k, v = torch.randn(3, 2, s, 16, generator=g), torch.randn(3, 2, s, 16, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "causal-padding", "decode"])
def test_explicit_bf16_attention_matches_fp32_sdpa(kind):
    t, s = (1, 12) if kind == "decode" else (12, 12)
    pad = torch.zeros(3, s, dtype=torch.bool)
    pad[0, -4:] = True
    pad[2, -1:] = True
    mask = {
        "none": AttnMask(),
        "causal": build_mask(t, s, None, True, "cpu"),
        "padding": build_mask(t, s, pad, False, "cpu"),
        "causal-padding": build_mask(t, s, pad, True, "cpu"),
        "decode": build_mask(t, s, pad, True, "cpu"),
    }[kind]
    q, k, v = _qkv(t, s, torch.bfloat16)
    fast = attend(q, k, v, mask, 0.0)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask.mask,
                                         is_causal=mask.is_causal)
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), ref, rtol=0.03, atol=0.03)


def test_long_keys_and_fp32_keep_sdpa(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    attend(*_qkv(4, 4, torch.float32), AttnMask(), 0.0)
    attend(*_qkv(4, EXPLICIT_MAX_KEYS + 1, torch.bfloat16), AttnMask(), 0.0)
    assert len(calls) == 2
    attend(*_qkv(4, 4, torch.bfloat16), AttnMask(), 0.0)
    assert len(calls) == 2


def test_probe_sees_weights_that_sum_to_one():
    seen = []
    q, k, v = _qkv(5, 5, torch.float32)
    out = attend(q, k, v, AttnMask(is_causal=True), 0.0, probe=seen.append)
    w = seen[0]
    assert w.shape == (3, 2, 5, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 5))
    assert torch.all(w.triu(1) == 0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-5, atol=1e-5)


def _cross_inputs(dtype, groups=3, rows=2, s=9, d=16):
    g = torch.Generator().manual_seed(1)
    attn = CrossAttention(d, 2, bias=True).to(dtype)
    memory = torch.randn(rows, s, d, generator=g).to(dtype)
    x = torch.randn(rows * groups, 2, d, generator=g).to(dtype)
    pad = torch.zeros(rows, s, dtype=torch.bool)
    pad[0, -3:] = True
    return attn, memory, x, pad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_cross_attention_equals_attention_on_repeated_memory(dtype):
    """Beam search hands the decoder one encoder row per sentence for all its beams."""
    attn, memory, x, pad = _cross_inputs(dtype)
    seen, seen_ref = [], []
    mask = AttnMask(mask=(~pad)[:, None, None, :])
    grouped = attn(x, memory, mask, probe=seen.append)
    wide = memory.repeat_interleave(3, 0)
    ref = attn(x, wide, AttnMask(mask=(~pad.repeat_interleave(3, 0))[:, None, None, :]), probe=seen_ref.append)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(grouped, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(seen[0], seen_ref[0], rtol=tol, atol=tol)  # the probe sees per-row weights
    assert seen[0].shape == (6, 2, 2, 9)


def test_grouped_cross_attention_through_the_cache_and_uneven_rows():
    attn, memory, x, pad = _cross_inputs(torch.float32)
    mask = AttnMask(mask=(~pad)[:, None, None, :])
    cache = KVCache()
    attn(x[::3], memory, mask, cache=cache, cache_key="c")  # one row per sentence fills the cache
    torch.testing.assert_close(attn(x, memory, mask, cache=cache, cache_key="c"), attn(x, memory, mask))
    with pytest.raises(ValueError, match="split evenly"):
        attn(x[:5], memory, mask)


def test_explicit_attention_reads_a_cache_view_in_place_with_the_same_result():
    """A cache hands out views of longer buffers; the explicit path multiplies them as
    the left operand (no copy) and must give what it gives on a contiguous copy."""
    q, k, v = _qkv(1, 20, torch.bfloat16)
    k_view, v_view = k[:, :, :13], v[:, :, :13]
    assert not k_view.is_contiguous()
    got = attend(q, k_view, v_view, AttnMask(), 0.0)
    ref = attend(q, k_view.contiguous(), v_view.contiguous(), AttnMask(), 0.0)
    torch.testing.assert_close(got, ref, rtol=1e-2, atol=1e-2)
