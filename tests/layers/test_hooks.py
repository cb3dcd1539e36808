"""The shared layer asks its hooks, and knows nothing of RingFormer: with the identity hooks
it computes a plain Transformer layer, and every hook point is consulted."""

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from loopformer.layers import NO_HOOKS, LayerHooks, LayerSpec, SharedInputs, TransformerLayer
from loopformer.layers.masks import AttnMask

BLOCK = Path(__file__).resolve().parents[2] / "src" / "loopformer" / "layers" / "block.py"


def test_the_layer_module_has_no_reference_to_signals():
    source = BLOCK.read_text()
    assert "signal" not in source.lower()  # nor placement, signal input or FFN-signal position
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "signals" not in imported and not any("models" in (m or "") for m in imported)


def _attention(attn, x, qkv_parts, mask_causal):
    b, t, d = x.shape
    q, k, v = (z.view(b, -1, attn.n_heads, d // attn.n_heads).transpose(1, 2) for z in qkv_parts)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=mask_causal)
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, d))


def plain_layer(layer: TransformerLayer, h, memory=None, causal=False):
    """A plain Transformer layer written out with the layer's weights (eval mode)."""
    n = layer.norms if len(layer.norms) > 1 else [layer.norms[0]] * layer.spec.n_sublayers
    sa = layer.self_attn

    def self_attn(x):
        return _attention(sa, x, sa.qkv_proj(x).chunk(3, -1), causal)

    def cross(x):
        ca = layer.cross_attn
        q = ca.q_proj(x)
        k, v = ca.kv_proj(memory).chunk(2, -1)
        b, t, d = q.shape
        q, k, v = (z.view(b, -1, ca.n_heads, d // ca.n_heads).transpose(1, 2) for z in (q, k, v))
        return ca.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))

    if layer.spec.norm_style == "post":
        h = n[0](h + self_attn(h))
        if layer.cross_attn is not None:
            h = n[1](h + cross(h))
        return n[-1](h + layer.ffn(h))
    if layer.spec.parallel:
        return h + self_attn(n[0](h)) + layer.ffn(n[-1](h))
    h = h + self_attn(n[0](h))
    if layer.cross_attn is not None:
        h = h + cross(n[1](h))
    return h + layer.ffn(n[-1](h))


SPECS = {
    "post": dict(norm_style="post"),
    "post-cross": dict(norm_style="post", cross=True),
    "post-shared-norm": dict(norm_style="post", shared_sublayer_norm=True),
    "pre": dict(norm_style="pre", bias=True),
    "pre-cross": dict(norm_style="pre", cross=True),
    "parallel": dict(norm_style="pre", parallel=True),
}


@pytest.mark.parametrize("name", SPECS)
def test_identity_hooks_compute_a_plain_transformer_layer(name):
    from loopformer.models.levels import LevelAdapter

    layer = TransformerLayer(LayerSpec(dim=16, n_heads=2, d_ff=32, dropout=0.1, **SPECS[name])).eval()
    h, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    shared = SharedInputs(self_mask=AttnMask(is_causal=True), memory=memory)
    with torch.no_grad():
        want = plain_layer(layer, h, memory, causal=True)
        for hooks in (None, NO_HOOKS, LayerHooks(), LevelAdapter().hooks(3, 1)):
            torch.testing.assert_close(layer(h, hooks, shared, "k"), want, rtol=0, atol=1e-6)


class Recording(LayerHooks):
    """Hooks that note which hook points the layer consulted, and split the projections
    themselves (the plain way), so that the layer uses what they return."""

    def __init__(self):
        self.seen = []

    def norms(self, own):
        self.seen.append("norms")
        return own

    def qkv_split(self, raw, normed, attention):
        self.seen.append("qkv")
        assert attention.qkv_proj.weight.shape == (3 * raw.shape[-1], normed.shape[-1])
        return lambda proj: proj.chunk(3, dim=-1)

    def ffn_input(self, h, norm):
        self.seen.append("ffn")
        return super().ffn_input(h, norm)

    def cross_q_split(self, x):
        self.seen.append("cross_q")
        return lambda proj: (proj,)

    def cross_kv_split(self, memory):
        self.seen.append("cross_kv")
        return lambda proj: proj.chunk(2, dim=-1)


@pytest.mark.parametrize("style", ["post", "pre"])
def test_the_layer_consults_every_hook_point(style):
    layer = TransformerLayer(LayerSpec(dim=16, n_heads=2, d_ff=32, cross=True, norm_style=style)).eval()
    hooks = Recording()
    h, shared = torch.randn(1, 3, 16), SharedInputs(memory=torch.randn(1, 4, 16))
    with torch.no_grad():
        assert torch.equal(layer(h, hooks, shared, "k"), layer(h, None, shared, "k"))
    assert sorted(hooks.seen) == ["cross_kv", "cross_q", "ffn", "norms", "qkv"]


def test_what_a_hook_adds_to_q_k_v_reaches_the_attention():
    """Values that are all 1 make attention return 1 whatever the weights: out_proj(1)."""

    class OnesV(LayerHooks):
        def qkv_split(self, raw, normed, attention):
            return lambda proj: (*proj.chunk(3, dim=-1)[:2], torch.ones_like(proj[..., :16]))

    layer = TransformerLayer(LayerSpec(dim=16, n_heads=2, d_ff=32, norm_style="pre", has_ffn=False)).eval()
    h = torch.randn(2, 3, 16)
    with torch.no_grad():
        got = layer(h, OnesV(), SharedInputs(), "k")
        torch.testing.assert_close(got, h + layer.self_attn.out_proj(torch.ones(2, 3, 16)), rtol=0, atol=1e-6)


def test_hooks_change_what_they_are_asked_for():
    """A hook's answer is used: an FFN input of zeros leaves only the FFN's biases."""

    class ZeroFFNInput(LayerHooks):
        def ffn_input(self, h, norm):
            return torch.zeros_like(h)

    layer = TransformerLayer(LayerSpec(dim=16, n_heads=2, d_ff=32, norm_style="pre", bias=True)).eval()
    h = torch.randn(2, 3, 16)
    with torch.no_grad():
        got = layer(h, ZeroFFNInput(), SharedInputs(), "k")
        attn = layer.self_attn(layer.norms[0](h), AttnMask())
        torch.testing.assert_close(got, h + attn + layer.ffn(torch.zeros_like(h)), rtol=0, atol=1e-6)


def test_a_layer_without_norms_refuses_identity_hooks():
    layer = TransformerLayer(LayerSpec(dim=16, n_heads=2, d_ff=32, own_norms=False))
    with pytest.raises(RuntimeError, match="per-level norms"):
        layer(torch.randn(1, 2, 16), None, SharedInputs(), "k")
