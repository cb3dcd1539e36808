"""Training configuration (optimizer, schedule, budget, checkpoints)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..config import COUNT, PROBABILITY, Limit, check_fields, coerce_value
from ..errors import ConfigError
from ..device import check_device_name
from ..models.depth import LEVEL_RULES, MAX_LOOPS
from .depth import DEPTH_SAMPLINGS
from .tensorboard import parse_mode

SCHEDULES = ("inverse_sqrt", "cosine", "constant")


@dataclass
class TrainConfig:
    lr: float = 1e-3
    warmup_steps: int = 300
    schedule: str = "inverse_sqrt"
    min_lr_ratio: float = 0.0
    max_steps: int = 100_000
    max_minutes: float | None = None
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    adam_eps: float = 1e-8
    grad_clip: float | None = 1.0
    accum_steps: int = 1
    label_smoothing: float = 0.1
    bf16: bool = False
    seed: int = 0
    eval_every: int = 500
    log_every: int = 25
    keep_last: int = 1  # > 1: also keep the latest N resumable states as <out>/step-XXXXXXXX
    threads: int | None = None
    nonfinite: str = "stop"
    # nonfinite=skip: stop after this many consecutive skipped steps (the weights are then
    # almost surely broken, and skipping forever would never end the run)
    max_skipped_steps: int = 20
    progress: bool = True
    # DDP: only needed when a configuration can leave parameters without gradient in a step
    find_unused_parameters: bool = False
    device: str = "auto"  # auto (a GPU when one is visible), cpu, cuda or cuda:N
    fsdp: bool = False  # under torchrun: shard parameters, gradients and optimizer state (FSDP2)
    compile: bool = False  # regional torch.compile of the Transformer layers (loopformer.compile)
    # TensorBoard event files in <out>/tensorboard: auto (when the package is installed), on or off
    tensorboard: str = "auto"
    # training for a range of depths (train/depth.py): the loop count of each step is
    # drawn (fixed, uniform, poisson_lognormal) from [loops_min, loops_max] (default
    # [1, 2 x trained]); loops_sigma: the log-normal's spread; backprop_loops: gradients
    # through the last k loops only; level_rule: the levels that loops beyond the trained
    # count run (models/depth.py)
    depth_sampling: str = "fixed"
    loops_min: int | None = None
    loops_max: int | None = None
    loops_sigma: float | None = None
    backprop_loops: int | None = None
    level_rule: str = "repeat_last"

    LIMITS: ClassVar[dict[str, Limit]] = {
        "lr": Limit(0.0, open_lo=True), "warmup_steps": Limit(0, 10**9), "min_lr_ratio": Limit(0.0, 1.0),
        "max_steps": Limit(1, 10**9), "max_minutes": Limit(0.0, 10**7, open_lo=True),
        "weight_decay": Limit(0.0), "beta1": PROBABILITY, "beta2": PROBABILITY,
        "adam_eps": Limit(0.0, 1.0, open_lo=True), "grad_clip": Limit(0.0, None, open_lo=True),
        "accum_steps": Limit(1, 10**6), "label_smoothing": PROBABILITY, "seed": Limit(0, 2**63 - 1),
        "eval_every": COUNT, "log_every": COUNT, "keep_last": Limit(1, 10**4),
        "threads": Limit(1, 1024), "max_skipped_steps": Limit(1, 10**6),
        "loops_min": Limit(1, MAX_LOOPS), "loops_max": Limit(1, MAX_LOOPS),
        "loops_sigma": Limit(0.0, 4.0, open_lo=True), "backprop_loops": Limit(1, MAX_LOOPS),
    }

    def __post_init__(self) -> None:
        check_fields(self, "training")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if self.nonfinite not in ("stop", "skip"):
            raise ConfigError(f"nonfinite must be stop or skip; got {self.nonfinite!r}")
        check_device_name(self.device)
        self.tensorboard = parse_mode(self.tensorboard)
        self._check_depth()

    def _check_depth(self) -> None:
        if self.depth_sampling not in DEPTH_SAMPLINGS:
            choices = ", ".join(DEPTH_SAMPLINGS)
            raise ConfigError(f"depth_sampling must be one of {choices}; got {self.depth_sampling!r}")
        if self.level_rule not in LEVEL_RULES:
            raise ConfigError(f"level_rule must be one of {', '.join(LEVEL_RULES)}; got {self.level_rule!r}")
        if self.depth_sampling == "fixed" and (self.loops_min, self.loops_max) != (None, None):
            raise ConfigError("loops_min and loops_max apply to depth_sampling=uniform or poisson_lognormal")
        if self.depth_sampling != "poisson_lognormal" and self.loops_sigma is not None:
            raise ConfigError("loops_sigma applies to depth_sampling=poisson_lognormal")
        if (self.loops_min or 1) > (self.loops_max if self.loops_max is not None else MAX_LOOPS):
            raise ConfigError(f"loops_min ({self.loops_min}) must not exceed loops_max ({self.loops_max})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then decay."""
    s = step + 1
    if cfg.warmup_steps and s <= cfg.warmup_steps:
        return cfg.lr * s / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "inverse_sqrt":
        return cfg.lr * (max(cfg.warmup_steps, 1) / s) ** 0.5
    import math

    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    progress = min((s - cfg.warmup_steps) / span, 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def split_overrides(pairs: list[str], targets: dict[str, type]) -> dict[str, dict[str, Any]]:
    """Route ``key=value`` strings to the dataclass (of ``targets``) that owns the key."""
    import typing

    owners = {}
    for label, cls in targets.items():
        for f in fields(cls):
            owners.setdefault(f.name, (label, typing.get_type_hints(cls)[f.name]))
    out: dict[str, dict[str, Any]] = {label: {} for label in targets}
    for text in pairs:
        if "=" not in text:
            raise ConfigError(f"override {text!r} must look like key=value")
        key, raw = (part.strip() for part in text.split("=", 1))
        if key not in owners:
            raise ConfigError(f"unknown setting '{key}'; valid: {', '.join(sorted(owners))}")
        label, hint = owners[key]
        out[label][key] = coerce_value(key, raw, hint)
    return out
