"""Every setting's valid range is declared once (``LIMITS`` beside the field) and checked
the same way from Python, ``key=value`` overrides, YAML and checkpoint files."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopformer.cli import main
from loopformer.config import ModelConfig
from loopformer.errors import ConfigError
from loopformer.tasks.language import LanguageConfig
from loopformer.tasks.translation import TranslationConfig
from loopformer.tasks.vision import VisionConfig
from loopformer.train.config import TrainConfig

CLASSES = [ModelConfig, TrainConfig, TranslationConfig, VisionConfig, LanguageConfig]


@pytest.mark.parametrize("cls, field, value", [
    # training that silently went the wrong way (flipped gradients, negative learning rate)
    (TrainConfig, "grad_clip", -1.0), (TrainConfig, "min_lr_ratio", -5.0), (TrainConfig, "weight_decay", -1.0),
    (TrainConfig, "lr", math.nan), (TrainConfig, "beta1", 2.0), (TrainConfig, "adam_eps", -1.0),
    (TrainConfig, "threads", -1), (TrainConfig, "seed", -1), (TrainConfig, "max_skipped_steps", 0),
    (ModelConfig, "norm_eps", math.nan), (ModelConfig, "n_layers", 100_000_000), (ModelConfig, "d_ff", 10**400),
    (ModelConfig, "max_len", 0), (ModelConfig, "signal_init_std", math.inf),
    (TranslationConfig, "test_beam", 1_000_000), (TranslationConfig, "length_penalty", math.nan),
    (VisionConfig, "mean", math.nan), (VisionConfig, "std", math.inf),
    (LanguageConfig, "train_fraction", 1.0), (LanguageConfig, "context", 1 << 30),
])
def test_out_of_range_settings_are_refused_naming_the_field(cls, field, value):
    with pytest.raises(ConfigError) as info:
        cls(**{field: value})
    message = str(info.value)
    assert f"'{field}'" in message and "\n" not in message and len(message) < 200


def test_every_limit_names_a_field_and_admits_the_default():
    for cls in CLASSES:
        names = {f.name: f.default for f in dataclasses.fields(cls)}
        for name, limit in cls.LIMITS.items():
            assert name in names, (cls.__name__, name)
            default = names[name]
            assert default is None or limit.admits(default), (cls.__name__, name, default)


def test_every_float_setting_refuses_nan_and_infinity():
    import typing

    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if float not in (typing.get_args(hints[f.name]) or (hints[f.name],)):
                continue
            for bad in (math.nan, math.inf, -math.inf):
                with pytest.raises(ConfigError, match=f.name):
                    cls(**{f.name: bad})


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10), st.floats(-10, 10),
       st.booleans(), st.booleans())
def test_limit_admits_exactly_its_interval(v, a, b, open_lo, open_hi):
    from loopformer.config import Limit

    lo, hi = min(a, b), max(a, b)
    inside = (lo < v if open_lo else lo <= v) and (v < hi if open_hi else v <= hi)
    assert Limit(lo, hi, open_lo, open_hi).admits(v) == inside


@pytest.mark.parametrize("override", ["grad_clip=-1", "min_lr_ratio=-5", "weight_decay=-1", "norm_eps=nan",
                                      "lr=nan", "beta1=2", "adam_eps=-1", "threads=-1", "seed=-1"])
def test_train_command_refuses_out_of_range_overrides_before_any_work(tmp_path, capsys, override):
    code = main(["train", "language", "--model", "looped", "--preset", "lm-char", "--out", str(tmp_path / "run"),
                 "d_model=32", "n_heads=2", "context=64", "progress=false", override])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("loopformer: error:") and err.count("\n") == 1
    assert override.split("=")[0] in err
    assert not (tmp_path / "run" / "last").exists() and not (tmp_path / "run" / "best").exists()


def test_params_of_an_absurd_depth_is_refused_at_once(capsys):
    assert main(["params", "ringformer-mt-small", "n_layers=100000000"]) == 2
    assert "n_layers" in capsys.readouterr().err


@pytest.mark.parametrize("override, fragment", [("vocab_size=5", "vocab_size=5 does not fit the data"),
                                                ("max_len=1", "max_len >= 64"), ("max_len=32", "max_len >= 64")])
def test_model_settings_that_contradict_the_data_are_refused(tmp_path, capsys, override, fragment):
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be: that is the question.\n" * 40)
    code = main(["train", "language", "--model", "looped", "--preset", "lm-char", "--out", str(tmp_path / "run"),
                 "d_model=32", "n_heads=2", "context=64", "batch_size=2", "max_steps=1", "eval_windows=1",
                 "progress=false", f"dataset={text}", override])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and fragment in err, err
