"""What the commands share: configs from a preset or a checkpoint, standard input, thread count."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import CheckpointError, ConfigError


def model_config(target: str, overrides: Sequence[str], args: argparse.Namespace):
    """A config from a preset name or a checkpoint directory, with overrides applied."""
    from ..checkpoint import read_checkpoint_config
    from ..config import parse_override
    from ..registry import get_config

    if Path(target).is_dir():
        config, _ = read_checkpoint_config(target)
    elif "/" in target or target.startswith("."):
        raise CheckpointError(f"checkpoint directory {target} does not exist")
    else:
        config = get_config(target)
    changes = dict(parse_override(o) for o in overrides)
    for flag, key in (("vocab_size", "vocab_size"), ("num_classes", "num_classes"), ("image_size", "image_size")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    return config.replace(**changes) if changes else config


def read_stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"standard input is not UTF-8 (byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_stdin_text() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"standard input is not UTF-8 (byte {exc.start})") from None


def one_line(text: str) -> str:
    """A byte-level tokenizer can decode to any character, line breaks included; output
    keeps one line per input line, so each break (as ``str.splitlines`` sees them) is a space."""
    return " ".join(text.splitlines())


def task_found(kind: str) -> str:
    return f"it holds a {kind} run" if kind else "it has no task.json"


def set_threads(threads: int | None) -> None:
    """``--threads N`` of an inference command (training takes ``threads=`` as a setting)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
