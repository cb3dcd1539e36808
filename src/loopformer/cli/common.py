"""What the commands share: the parser (one-line usage errors), configs from a preset or
a checkpoint, checkpoint paths, standard input. Argument ranges live in
:mod:`loopformer.arguments`, which ``loopformer bench`` shares."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from ..errors import CheckpointError, ConfigError
from ..files import MiB


class Parser(argparse.ArgumentParser):
    """argparse's parser whose usage mistakes end like every other error of the tool: one
    ``loopformer: error: ...`` line and exit status 2 (argparse would print the usage first)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (\S+): must ", r"\1 must ", message)  # "--beam must be >= 1, got '0'"
        self.exit(2, f"loopformer: error: {ConfigError(message)} (see {self.prog} --help)\n")


def checkpoint_dir(path: str) -> Path:
    """The checkpoint argument of a command, refused at once unless it is a directory (a
    FIFO or a file given by mistake is never opened)."""
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if not folder.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory")
    return folder


def model_config(target: str, overrides: Sequence[str], args: argparse.Namespace):
    """A config from a preset name or a checkpoint directory, with overrides applied."""
    from ..checkpoint import read_checkpoint_config
    from ..config import parse_override
    from ..registry import get_config

    if Path(target).exists() or "/" in target or target.startswith("."):
        config, _ = read_checkpoint_config(checkpoint_dir(target))
    else:
        config = get_config(target)
    changes = dict(parse_override(o) for o in overrides)
    for flag, key in (("vocab_size", "vocab_size"), ("num_classes", "num_classes"), ("image_size", "image_size")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    return config.replace(**changes) if changes else config


STDIN_LIMIT = 16 * MiB  # text piped into translate / generate


def read_stdin_bytes() -> bytes:
    """Standard input, at most STDIN_LIMIT bytes (a closed stdin or an endless one is one line)."""
    if sys.stdin is None:
        raise ConfigError("standard input is closed; pipe text in")
    try:
        data = sys.stdin.buffer.read(STDIN_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read standard input: {exc.strerror or exc}") from None
    if len(data) > STDIN_LIMIT:
        raise ConfigError(f"standard input has more than {STDIN_LIMIT // MiB} MiB; split it into smaller parts")
    return data


def read_stdin_lines() -> list[str]:
    text = read_stdin_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_stdin_text() -> str:
    data = read_stdin_bytes()
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
    """``--threads N`` of an inference command (training takes ``threads=`` as a setting);
    its range is checked by :func:`add_threads`."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def depth_setting(model, args: argparse.Namespace):
    """The ``--loops/--level-rule/--exit`` of a command as a context for ``model`` and
    the meter that counts its loops (``None`` without --exit)."""
    from ..models.depth import ExitMeter, run_depth

    meter = ExitMeter() if getattr(args, "exit", None) is not None else None
    return run_depth(model, loops=args.loops, rule=args.level_rule, exit=args.exit, meter=meter), meter


def depth_summary(model, args: argparse.Namespace, meter) -> dict:
    """Loops run and, with early exit, the mean loops per token (or per image)."""
    from ..models.depth import looped_stacks

    stacks = looped_stacks(model)
    trained = max((s.n_loops for s in stacks), default=0)
    out = {"loops": args.loops or trained, "trained_loops": trained}
    if meter is not None:
        out["exit"] = f"{args.exit.criterion}:{args.exit.threshold:g}:{args.exit.min_loops}"
        out["mean_loops"] = round(meter.mean_loops, 4)
    return out


def print_depth(summary: dict) -> None:
    if "mean_loops" in summary:
        print(f"loopformer: early exit {summary['exit']}: {summary['mean_loops']:.2f} loops on average "
              f"(of {summary['loops']}; trained {summary['trained_loops']})", file=sys.stderr)
