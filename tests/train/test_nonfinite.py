"""Non-finite numbers and full disks: skipped steps are bounded and timed, no checkpoint is
ever written from broken weights, and a failed write is one line with the old checkpoint kept."""

import errno
import json
import math
import os
import signal

import pytest
import torch

from loopformer import load_model
from loopformer.models import build_model
from loopformer.registry import get_config
from loopformer.tasks.language import LanguageConfig, LanguageTask
from loopformer.train import TrainConfig, Trainer, TrainingError

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 20


def make_trainer(out, max_steps=6, **train_kw):
    task = LanguageTask.prepare(LanguageConfig(context=64, batch_size=2, eval_windows=2), TEXT)
    torch.manual_seed(0)
    cfg = get_config("looped-lm-char", d_model=32, n_heads=2, d_ff=64, **task.model_overrides())
    train = TrainConfig(**{**dict(max_steps=max_steps, eval_every=1000, log_every=1, progress=False, lr=1e-3,
                                  warmup_steps=0, seed=0), **train_kw})
    return Trainer(task, build_model(cfg), train, out)


def nan_loss_from(t, first_call, limit=200):
    """Make the loss NaN from the ``first_call``-th call on; fail (never hang) past ``limit`` calls."""
    real, calls = t.task.loss, {"n": 0}

    def loss(model, batch, ls):
        calls["n"] += 1
        if calls["n"] > limit:
            raise RuntimeError("the run never ends")
        value, n = real(model, batch, ls)
        return (value * float("nan") if calls["n"] >= first_call else value), n

    t.task.loss = loss


def break_weights_at(t, update, then=None):
    """Fill every parameter with NaN right after optimizer update number ``update``."""
    real, calls = t.opt.step, {"n": 0}

    def step(*args, **kw):
        out = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == update:
            with torch.no_grad():
                for p in t.model.parameters():
                    p.fill_(float("nan"))
            if then is not None:
                then()
        return out

    t.opt.step = step


def finite(folder) -> bool:
    return all(torch.isfinite(v).all() for v in load_model(folder).state_dict().values())


def test_consecutive_skips_are_bounded(tmp_path):
    t = make_trainer(tmp_path, max_steps=5, nonfinite="skip", max_skipped_steps=3)
    nan_loss_from(t, 2)
    with pytest.raises(TrainingError, match="3 steps in a row had a non-finite loss.*no checkpoint was saved"):
        t.fit()
    assert t.step == 1 and t.train_seconds > 0
    assert not (tmp_path / "last").exists()


def test_skipped_steps_count_toward_the_time_budget(tmp_path):
    t = make_trainer(tmp_path, max_steps=5, nonfinite="skip", max_skipped_steps=10**6, max_minutes=0.002)
    nan_loss_from(t, 1, limit=5_000)
    summary = t.fit()  # ends by the clock although no step succeeds
    assert summary["step"] == 0 and summary["train_seconds"] >= 0.12
    assert finite(tmp_path / "last")


def test_nonfinite_gradient_norm_is_a_nonfinite_step(tmp_path, monkeypatch):
    t = make_trainer(tmp_path, max_steps=4)
    real, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def clip(params, max_norm, *args, **kw):
        calls["n"] += 1
        norm = real(params, max_norm, *args, **kw)
        return torch.tensor(float("inf")) if calls["n"] == 2 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    with pytest.raises(TrainingError, match="non-finite gradient norm at step 1"):
        t.fit()
    assert t.step == 1


def test_weights_that_break_on_an_eval_step_are_never_saved(tmp_path):
    t = make_trainer(tmp_path, max_steps=6, eval_every=1)
    break_weights_at(t, 3)
    with pytest.raises(TrainingError) as info:
        t.fit()
    msg = str(info.value)
    assert "step 3" in msg and f"the last good checkpoint is in {tmp_path / 'last'}" in msg
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 2
    assert finite(tmp_path / "last") and finite(tmp_path / "best")
    assert math.isfinite(t.best_score)


def test_a_nonfinite_score_never_becomes_the_best(tmp_path):
    t = make_trainer(tmp_path, max_steps=2, eval_every=1)
    scores = iter([float("nan"), -2.0, -3.0])
    real = t.task.evaluate

    def evaluate(model):
        return {**real(model), "score": next(scores)}

    t.task.evaluate = evaluate
    with pytest.raises(TrainingError, match="validation score is not finite at step 1.*no checkpoint was saved"):
        t.fit()
    assert t.best_score is None and not (tmp_path / "best").exists() and not (tmp_path / "last").exists()


def test_skip_mode_stops_once_the_weights_are_broken(tmp_path):
    t = make_trainer(tmp_path, max_steps=10, nonfinite="skip")
    break_weights_at(t, 2)
    with pytest.raises(TrainingError, match="non-finite in one of steps 1-2, so skipping steps cannot recover; "
                                            "no checkpoint was saved"):
        t.fit()
    assert not (tmp_path / "last").exists()


def test_sigterm_with_broken_weights_saves_nothing(tmp_path):
    t = make_trainer(tmp_path, max_steps=10, eval_every=2)
    break_weights_at(t, 3, then=lambda: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(TrainingError, match="interrupted at step 3; the weights became non-finite in step 3, so "
                                            "nothing was saved; the last good checkpoint is in"):
        t.fit()
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 2
    assert finite(tmp_path / "last")


def test_full_disk_while_writing_last_keeps_the_previous_one(tmp_path, monkeypatch):
    import loopformer.checkpoint as checkpoint
    import loopformer.train.state as state

    real = checkpoint.atomic_write_bytes

    def full(path, data):
        if path.parent.name == "last.tmp" and (tmp_path / "last").exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    monkeypatch.setattr(state, "atomic_write_bytes", full)
    t = make_trainer(tmp_path, max_steps=4, eval_every=2)
    with pytest.raises(TrainingError, match=f"cannot write {tmp_path / 'last'}: .*No space left on device"):
        t.fit()
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 2
    assert load_model(tmp_path / "last") is not None
    assert not (tmp_path / "last.tmp").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_while_logging_is_one_error(tmp_path):
    (tmp_path / "metrics.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    t = make_trainer(tmp_path, max_steps=2)
    with pytest.raises(TrainingError, match=f"cannot append to {tmp_path / 'metrics.jsonl'}: No space left on device"):
        t.fit()
