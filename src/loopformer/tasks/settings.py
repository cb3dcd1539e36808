"""Run settings: a YAML file plus ``key=value`` overrides, routed to the config that owns each key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..train.config import split_overrides


def read_settings(pairs: list[str], config_file: str | None, targets: dict[str, type],
                  defaults: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Merge task defaults, a YAML file (flat, or with sections named like ``targets``) and
    key=value overrides, later ones winning. Every value goes through the same text parser,
    so a YAML file and the command line accept exactly the same spellings.
    """
    merged: list[str] = list(defaults or [])
    if config_file:
        import yaml

        try:
            data = yaml.safe_load(Path(config_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{config_file} must hold a mapping of settings")
        for key, value in data.items():
            if key in targets and isinstance(value, dict):
                merged += [f"{k}={_as_text(v)}" for k, v in value.items()]
            else:
                merged.append(f"{key}={_as_text(value)}")
    return split_overrides(merged + list(pairs), targets)


def _as_text(value: Any) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_name(model_name: str, preset: str) -> str:
    """``--model ringformer --preset vit-tiny`` -> ``ringformer-vit-tiny``; a full name passes through."""
    if model_name.endswith(preset):
        return model_name
    if preset.startswith("vit-"):
        if model_name == "vanilla":
            return preset
        if model_name == "universal":  # the Universal ViT is called UiT
            return "uit-" + preset[len("vit-"):]
    return f"{model_name}-{preset}"


def prepare_out_dir(out_dir: Path) -> None:
    """Create the run directory and prove it is writable before any training starts."""
    import os
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write to the run directory {out_dir}: {exc.strerror or exc}") from None
