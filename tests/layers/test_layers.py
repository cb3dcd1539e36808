import math

import pytest
import torch

from loopformer.layers import (
    KVCache, LevelSignals, SelfAttention, apply_rotary, build_mask, sinusoid_table,
    universal_timing_table,
)
from loopformer.layers.positions import RotaryPositions


def test_universal_timing_matches_the_formula_by_hand():
    d = 6
    table = universal_timing_table(max_len=4, n_levels=3, dim=d)
    assert table.shape == (3, 4, d)
    # level index 1 (t = 2), position index 2 (p = 3), dimension index 3 (m = 4, even -> sin)
    denom = 10000 ** (2 * 4 / d)
    assert table[1, 2, 3].item() == pytest.approx(math.sin(3 / denom) + math.sin(2 / denom), abs=1e-6)
    # dimension index 0 (m = 1, odd -> cos)
    denom = 10000 ** (2 * 1 / d)
    assert table[0, 0, 0].item() == pytest.approx(math.cos(1 / denom) + math.cos(1 / denom), abs=1e-6)


def test_sinusoid_table_values():
    t = sinusoid_table(5, 4)
    assert t[3, 0].item() == pytest.approx(math.sin(3.0))
    assert t[3, 1].item() == pytest.approx(math.cos(3.0))
    assert t[3, 2].item() == pytest.approx(math.sin(3 / 10000 ** 0.5), abs=1e-6)


def test_rotary_scores_depend_only_on_relative_position():
    rope = RotaryPositions(32, 8)
    q = torch.randn(1, 1, 1, 8)
    k = torch.randn(1, 1, 1, 8)

    def score(i, j):
        cq, sq = rope(1, i)
        ck, sk = rope(1, j)
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum().item()

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_partial_rotary_leaves_the_rest_untouched():
    rope = RotaryPositions(8, 4)
    x = torch.randn(2, 3, 5, 16)
    out = apply_rotary(x, *rope(5, 2))
    assert torch.equal(out[..., 4:], x[..., 4:])
    assert not torch.allclose(out[..., :4], x[..., :4])


def _manual_attention(attn, x, allowed):
    b, t, d = x.shape
    q, k, v = attn.qkv_proj(x).chunk(3, -1)
    h = attn.n_heads
    q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    s = s.masked_fill(~allowed, float("-inf"))
    return attn.out_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))


def test_attention_masks_against_a_manual_softmax():
    attn = SelfAttention(16, 4, bias=True).eval()
    x = torch.randn(2, 5, 16)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    with torch.no_grad():
        got = attn(x, build_mask(5, 5, pad, False, x.device))
        want = _manual_attention(attn, x, (~pad)[:, None, None, :])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        got = attn(x, build_mask(5, 5, None, True, x.device))
        torch.testing.assert_close(got, _manual_attention(attn, x, causal), atol=1e-5, rtol=0)


def test_probe_path_equals_sdpa_path():
    attn = SelfAttention(16, 4, bias=False).eval()
    x = torch.randn(2, 6, 16)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, :2] = True
    seen = []
    for mask in (build_mask(6, 6, None, True, x.device), build_mask(6, 6, pad, True, x.device),
                 build_mask(6, 6, pad, False, x.device)):
        with torch.no_grad():
            fast = attn(x, mask)
            slow = attn(x, mask, probe=seen.append)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    assert all(torch.allclose(w.sum(-1), torch.ones(())) for w in seen)


def test_left_padded_rows_stay_finite():
    mask = build_mask(4, 4, torch.tensor([[True, True, False, False]]), True, torch.device("cpu"))
    attn = SelfAttention(8, 2, bias=False)
    out = attn(torch.randn(1, 4, 8), mask)
    assert torch.isfinite(out).all()


def test_kv_cache_keys_and_reorder():
    cache = KVCache()
    k = torch.randn(2, 1, 3, 4)
    cache.append((0, 0), k, k)
    cache.append((1, 0), k + 1, k + 1)
    full, _ = cache.append((0, 0), k, k)
    assert full.shape[2] == 6 and len(cache) == 2
    cache.reorder(torch.tensor([1, 1]))
    assert torch.equal(cache.get((1, 0))[0][0], (k + 1)[1])


def test_static_and_subset_signals():
    sig = LevelSignals(3, 8, 2, qkv_kinds=("q", "v"), ffn=False, mode="static")
    assert sig.ffn_static is None
    with torch.no_grad():
        sig.qkv_static.normal_()
    proj = torch.zeros(2, 5, 24)
    q, k, v = sig.split_qkv(proj, 1, torch.randn(2, 5, 8))
    assert torch.count_nonzero(k) == 0
    assert torch.allclose(q, sig.qkv_static[1, 0].expand_as(q))
    assert torch.allclose(v, sig.qkv_static[1, 1].expand_as(v))


def test_dynamic_subset_adds_only_selected_kinds():
    sig = LevelSignals(2, 8, 2, qkv_kinds=("k",), ffn=True)
    with torch.no_grad():
        sig.qkv_up.normal_()
        sig.qkv_down.normal_()
    proj = torch.randn(3, 24)
    x = torch.randn(3, 8)
    q, k, v = sig.split_qkv(proj, 0, x)
    assert torch.equal(q, proj[:, :8]) and torch.equal(v, proj[:, 16:])
    expected = proj[:, 8:16] + (x @ sig.qkv_down[0, 0].T) @ sig.qkv_up[0, 0]
    torch.testing.assert_close(k, expected)


def test_kv_cache_grows_in_place_and_reorders_like_concatenation():
    torch.manual_seed(0)
    cache, ref = KVCache(), []
    for step in range(40):  # crosses the initial room of 16 twice
        k = torch.randn(3, 2, 1 if step else 5, 4)
        full_k, full_v = cache.append("self", k, -k)
        ref.append(k)
        assert torch.equal(full_k, torch.cat(ref, 2)) and torch.equal(full_v, -torch.cat(ref, 2))
        if step == 20:
            index = torch.tensor([2, 0, 0])
            cache.reorder(index)
            ref = [r.index_select(0, index) for r in ref]
    base = cache.get("self")[0].untyped_storage().data_ptr()
    cache.append("self", torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4))
    assert cache.get("self")[0].untyped_storage().data_ptr() == base  # no copy while there is room
    assert cache.get("self")[0].shape[2] == sum(r.shape[2] for r in ref) + 1


def test_kv_cache_stores_cross_attention_entries_contiguous():
    """Head-split views of a projection would be copied by every decoding step's matmul."""
    cache = KVCache()
    kv = torch.randn(2, 7, 2 * 8)
    k, v = (t.view(2, 7, 2, 4).transpose(1, 2) for t in kv.chunk(2, -1))
    assert not k.is_contiguous()
    cache.put("cross", k, v)
    got_k, got_v = cache.get("cross")
    assert got_k.is_contiguous() and got_v.is_contiguous()
    assert torch.equal(got_k, k) and torch.equal(got_v, v)


def _filled_cache(rows=4):
    cache = KVCache()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        k = torch.randn(rows, 2, 1, 3, generator=g)
        cache.append("self", k, 2 * k)
    cache.put("cross", torch.randn(rows // 2, 2, 6, 3, generator=g), torch.randn(rows // 2, 2, 6, 3, generator=g))
    cache.padding_mask = torch.tensor([[False] * 5, [True] + [False] * 4] * (rows // 2))
    return cache


@pytest.mark.parametrize("index", [[0, 0, 2, 2], [0, 1, 2, 3], [1, 2, 0, 3], [3, 3, 1, 1]])
def test_kv_cache_moves_rows_in_place_when_it_can(index):
    """Beam search moves a few rows whose sources stay put: only those are copied, in
    place; any other index (rows trading places) takes the gathering path. Both agree."""
    index = torch.tensor(index)
    cache, before = _filled_cache(), _filled_cache()
    storage = cache.get("self")[0].untyped_storage().data_ptr()
    cache.reorder(index, fixed=False)
    k, v = cache.get("self")
    ref_k = before.get("self")[0].index_select(0, index)
    assert torch.equal(k, ref_k) and torch.equal(v, 2 * ref_k)
    assert torch.equal(cache.padding_mask, before.padding_mask.index_select(0, index))
    assert torch.equal(cache.get("cross")[0], before.get("cross")[0])  # fixed=False: untouched
    in_place = index.tolist() in ([0, 0, 2, 2], [0, 1, 2, 3])
    assert (cache.get("self")[0].untyped_storage().data_ptr() == storage) == in_place


def test_kv_cache_fixed_entries_follow_their_own_index():
    cache, before = _filled_cache(), _filled_cache()
    cache.reorder(torch.tensor([2, 3]), fixed=torch.tensor([1]))  # the second sentence's two beams
    assert torch.equal(cache.get("self")[0], before.get("self")[0][2:])
    assert torch.equal(cache.get("cross")[1], before.get("cross")[1][1:])
