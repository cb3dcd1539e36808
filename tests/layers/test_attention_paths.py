"""The explicit short-sequence attention path (CPU, bf16) against SDPA."""

import pytest
import torch
import torch.nn.functional as F

from loopformer.layers.attention import EXPLICIT_MAX_KEYS, attend
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
