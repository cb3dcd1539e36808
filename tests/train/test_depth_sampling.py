"""Training for a range of depths: the draw, its settings, exact resume."""

import pytest
import torch

from loopformer.errors import ConfigError
from loopformer.train.config import TrainConfig
from loopformer.train.depth import LoopSampler

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
ARGS = ["d_model=32", "n_heads=2", "d_ff=64", "dropout=0", "context=16", "batch_size=4", "eval_windows=2",
        "progress=false", "eval_every=100", "lr=3e-3", "warmup_steps=0", "schedule=constant", "tensorboard=off"]


def test_draws_depend_on_seed_and_step_only():
    a = LoopSampler("uniform", 3, seed=7, lo=1, hi=6)
    b = LoopSampler("uniform", 3, seed=7, lo=1, hi=6)
    draws = [a.draw(s) for s in range(200)]
    assert draws == [b.draw(s) for s in range(200)]
    assert set(draws) == {1, 2, 3, 4, 5, 6}
    assert draws != [LoopSampler("uniform", 3, seed=8, lo=1, hi=6).draw(s) for s in range(200)]
    assert LoopSampler("fixed", 3, seed=0).draw(5) == 3


def test_the_log_normal_poisson_draw_centres_on_the_trained_count():
    sampler = LoopSampler("poisson_lognormal", 4, seed=0, lo=1, hi=32)
    draws = torch.tensor([sampler.draw(s) for s in range(4000)], dtype=torch.float)
    assert 3.7 < draws.mean() < 4.3 and draws.min() >= 1 and draws.max() > 8


@pytest.mark.parametrize("bad,match", [
    (dict(depth_sampling="gaussian"), "depth_sampling"),
    (dict(loops_max=6), "apply to depth_sampling"),
    (dict(depth_sampling="uniform", loops_sigma=1.0), "loops_sigma"),
    (dict(depth_sampling="uniform", loops_min=5, loops_max=2), "must not exceed"),
    (dict(level_rule="last"), "level_rule"),
    (dict(backprop_loops=0), "backprop_loops"),
])
def test_settings_that_do_not_apply_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**bad)


def test_a_vanilla_model_refuses_random_depth(tmp_path):
    from loopformer.tasks.language_run import train_language

    with pytest.raises(ConfigError, match="looped models only"):
        train_language("vanilla", "lm-char", ARGS + ["max_steps=1", "depth_sampling=uniform"],
                       out=str(tmp_path / "v"), text=TEXT)


def test_random_depth_training_resumes_exactly(tmp_path):
    from loopformer.checkpoint import load_model
    from loopformer.tasks.language_run import train_language

    extra = ["depth_sampling=uniform", "loops_max=5", "backprop_loops=2"]
    straight = tmp_path / "straight"
    train_language("ringformer", "lm-char", ARGS + extra + ["max_steps=4"], out=str(straight), text=TEXT)
    split = tmp_path / "split"
    train_language("ringformer", "lm-char", ARGS + extra + ["max_steps=2"], out=str(split), text=TEXT)
    train_language("ringformer", "lm-char", ARGS + extra + ["max_steps=4"], out=str(split), text=TEXT, resume=True)
    a, b = load_model(straight / "last").state_dict(), load_model(split / "last").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    fixed = tmp_path / "fixed"
    train_language("ringformer", "lm-char", ARGS + ["max_steps=4"], out=str(fixed), text=TEXT)
    c = load_model(fixed / "last").state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the draws changed the training


def test_the_training_log_shows_the_loops_drawn(tmp_path):
    import json

    from loopformer.tasks.language_run import train_language
    from loopformer.train.depth import LoopSampler

    out = tmp_path / "run"
    train_language("looped", "lm-char", ARGS + ["max_steps=4", "log_every=2", "depth_sampling=uniform", "seed=3"],
                   out=str(out), text=TEXT)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r["mean_loops"] for r in rows if r["kind"] == "train"]
    sampler = LoopSampler("uniform", 3, seed=3)
    assert logged == [(sampler.draw(0) + sampler.draw(1)) / 2, (sampler.draw(2) + sampler.draw(3)) / 2]
