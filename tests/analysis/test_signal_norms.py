"""Signal-to-projection norm ratios of RingFormer's level signals."""

import torch

from loopformer import create_model
from loopformer.analysis.signal_norms import record_signal_norms
from loopformer.layers.signals import LevelSignals

TINY = dict(d_model=32, n_heads=2, d_ff=64, n_layers=2, vocab_size=20, dropout=0.0)


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randint(4, 20, (3, 7), generator=g), torch.randint(4, 20, (3, 5), generator=g)


def test_fresh_signals_are_zero_and_every_kind_is_reported():
    model = create_model("ringformer-mt-small", **TINY).eval()
    with record_signal_norms(model) as norms:
        model(*_inputs())
    rows = norms.table()
    kinds = {(r["module"].split(".")[0], r["level"], r["kind"]) for r in rows}
    assert {k for _, _, k in kinds} == {"q", "k", "v", "ffn"}
    assert {lvl for _, lvl, _ in kinds} == {0, 1}
    assert all(r["ratio"] == 0.0 for r in rows)  # up starts at zero


def test_ratio_matches_a_hand_computation():
    torch.manual_seed(0)
    holder = torch.nn.Module()
    holder.sig = LevelSignals(n_levels=2, dim=8, rank=2, qkv_kinds=("q", "v"), ffn=True)
    for name in ("qkv_up", "ffn_up", "qkv_down", "ffn_down"):
        torch.nn.init.normal_(getattr(holder.sig, name), std=0.5)
    x, proj, base = torch.randn(5, 8), torch.randn(5, 24), torch.randn(5, 8)
    with record_signal_norms(holder) as norms:
        q, k, v = holder.sig.split_qkv(proj, level=1, x=x)
        holder.sig.add_ffn(base, 1, x)
    assert "split_qkv" not in vars(holder.sig) and "add_ffn" not in vars(holder.sig)  # unwrapped again
    ratios = {r["kind"]: r["ratio"] for r in norms.table()}
    s_q = (x @ holder.sig.qkv_down[1, 0].T) @ holder.sig.qkv_up[1, 0]
    s_v = (x @ holder.sig.qkv_down[1, 1].T) @ holder.sig.qkv_up[1, 1]
    s_f = (x @ holder.sig.ffn_down[1].T) @ holder.sig.ffn_up[1]
    assert abs(ratios["q"] - s_q.norm(dim=-1).sum() / proj[:, :8].norm(dim=-1).sum()) < 1e-5
    assert abs(ratios["v"] - s_v.norm(dim=-1).sum() / proj[:, 16:].norm(dim=-1).sum()) < 1e-5
    assert abs(ratios["ffn"] - s_f.norm(dim=-1).sum() / base.norm(dim=-1).sum()) < 1e-5
    assert torch.allclose(q, proj[:, :8] + s_q, atol=1e-5) and torch.equal(k, proj[:, 8:16])


def test_recording_does_not_change_outputs():
    torch.manual_seed(0)
    model = create_model("ringformer-mt-small", **TINY).eval()
    for mod in model.modules():
        if isinstance(mod, LevelSignals):
            torch.nn.init.normal_(mod.qkv_up, std=0.3)
    src, tgt = _inputs()
    before = model(src, tgt)
    with record_signal_norms(model) as norms:
        after = model(src, tgt)
    assert torch.equal(before, after)
    assert all(r["ratio"] > 0 for r in norms.table() if r["kind"] != "ffn")


def test_static_signals_are_not_measured():
    model = create_model("ringformer-mt-small", signal_mode="static", **TINY).eval()
    with record_signal_norms(model) as norms:
        model(*_inputs())
    assert norms.table() == []


def test_a_signal_below_float_resolution_of_its_base_is_still_measured():
    # ``base + s`` rounds back to ``base`` when ||s|| is ~1e-12 of it; the ratio must not read 0
    torch.manual_seed(0)
    holder = torch.nn.Module()
    holder.sig = LevelSignals(n_levels=1, dim=8, rank=2, qkv_kinds=("q", "k", "v"), ffn=True)
    for name in ("qkv_up", "ffn_up", "qkv_down", "ffn_down"):
        torch.nn.init.normal_(getattr(holder.sig, name), std=1e-6)
    x, proj, base = torch.randn(5, 8), torch.randn(5, 24) + 10.0, torch.randn(5, 8) + 10.0
    with record_signal_norms(holder) as norms:
        holder.sig.split_qkv(proj, level=0, x=x)
        holder.sig.add_ffn(base, 0, x)
    s_f = (x @ holder.sig.ffn_down[0].T) @ holder.sig.ffn_up[0]
    ratios = {r["kind"]: r["ratio"] for r in norms.table()}
    assert all(0 < r < 1e-9 for r in ratios.values())
    expected = (s_f.norm(dim=-1).sum() / base.norm(dim=-1).sum()).item()
    assert abs(ratios["ffn"] / expected - 1) < 1e-4
