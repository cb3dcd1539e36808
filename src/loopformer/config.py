"""Model configuration: one flat dataclass, validated on construction.

The config is flat (``signal_rank`` rather than ``signals.rank``) so that every field
can be set the same way from Python keyword arguments, ``key=value`` command-line
overrides and YAML files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .errors import ConfigError

TASKS = ("seq2seq", "vit", "decoder")
ARCHS = ("vanilla", "looped", "universal", "ringformer", "spiral")
STATE_UPDATES = ("none", "anchor", "mesh")
SPIRAL_POOLS = ("mean", "self")
SPIRAL_UPSCALES = ("copy", "uniform", "learned")
SPIRAL_SHIFTS = ("overlap", "no_overlap")
LATENT_POSITIONS = ("index", "last_token")
NORM_STYLES = ("post", "pre")
POSITIONALS = ("sinusoidal", "learned", "rotary", "none")
SIGNAL_MODES = ("dynamic", "static")
SIGNAL_PLACEMENTS = ("after", "before")
SIGNAL_INPUTS = ("raw", "normed")
FFN_SIGNAL_POSITIONS = ("before_norm", "after_norm")
# upper bounds on sizes: far beyond any published looped model, low enough that a typo
# (n_layers=100000000) is refused at once instead of hanging or exhausting memory
MAX_LAYERS = 1024
MAX_WIDTH = 1 << 16
MAX_FFN = 1 << 20
MAX_VOCAB = 1 << 22
MAX_LEN = 1 << 20


@dataclass(frozen=True)
class Limit:
    """The valid range of a numeric setting: ``lo <= v <= hi`` (``open_lo`` / ``open_hi``
    make that end strict). Every config dataclass lists its fields' limits in ``LIMITS``
    and :func:`check_fields` enforces them, so a range is declared once, next to the
    field, and checked the same way for Python, the command line, YAML and checkpoints."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def admits(self, v: float) -> bool:
        if v != v:  # NaN lies in no interval
            return False
        if self.lo is not None and (v <= self.lo if self.open_lo else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.open_hi else v > self.hi))

    def describe(self) -> str:
        lo, hi = _number(self.lo), _number(self.hi)
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.open_lo else '['}{lo}, {hi}{')' if self.open_hi else ']'}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {lo}"
        return f"{'<' if self.open_hi else '<='} {hi}"


def _number(v: float | None) -> str:
    return str(int(v)) if v is not None and float(v).is_integer() and isinstance(v, int) else f"{v}"


COUNT = Limit(1)  # a positive count
PROBABILITY = Limit(0.0, 1.0, open_hi=True)  # a dropout-like rate in [0, 1)
EPS = Limit(0.0, 1.0, open_lo=True)


def count(hi: float) -> Limit:
    return Limit(1, hi)


# level adapters a spiral schedule composes with (the Universal timing signal is defined
# for token positions, not for the latents of a coarse iteration)
SPIRAL_ARCHS = ("spiral", "looped", "ringformer")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model exactly (saved as ``config.json``).

    ``n_layers`` is the unrolled depth of a stack (the encoder's for ``seq2seq``); a
    looped model applies a core of ``core_layers`` shared layers ``n_layers //
    core_layers`` times. ``n_dec_layers`` is the decoder's depth (``None``: same).
    """

    task: str = "seq2seq"
    arch: str = "ringformer"
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_layers: int = 6
    n_dec_layers: int | None = None
    core_layers: int = 1

    # vocabulary and embeddings (text tasks)
    vocab_size: int = 32000
    tgt_vocab_size: int | None = None
    pad_id: int = 0
    tie_embeddings: bool = False
    output_bias: bool = True
    scale_embeddings: bool = False
    max_len: int = 512
    positional: str = "sinusoidal"
    rotary_fraction: float = 1.0

    # vision
    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 100

    # layer details
    norm_style: str = "post"
    norm_eps: float = 1e-5
    final_norm_eps: float = 1e-6
    # eps of the per-level LayerNorms (RingFormer, per_level_norms); None: norm_eps. The
    # official RingFormer-ViT builds them with PyTorch's default 1e-5 while its other
    # norms use 1e-6, so the ViT presets need the two apart.
    level_norm_eps: float | None = None
    final_norm: bool = False
    bias: bool = False
    dropout: float = 0.1
    attn_dropout: float = 0.0
    # dropout (rate `dropout`) on the self-attention output before its residual addition:
    # the translation models have it; the official ViT, UiT and RingFormer-ViT do not
    attn_residual_dropout: bool = True
    ffn_init_std: float | None = 0.02
    # the official ViTs initialise their MLP with Xavier-uniform weights and N(0, 1e-6)
    # biases (needs ffn_init_std=null); off: ffn_init_std, or PyTorch's default when null
    ffn_xavier_init: bool = False
    shared_sublayer_norm: bool = False
    per_level_norms: bool = False
    # One Wide FFN (vanilla only): one FFN shared by every encoder / decoder-only layer,
    # and no FFN at all in encoder-decoder decoder layers
    one_wide_ffn: bool = False
    # GPT-NeoX / Pythia block: attention and MLP read the same input, one residual sum
    parallel_block: bool = False
    # output projections (attention out, MLP down) start with std 0.02 / sqrt(2 * unrolled depth)
    depth_scaled_init: bool = False

    # prelude -> core x T -> coda (decoder-only LMs): ordinary layers before and after the
    # loop, and how the token state is carried between iterations
    n_prelude: int = 0
    n_coda: int = 0
    state_update: str = "none"
    mesh_slots: int | None = None

    # SpiralFormer (arch="spiral"): chunk size per iteration, coarse to fine, e.g. "4,2,1"
    spiral_schedule: str | None = None
    spiral_offsets: str = "0"
    spiral_pool: str = "self"
    spiral_upscale: str = "learned"
    spiral_shift: str = "overlap"
    latent_positions: str = "index"

    # RingFormer level signals
    signal_rank: int | None = None
    signal_q: bool = True
    signal_k: bool = True
    signal_v: bool = True
    signal_ffn: bool = True
    signal_mode: str = "dynamic"
    signal_input: str = "raw"
    ffn_signal_position: str = "after_norm"
    cross_attention_signals: bool = False
    signal_init_std: float = 1e-6
    # ablations: signals added to the input of the Q/K/V projections (W (x + s)) instead of
    # their output; one set of LayerNorms shared by all levels; rank as d // divisor
    signal_placement: str = "after"
    shared_level_norms: bool = False
    signal_rank_divisor: int | None = None

    # execution (does not change parameters)
    activation_checkpointing: bool = False

    LIMITS: ClassVar[dict[str, Limit]] = {
        "d_model": count(MAX_WIDTH), "n_heads": count(1024), "d_ff": count(MAX_FFN),
        "n_layers": count(MAX_LAYERS), "n_dec_layers": count(MAX_LAYERS), "core_layers": count(MAX_LAYERS),
        "vocab_size": count(MAX_VOCAB), "tgt_vocab_size": count(MAX_VOCAB), "pad_id": Limit(0),
        "max_len": count(MAX_LEN), "rotary_fraction": Limit(0.0, 1.0, open_lo=True),
        "image_size": count(16384), "patch_size": count(16384), "in_channels": count(64),
        "num_classes": count(1 << 20), "norm_eps": EPS, "final_norm_eps": EPS, "level_norm_eps": EPS,
        "dropout": PROBABILITY, "attn_dropout": PROBABILITY, "ffn_init_std": Limit(0.0, 10.0, open_lo=True),
        "n_prelude": Limit(0, MAX_LAYERS), "n_coda": Limit(0, MAX_LAYERS), "mesh_slots": Limit(2, 64),
        "signal_rank": count(MAX_WIDTH), "signal_init_std": Limit(0.0, 10.0),
        "signal_rank_divisor": count(MAX_WIDTH),
    }

    def __post_init__(self) -> None:
        self._check_types()
        self._check_choices()
        self._check_ranges()
        self._check_applies()

    # --- validation -------------------------------------------------------------

    def _check_types(self) -> None:
        check_fields(self, "config")

    def _check_choices(self) -> None:
        for name, choices in (
            ("task", TASKS),
            ("arch", ARCHS),
            ("norm_style", NORM_STYLES),
            ("positional", POSITIONALS),
            ("signal_mode", SIGNAL_MODES),
            ("signal_placement", SIGNAL_PLACEMENTS),
            ("signal_input", SIGNAL_INPUTS),
            ("ffn_signal_position", FFN_SIGNAL_POSITIONS),
            ("state_update", STATE_UPDATES),
            ("spiral_pool", SPIRAL_POOLS),
            ("spiral_upscale", SPIRAL_UPSCALES),
            ("spiral_shift", SPIRAL_SHIFTS),
            ("latent_positions", LATENT_POSITIONS),
        ):
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"config field '{name}' must be one of {', '.join(choices)}; got {getattr(self, name)!r}"
                )

    def _check_ranges(self) -> None:
        """Relations between fields (each field's own range is in :attr:`LIMITS`)."""
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.signal_rank is not None and self.signal_rank_divisor is not None:
            raise ConfigError("give signal_rank (a number) or signal_rank_divisor (rank = d_model // divisor), "
                              "not both")
        if self.signal_placement == "before" and self.cross_attention_signals:
            raise ConfigError("signal_placement=before is not available with cross_attention_signals")
        if self.positional == "rotary" and self.rotary_dims < 2:
            raise ConfigError("rotary_fraction leaves fewer than 2 rotary dimensions per head")
        if self.ffn_xavier_init and self.ffn_init_std is not None:
            raise ConfigError("ffn_xavier_init and ffn_init_std are two FFN initialisations; "
                              "set ffn_init_std=null to use ffn_xavier_init")
        if self.level_norm_eps is not None:
            if not self.has_level_norms:
                raise ConfigError("level_norm_eps applies to per-level LayerNorms (arch=ringformer or "
                                  f"per_level_norms=true); arch={self.arch} has none")
        self._check_loop_layout()
        if self.task == "vit" and self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size ({self.image_size}) must be divisible by patch_size ({self.patch_size})"
            )
        if self.task == "vit" and self.positional == "rotary":
            raise ConfigError("a ViT takes positional=sinusoidal, learned or none; rotary positions are for "
                              "text models")
        if self.positional in ("rotary", "learned") and self.timing_positions:
            raise ConfigError("the Universal Transformer carries its own positions; use positional=none")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ConfigError(f"pad_id ({self.pad_id}) must be a valid token id below vocab_size")
        if self.one_wide_ffn and self.arch != "vanilla":
            raise ConfigError("one_wide_ffn shares the FFN of unshared (vanilla) layers; it needs arch=vanilla")
        if self.tie_embeddings and self.tgt_vocab_size not in (None, self.vocab_size):
            raise ConfigError("tie_embeddings needs tgt_vocab_size equal to vocab_size")

    def _check_applies(self) -> None:
        """A setting that cannot change the chosen model is refused rather than ignored."""
        for name in inapplicable_fields(self):
            _, _, needs = next(rule for rule in APPLIES if name in rule[0])
            raise ConfigError(f"config field '{name}' applies to models with {needs}; this one "
                              f"(task={self.task}, arch={self.arch}) would ignore {name}={getattr(self, name)!r}")

    def _check_loop_layout(self) -> None:
        if (self.n_prelude or self.n_coda or self.state_update != "none") and self.task != "decoder":
            raise ConfigError("n_prelude, n_coda and state_update apply to decoder-only LMs (task=decoder)")
        if self.state_update != "none" and self.arch == "vanilla":
            raise ConfigError("state_update needs a looped core (arch other than vanilla)")
        if self.parallel_block and self.norm_style != "pre":
            raise ConfigError("parallel_block needs norm_style=pre")
        if self.arch == "spiral" and self.spiral_schedule is None:
            raise ConfigError("arch=spiral needs spiral_schedule, e.g. '4,2,1' (chunk size per iteration)")
        if self.is_spiral:
            if self.task != "decoder":
                raise ConfigError("a spiral schedule runs a causal language model (task=decoder)")
            if self.arch not in SPIRAL_ARCHS:
                why = "has no loop" if self.arch == "vanilla" else "adds a timing signal defined for token positions only"
                raise ConfigError(f"spiral_schedule needs a looped core ({', '.join(SPIRAL_ARCHS)}); "
                                  f"arch={self.arch} {why}")
            schedule = self.schedule  # parses and validates
            offsets = self.offsets
            if len(offsets) != len(schedule):
                raise ConfigError(f"spiral_offsets gives {len(offsets)} offsets for {len(schedule)} iterations")
            need = self.n_prelude + self.n_coda + self.core_layers * len(schedule)
            if self.n_layers != need:
                raise ConfigError(
                    f"n_layers ({self.n_layers}) must equal n_prelude + n_coda + core_layers x iterations = {need}"
                )
            return
        if self.arch == "vanilla":
            return
        for depth_name in ("n_layers", "n_dec_layers"):
            depth = getattr(self, depth_name) or self.n_layers
            looped = depth - self.n_prelude - self.n_coda
            if looped < self.core_layers or looped % self.core_layers:
                raise ConfigError(
                    f"{depth_name} ({depth}) minus prelude and coda layers must be a positive multiple of "
                    f"core_layers ({self.core_layers})"
                )

    # --- derived values --------------------------------------------------------------

    @property
    def schedule(self) -> list[int]:
        """SpiralFormer chunk sizes g_t, one per iteration ([] for other architectures)."""
        if self.spiral_schedule is None:
            if self.arch == "spiral":
                raise ConfigError("arch=spiral needs spiral_schedule, e.g. '4,2,1' (chunk size per iteration)")
            return []
        try:
            sizes = [int(x) for x in str(self.spiral_schedule).replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(
                f"spiral_schedule must list integers like '4,2,1', got {self.spiral_schedule!r}"
            ) from None
        if not sizes or any(g < 1 for g in sizes):
            raise ConfigError(f"spiral_schedule needs chunk sizes >= 1, got {self.spiral_schedule!r}")
        return sizes

    @property
    def offsets(self) -> list[int]:
        """Chunk offsets w_t: '0' (all zero), 'half' (g_t // 2) or one integer per iteration."""
        sizes = self.schedule
        text = str(self.spiral_offsets).replace(" ", "")
        if text == "half":
            return [g // 2 for g in sizes]
        try:
            values = [int(x) for x in text.split(",") if x]
        except ValueError:
            raise ConfigError(f"spiral_offsets must be '0', 'half' or integers like '0,1,0'; got {text!r}") from None
        if values == [0]:
            values = [0] * len(sizes)
        if len(values) == len(sizes) and any(not 0 <= w < g for w, g in zip(values, sizes)):
            raise ConfigError(f"each offset must satisfy 0 <= w_t < g_t; got offsets {values} for chunks {sizes}")
        return values

    @property
    def n_loops(self) -> int:
        """Iterations of the core (vanilla: 0)."""
        if self.arch == "vanilla":
            return 0
        if self.is_spiral:
            return len(self.schedule)
        return (self.n_layers - self.n_prelude - self.n_coda) // self.core_layers

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def rotary_dims(self) -> int:
        dims = int(self.head_dim * self.rotary_fraction)
        return dims - dims % 2

    @property
    def decoder_layers(self) -> int:
        return self.n_dec_layers if self.n_dec_layers is not None else self.n_layers

    @property
    def target_vocab_size(self) -> int:
        return self.tgt_vocab_size if self.tgt_vocab_size is not None else self.vocab_size

    @property
    def rank(self) -> int:
        """Signal rank; the paper's default is d // 16."""
        if self.signal_rank is not None:
            return self.signal_rank
        return max(1, self.d_model // (self.signal_rank_divisor or 16))

    @property
    def qkv_signal_kinds(self) -> tuple[str, ...]:
        return tuple(k for k, on in (("q", self.signal_q), ("k", self.signal_k), ("v", self.signal_v)) if on)

    @property
    def is_looped(self) -> bool:
        """Whether some layers are shared across iterations (every arch but vanilla)."""
        return self.arch != "vanilla"

    @property
    def timing_positions(self) -> bool:
        """Whether positions come from the Universal Transformer's timing signal, added at
        every iteration by the level adapter (the input then adds none of its own)."""
        return self.arch == "universal"

    @property
    def is_spiral(self) -> bool:
        """Whether the loop runs SpiralFormer's multi-resolution schedule (any level adapter:
        ``arch=spiral`` is the plain loop on it, ``arch=ringformer`` adds level signals)."""
        return self.spiral_schedule is not None

    @property
    def has_level_norms(self) -> bool:
        """Whether the looped core has its own LayerNorms per level (RingFormer, or asked for)."""
        return self.arch == "ringformer" or (self.per_level_norms and self.arch != "vanilla")

    @property
    def level_eps(self) -> float:
        return self.level_norm_eps if self.level_norm_eps is not None else self.norm_eps

    @property
    def has_signals(self) -> bool:
        return self.arch == "ringformer" and (bool(self.qkv_signal_kinds) or self.signal_ffn)

    # --- (de)serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(field_names())}"
            )
        return cls(**data)

    @classmethod
    def from_v1(cls, data: Any) -> "ModelConfig":
        """A config written by format version 1, which accepted settings the model then
        ignored: those are reset to their defaults (the model they built is unchanged), and
        a ViT's ``positional=rotary``, built as sinusoidal then, is written as such. Keys
        added since take their defaults, which are the behaviour of that time."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        if data.get("task") == "vit" and data.get("positional") == "rotary":
            data["positional"] = "sinusoidal"
        if data.get("arch") == "universal" and data.get("positional") in ("rotary", "learned"):
            data["positional"] = "none"  # the timing signal carried the positions
        probe = object.__new__(cls)  # read the fields without validating them
        for f in fields(cls):
            setattr(probe, f.name, data.get(f.name, f.default))
        defaults = {f.name: f.default for f in fields(cls)}
        for name in inapplicable_fields(probe):
            data[name] = defaults[name]
        return cls.from_dict(data)

    def replace(self, **overrides: Any) -> "ModelConfig":
        return ModelConfig.from_dict({**self.to_dict(), **overrides})


# (fields, condition, what the condition says): each field may leave its default only on a
# model where the condition holds, since nowhere else does any code read it
APPLIES: list[tuple[tuple[str, ...], Any, str]] = [
    (("signal_rank", "signal_q", "signal_k", "signal_v", "signal_ffn", "signal_mode", "signal_input",
      "ffn_signal_position", "cross_attention_signals", "signal_init_std", "signal_placement", "shared_level_norms",
      "signal_rank_divisor"), lambda c: c.arch == "ringformer", "arch=ringformer (level signals)"),
    (("spiral_offsets", "spiral_pool", "spiral_upscale", "spiral_shift", "latent_positions"),
     lambda c: c.is_spiral, "a spiral_schedule"),
    (("rotary_fraction",), lambda c: c.positional == "rotary", "positional=rotary"),
    (("n_dec_layers", "tgt_vocab_size"), lambda c: c.task == "seq2seq", "task=seq2seq (an encoder-decoder)"),
    (("cross_attention_signals",), lambda c: c.task == "seq2seq", "task=seq2seq (an encoder-decoder)"),
    (("image_size", "patch_size", "in_channels", "num_classes"), lambda c: c.task == "vit", "task=vit"),
    (("mesh_slots",), lambda c: c.state_update == "mesh", "state_update=mesh"),
    (("core_layers", "per_level_norms"), lambda c: c.arch != "vanilla", "a looped core (arch other than vanilla)"),
    (("depth_scaled_init",), lambda c: c.task == "decoder", "task=decoder"),
]


def inapplicable_fields(cfg: "ModelConfig") -> list[str]:
    """Fields set away from their default on a model that never reads them."""
    defaults = {f.name: f.default for f in fields(ModelConfig)}
    out = []
    for names, applies, _ in APPLIES:
        if not applies(cfg):
            out += [n for n in names if getattr(cfg, n) != defaults[n] and n not in out]
    return out


def split_applicable(cfg: "ModelConfig", overrides: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Overrides shared by several models (one ``bench`` line): those that apply to ``cfg``,
    and the names of those that do not."""
    kept, dropped = {}, []
    for name, value in overrides.items():
        if all(applies(cfg) for names, applies, _ in APPLIES if name in names):
            kept[name] = value
        else:
            dropped.append(name)
    return kept, dropped


def rule_fields() -> set[str]:
    """Fields that apply to some models only (see :data:`APPLIES`)."""
    return {n for names, _, _ in APPLIES for n in names}


def check_fields(obj: Any, what: str) -> None:
    """Check every dataclass field against its annotation (ints widen to float fields),
    refuse NaN and infinities in every float field, and enforce the class's ``LIMITS``."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, options = getattr(obj, f.name), _options(hints[f.name])
        if type(value) is int and float in options and int not in options:
            setattr(obj, f.name, float(value))
    check_values(type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)}, what)


def check_values(cls: type, values: dict[str, Any], what: str) -> None:
    """Check settings one by one against ``cls``'s annotations and ``LIMITS`` without
    building ``cls``: a run refuses a bad value before preparing data, even when the
    whole config can only be built later (a task supplies the vocabulary size)."""
    hints = typing.get_type_hints(cls)
    limits: dict[str, Limit] = getattr(cls, "LIMITS", {})
    for name, value in values.items():
        if name not in hints or name == "LIMITS":
            continue
        if not _matches(value, hints[name]):
            raise ConfigError(f"{what} field '{name}' must be {_type_name(hints[name])}, got {_short(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{what} field '{name}' must be a finite number, got {value}")
        limit = limits.get(name)
        if limit is not None and value is not None and not limit.admits(value):
            raise ConfigError(f"{what} field '{name}' must be {limit.describe()}, got {_short(value)}")


def _short(value: Any) -> str:
    """A value for an error message, cut short (a 5,000-digit number stays one short line)."""
    if isinstance(value, int) and value.bit_length() > 100:  # repr() of a huge int may itself fail
        return f"an integer of {value.bit_length():,} bits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def field_names() -> list[str]:
    return [f.name for f in fields(ModelConfig)]


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` into a typed pair, using the field's annotation to coerce."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    hints = typing.get_type_hints(ModelConfig)
    if key not in hints:
        raise ConfigError(f"unknown config key '{key}'; valid keys: {', '.join(field_names())}")
    return key, coerce_value(key, raw.strip(), hints[key])


def coerce_value(key: str, raw: str, hint: Any) -> Any:
    options = _options(hint)
    if type(None) in options and raw.lower() in ("none", "null", ""):
        return None
    for opt in options:
        if opt is bool:
            if raw.lower() in ("true", "1", "yes", "on"):
                return True
            if raw.lower() in ("false", "0", "no", "off"):
                return False
        elif opt is int:
            try:
                return int(raw)
            except ValueError:
                pass
        elif opt is float:
            try:
                return float(raw)
            except ValueError:
                pass
        elif opt is str:
            return raw
    raise ConfigError(f"cannot read {raw!r} as {_type_name(hint)} for config key '{key}'")


try:  # Python >= 3.10: ``int | None`` is a types.UnionType
    from types import UnionType as _UnionType
except ImportError:  # pragma: no cover
    _UnionType = typing.Union  # type: ignore


def _options(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, _UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, _UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))
