"""ModelConfig validation, ``key=value`` overrides, (de)serialisation and preset lookup."""

from __future__ import annotations

import dataclasses
import json

import pytest

from loopformer.config import ModelConfig, field_names, parse_override
from loopformer.errors import ConfigError, LoopformerError
from loopformer.registry import PRESETS, get_config, list_models


def test_defaults_are_valid_and_errors_are_catchable_as_value_error():
    cfg = ModelConfig()
    assert cfg.d_model == 512 and cfg.arch == "ringformer"
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConfigError, LoopformerError)


# --- unknown keys -----------------------------------------------------------------------


def _assert_lists_valid_keys(message: str) -> None:
    assert "valid keys" in message
    for name in field_names():
        assert name in message, f"valid key {name!r} missing from: {message}"


def test_from_dict_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict({"d_model": 64, "n_heads": 4, "dmodel": 64, "nheads": 4})
    msg = str(info.value)
    assert "dmodel" in msg and "nheads" in msg
    _assert_lists_valid_keys(msg)


def test_unknown_key_through_replace_and_get_config():
    with pytest.raises(ConfigError) as info:
        ModelConfig().replace(bogus_field=1)
    assert "bogus_field" in str(info.value)
    _assert_lists_valid_keys(str(info.value))

    with pytest.raises(ConfigError) as info:
        get_config("vit-tiny", hidden_size=32)
    assert "hidden_size" in str(info.value)
    _assert_lists_valid_keys(str(info.value))


def test_from_dict_rejects_non_mapping():
    for bad in (None, [("d_model", 64)], "d_model=64", 3):
        with pytest.raises(ConfigError, match="mapping"):
            ModelConfig.from_dict(bad)


# --- types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("d_model", "x"),
        ("d_model", 64.0),  # float for an int field
        ("d_model", True),  # bool is not an int here
        ("n_layers", None),  # not Optional
        ("n_dec_layers", "2"),
        ("n_dec_layers", False),
        ("dropout", True),  # bool is rejected for float fields too
        ("norm_eps", True),  # ... even where its value (1) would be in range
        ("rotary_fraction", True),
        ("dropout", "0.1"),
        ("ffn_init_std", "none"),
        ("tie_embeddings", 1),  # int is not a bool
        ("tie_embeddings", "true"),
        ("task", 3),
    ],
)
def test_wrong_types_raise_config_error(key, value):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{key: value})
    msg = str(info.value)
    assert f"'{key}' must be " in msg and f"got {value!r}" in msg
    assert "must be in [" not in msg and ">=" not in msg  # a type error, not a range error


@pytest.mark.parametrize(
    "key, value",
    [
        ("dropout", 0),  # int is fine for a float field
        ("norm_eps", 1),
        ("n_dec_layers", None),
        ("n_dec_layers", 2),
        ("ffn_init_std", None),
        ("signal_rank", None),
        ("tie_embeddings", True),
    ],
)
def test_accepted_types(key, value):
    assert getattr(ModelConfig(**{key: value}), key) == value


# --- choices and ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [("task", "classification"), ("arch", "transformer"), ("norm_style", "sandwich"),
     ("positional", "alibi"), ("signal_mode", "fixed"), ("signal_input", "cooked"),
     ("ffn_signal_position", "middle")],
)
def test_unknown_choice_lists_choices(key, value):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{key: value})
    msg = str(info.value)
    assert key in msg and value in msg
    assert "must be one of" in msg


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(dropout=1.5), "dropout"),
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(attn_dropout=1.0), "attn_dropout"),
        (dict(dropout=float("nan")), "dropout"),
        (dict(d_model=0), "d_model"),
        (dict(n_heads=0), "n_heads"),
        (dict(vocab_size=-3), "vocab_size"),
        (dict(n_dec_layers=0), "n_dec_layers"),
        (dict(signal_rank=0), "signal_rank"),
        (dict(d_model=32, n_heads=3), "divisible by n_heads"),
        (dict(arch="looped", n_layers=3, core_layers=2), "multiple of core_layers"),
        (dict(arch="ringformer", n_layers=6, core_layers=4), "multiple of core_layers"),
        (dict(arch="universal", n_layers=4, n_dec_layers=3, core_layers=2), "n_dec_layers"),
        (dict(task="vit", image_size=30, patch_size=4), "divisible by patch_size"),
        (dict(rotary_fraction=0.0), "rotary_fraction"),
        (dict(rotary_fraction=1.5), "rotary_fraction"),
        (dict(norm_eps=0.0), "norm_eps"),
        (dict(final_norm_eps=-1e-6), "final_norm_eps"),
        (dict(pad_id=100, vocab_size=100), "pad_id"),
        (dict(pad_id=-1), "pad_id"),
        (dict(tie_embeddings=True, tgt_vocab_size=123), "tie_embeddings"),
    ],
)
def test_out_of_range_values_raise(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**overrides)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(arch="looped", n_layers=6, core_layers=3),
        dict(arch="looped", n_layers=6, core_layers=2, n_dec_layers=4),
        dict(task="vit", image_size=30, patch_size=5),
        dict(task="vit", image_size=28, patch_size=4),
        dict(dropout=0.0, attn_dropout=0.999),
        dict(tie_embeddings=True, tgt_vocab_size=32000),
        dict(pad_id=31999),
    ],
)
def test_boundary_values_accepted(overrides):
    cfg = ModelConfig(**overrides)
    for k, v in overrides.items():
        assert getattr(cfg, k) == v


def test_replace_validates_and_does_not_mutate():
    cfg = get_config("ringformer-mt-small")
    with pytest.raises(ConfigError):
        cfg.replace(n_heads=7)
    smaller = cfg.replace(d_model=32, n_heads=2)
    assert (smaller.d_model, smaller.n_heads) == (32, 2)
    assert (cfg.d_model, cfg.n_heads) == (256, 4)


# --- parse_override ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("tie_embeddings=true", ("tie_embeddings", True)),
        ("tie_embeddings=True", ("tie_embeddings", True)),
        ("tie_embeddings=false", ("tie_embeddings", False)),
        ("final_norm=FALSE", ("final_norm", False)),
        ("bias=1", ("bias", True)),
        ("bias=0", ("bias", False)),
        ("d_model=64", ("d_model", 64)),
        (" d_model = 64 ", ("d_model", 64)),
        ("n_dec_layers=4", ("n_dec_layers", 4)),
        ("n_dec_layers=none", ("n_dec_layers", None)),
        ("n_dec_layers=None", ("n_dec_layers", None)),
        ("signal_rank=null", ("signal_rank", None)),
        ("dropout=0.25", ("dropout", 0.25)),
        ("dropout=0", ("dropout", 0.0)),
        ("norm_eps=1e-6", ("norm_eps", 1e-6)),
        ("ffn_init_std=none", ("ffn_init_std", None)),
        ("ffn_init_std=0.5", ("ffn_init_std", 0.5)),
        ("arch=vanilla", ("arch", "vanilla")),
        ("task=vit", ("task", "vit")),
        ("positional=a=b", ("positional", "a=b")),  # only the first '=' splits
    ],
)
def test_parse_override_coerces(text, expected):
    key, value = parse_override(text)
    assert (key, value) == expected
    assert type(value) is type(expected[1])  # 64 must be int, not bool/float; 0.0 a float


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("noequals", "key=value"),
        ("", "key=value"),
        ("nope=1", "unknown config key 'nope'"),
        ("d_model=abc", "d_model"),
        ("d_model=1.5", "d_model"),
        ("d_model=none", "d_model"),  # not Optional
        ("n_dec_layers=2.5", "n_dec_layers"),
        ("n_dec_layers=x", "n_dec_layers"),
        ("dropout=high", "dropout"),
        ("tie_embeddings=maybe", "tie_embeddings"),
        ("tie_embeddings=", "tie_embeddings"),
    ],
)
def test_parse_override_rejects(text, fragment):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert fragment in str(info.value)


def test_parse_override_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        parse_override("hidden=3")
    _assert_lists_valid_keys(str(info.value))


def test_parse_override_result_feeds_replace():
    cfg = get_config("ringformer-mt-small")
    changes = dict(parse_override(t) for t in ("d_model=32", "n_heads=2", "signal_rank=none", "dropout=0"))
    new = cfg.replace(**changes)
    assert (new.d_model, new.n_heads, new.signal_rank, new.dropout) == (32, 2, None, 0.0)
    assert new.rank == 2  # d // 16 default once the rank is None


# --- (de)serialisation ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_to_dict_from_dict_round_trip(name):
    cfg = get_config(name)
    data = cfg.to_dict()
    assert set(data) == set(field_names())
    assert ModelConfig.from_dict(data) == cfg
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_round_trip_keeps_non_default_values():
    cfg = ModelConfig(task="decoder", arch="ringformer", d_model=48, n_heads=3, n_layers=4, core_layers=2,
                      n_dec_layers=None, signal_rank=5, dropout=0.25, ffn_init_std=None,
                      tie_embeddings=True, positional="rotary", rotary_fraction=0.5, norm_eps=1e-6)
    again = ModelConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert again != cfg.replace(signal_rank=6)
    # to_dict returns a copy: mutating it does not touch the config
    d = cfg.to_dict()
    d["d_model"] = 96
    assert cfg.d_model == 48


# --- presets ------------------------------------------------------------------------------------


def test_list_models_is_sorted_presets():
    assert list_models() == sorted(PRESETS)
    assert "ringformer-mt-small" in list_models()


def test_get_config_unknown_name_suggests_close_matches():
    with pytest.raises(ConfigError) as info:
        get_config("ringformer-mt-smal")
    msg = str(info.value)
    assert "ringformer-mt-smal'" in msg
    assert "did you mean" in msg and "ringformer-mt-small" in msg


def test_get_config_far_name_lists_available():
    with pytest.raises(ConfigError) as info:
        get_config("zzzzzzzz")
    msg = str(info.value)
    assert "available" in msg
    for name in list_models():
        assert name in msg


def test_get_config_applies_and_validates_overrides():
    cfg = get_config("ringformer-mt-small", d_model=32, n_heads=2, d_ff=64, n_layers=2, vocab_size=40)
    assert (cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers, cfg.vocab_size) == (32, 2, 64, 2, 40)
    assert cfg.arch == "ringformer" and cfg.task == "seq2seq"
    with pytest.raises(ConfigError):
        get_config("ringformer-mt-small", dropout=1.5)
    # presets are not mutated by overrides
    assert get_config("ringformer-mt-small").d_model == 256


# --- settings that do not apply to the chosen model are refused -------------------------

from loopformer.config import APPLIES  # noqa: E402

# a preset on which each rule's condition fails, and a valid non-default value per field
WHERE_NOT = {"arch=ringformer (level signals)": "looped-lm-char", "a spiral_schedule": "looped-lm-char",
             "positional=rotary": "vanilla-lm-small", "task=seq2seq (an encoder-decoder)": "vanilla-lm-small",
             "task=vit": "vanilla-mt-small", "state_update=mesh": "looped-lm-char",
             "a looped core (arch other than vanilla)": "vanilla-lm-small", "task=decoder": "vit-tiny"}
OTHER_VALUE = {"signal_mode": "static", "signal_input": "normed", "ffn_signal_position": "before_norm",
               "signal_placement": "before", "spiral_pool": "mean", "spiral_upscale": "copy",
               "spiral_shift": "no_overlap", "latent_positions": "last_token", "spiral_offsets": "half",
               "signal_rank": 4, "signal_rank_divisor": 8, "n_dec_layers": 2, "tgt_vocab_size": 50, "image_size": 32,
               "patch_size": 4, "in_channels": 1, "num_classes": 5, "mesh_slots": 4, "core_layers": 2,
               "signal_init_std": 0.01, "rotary_fraction": 0.5}
CASES = [(name, WHERE_NOT[needs]) for names, _, needs in APPLIES for name in names]


def _other(name: str):
    default = {f.name: f.default for f in dataclasses.fields(ModelConfig)}[name]
    return (not default) if isinstance(default, bool) else OTHER_VALUE[name]


@pytest.mark.parametrize("name,preset", CASES, ids=[f"{n}@{p}" for n, p in CASES])
def test_a_setting_that_does_not_apply_is_refused(name, preset):
    with pytest.raises(ConfigError, match=f"config field '{name}' applies to models with") as exc:
        get_config(preset, **{name: _other(name)})
    assert "\n" not in str(exc.value)


def test_every_field_a_rule_names_exists_and_every_case_is_covered():
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    assert all(n in names for rule in APPLIES for n in rule[0])
    assert {needs for _, _, needs in APPLIES} == set(WHERE_NOT)


def test_settings_once_accepted_and_ignored_are_refused():
    """These were accepted and silently ignored before (vanilla has no core to loop; the
    image size only matters for a ViT): now they are errors."""
    with pytest.raises(ConfigError, match="core_layers"):
        ModelConfig(arch="vanilla", n_layers=3, core_layers=2)
    with pytest.raises(ConfigError, match="image_size"):
        ModelConfig(task="seq2seq", image_size=30, patch_size=4)


def test_the_same_settings_are_accepted_where_they_apply():
    get_config("ringformer-lm-char", signal_mode="static", signal_rank=4)
    get_config("spiral-lm-char", spiral_pool="mean", latent_positions="last_token")
    get_config("spiral-lm-char", state_update="mesh", mesh_slots=4)
    get_config("ringformer-mt-small", n_dec_layers=2, cross_attention_signals=True)
    get_config("vanilla-lm-char", rotary_fraction=0.5)


def test_rotary_positions_on_a_vit_are_refused():
    with pytest.raises(ConfigError, match="rotary positions are for text models"):
        get_config("vit-tiny", positional="rotary")


def test_the_cli_refuses_an_inapplicable_setting_in_one_line(capsys):
    from loopformer.cli import main

    assert main(["params", "looped-lm-char", "signal_rank=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "signal_rank" in err[0]
