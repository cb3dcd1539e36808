"""Trainer: exact resume, non-finite loss handling, schedule, and a tiny model that really learns."""

import json

import pytest
import torch

from loopformer import load_model
from loopformer.data.multi30k import load_multi30k
from loopformer.data.tokenizer import BPETokenizer
from loopformer.models import build_model
from loopformer.registry import get_config
from loopformer.tasks.translation import TranslationConfig, TranslationTask
from loopformer.train import TrainConfig, Trainer, TrainingError, lr_at


@pytest.fixture(scope="module")
def pairs():
    src, tgt = load_multi30k("train")
    return src[:32], tgt[:32]


@pytest.fixture(scope="module")
def tok(pairs):
    return BPETokenizer.train(pairs[0] + pairs[1], vocab_size=400, min_frequency=1)


def make_trainer(out, pairs, tok, max_steps, d=32, dropout=0.1, **train_kw):
    task = TranslationTask(
        TranslationConfig(batch_tokens=240, val_bleu_sentences=8, eval_batch_sentences=16, val_beam=1),
        tok, splits={"train": pairs, "val": (pairs[0][:8], pairs[1][:8])},
    )
    torch.manual_seed(0)
    cfg = get_config("ringformer-mt-small", d_model=d, n_heads=2, d_ff=2 * d, n_layers=2, signal_rank=4,
                     dropout=dropout, **task.model_overrides())
    model = build_model(cfg)
    train = TrainConfig(**{**dict(max_steps=max_steps, eval_every=1000, log_every=1, progress=False, lr=2e-3,
                                  warmup_steps=2, seed=0), **train_kw})
    return Trainer(task, model, train, out)


def test_resume_after_interrupt_is_exact(tmp_path, pairs, tok):
    full = make_trainer(tmp_path / "a", pairs, tok, max_steps=14)
    full.fit()
    part = make_trainer(tmp_path / "b", pairs, tok, max_steps=6)
    part.fit()
    assert part.epoch == 0 < full.epoch  # the uninterrupted run crossed an epoch boundary after step 6
    resumed = make_trainer(tmp_path / "b", pairs, tok, max_steps=14)
    assert resumed.resume()
    assert resumed.step == 6
    resumed.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    # the logged training losses after the resume point match too
    def losses(folder):
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if r["kind"] == "train"}
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert all(la[s] == lb[s] for s in range(1, 15))


def test_checkpoints_are_complete_and_loadable(tmp_path, pairs, tok):
    t = make_trainer(tmp_path, pairs, tok, max_steps=3, eval_every=2)
    t.fit()
    for which in ("last", "best"):
        folder = tmp_path / which
        assert load_model(folder).config == t.model.config
        assert (folder / "tokenizer.json").is_file()
    assert (tmp_path / "last" / "trainer_state.json").is_file()
    assert not any(p.name.endswith((".tmp", ".old")) for p in tmp_path.iterdir())


def test_keep_last_keeps_resumable_snapshots(tmp_path, pairs, tok):
    t = make_trainer(tmp_path, pairs, tok, max_steps=8, eval_every=2, keep_last=3)
    t.fit()
    snaps = sorted(p.name for p in tmp_path.glob("step-*"))
    assert snaps == ["step-00000004", "step-00000006", "step-00000008"]  # the 3 latest states (8 = last)
    assert load_model(tmp_path / "step-00000006").config == t.model.config
    assert (tmp_path / "step-00000006" / "trainer_state.json").is_file()


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path, pairs, tok, monkeypatch):
    t = make_trainer(tmp_path, pairs, tok, max_steps=10, eval_every=2)
    real_loss = t.task.loss
    calls = {"n": 0}

    def bad_loss(model, batch, ls):
        calls["n"] += 1
        loss, n = real_loss(model, batch, ls)
        return (loss * float("nan") if calls["n"] >= 4 else loss), n

    monkeypatch.setattr(t.task, "loss", bad_loss)
    with pytest.raises(TrainingError, match="non-finite loss at step 3"):
        t.fit()
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    state = json.loads((tmp_path / "last" / "trainer_state.json").read_text())
    assert state["step"] == 2
    assert load_model(tmp_path / "last") is not None
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


def test_nonfinite_skip_mode_keeps_going(tmp_path, pairs, tok, monkeypatch):
    t = make_trainer(tmp_path, pairs, tok, max_steps=4, nonfinite="skip")
    real_loss = t.task.loss
    calls = {"n": 0}

    def flaky(model, batch, ls):
        calls["n"] += 1
        loss, n = real_loss(model, batch, ls)
        return (loss * float("nan") if calls["n"] == 2 else loss), n

    monkeypatch.setattr(t.task, "loss", flaky)
    t.fit()
    assert t.step == 4
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_lr_schedules():
    inv = TrainConfig(lr=1.0, warmup_steps=4, schedule="inverse_sqrt")
    assert [round(lr_at(inv, s), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(inv, 15) == pytest.approx((4 / 16) ** 0.5)
    cos = TrainConfig(lr=1.0, warmup_steps=0, schedule="cosine", max_steps=10, min_lr_ratio=0.1)
    assert lr_at(cos, 9) == pytest.approx(0.1)
    assert lr_at(cos, 0) > lr_at(cos, 5) > lr_at(cos, 9)


def test_tiny_model_overfits_32_pairs(tmp_path, pairs, tok):
    t = make_trainer(tmp_path, pairs, tok, max_steps=320, d=64, dropout=0.0, lr=3e-3, warmup_steps=30,
                     schedule="constant", label_smoothing=0.0)
    t.task.cfg.batch_tokens = 4096  # the whole set in every batch
    t.fit()
    t.model.eval()
    hyps = t.task.translate(t.model, pairs[0], beam=1)
    from loopformer.tasks.translation import bleu

    score, _ = bleu(hyps, pairs[1])
    assert score.score > 90, hyps[:3]


def test_accumulation_matches_one_big_batch(tmp_path, pairs, tok):
    """Two accumulated half-batches give the update of their union (losses are token-weighted)."""
    big = make_trainer(tmp_path / "big", pairs, tok, max_steps=1, dropout=0.0, label_smoothing=0.0)
    acc = make_trainer(tmp_path / "acc", pairs, tok, max_steps=1, dropout=0.0, label_smoothing=0.0, accum_steps=2)
    plan = acc.task.batch_plan(0, 0)
    union = plan[0] + plan[1]
    big.task.batch_plan = lambda epoch, seed: [union]
    acc.task.batch_plan = lambda epoch, seed: [plan[0], plan[1]]
    big.fit()
    acc.fit()
    for (name, a), b in zip(big.model.named_parameters(), acc.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert big.tokens_seen == acc.tokens_seen


def test_bf16_autocast_trains(tmp_path, pairs, tok):
    t = make_trainer(tmp_path, pairs, tok, max_steps=2, bf16=True)
    t.fit()
    assert t.step == 2 and all(torch.isfinite(p).all() for p in t.model.parameters())


def test_compiled_layers_train_like_eager(tmp_path, pairs, tok):
    """``compile=true`` (regional torch.compile) follows the eager run's losses."""
    eager = make_trainer(tmp_path / "e", pairs, tok, max_steps=3, dropout=0.0)
    eager.fit()
    fast = make_trainer(tmp_path / "c", pairs, tok, max_steps=3, dropout=0.0, compile=True)
    fast.fit()
    for (name, a), b in zip(eager.model.state_dict().items(), fast.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
    assert set(eager.model.state_dict()) == set(fast.model.state_dict())  # checkpoints keep their keys
