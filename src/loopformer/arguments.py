"""The valid range of every numeric command-line argument, and outputs proven writable.

Every numeric argument of every command (``loopformer`` and ``loopformer bench`` alike) is
parsed by one of the ``type=`` helpers here, so a value out of its declared range (a
negative count, NaN, a beam that would exhaust memory) is refused by argparse before any
work, with the same one-line error as every other mistake. The bounds sit far past any
useful value and low enough that no argument alone makes a command allocate more than
about a gigabyte.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .generate import MAX_BEAM, MAX_LENGTH_PENALTY

MAX_THREADS = 4 * (os.cpu_count() or 1)  # more threads than cores only adds contention
MAX_BATCH = 4096  # analysis minibatches
MAX_BATCHES = 1_000_000
MAX_NEW_TOKENS = 1_000_000  # generation also stops at the model's context
MAX_TOP_K = 1_000_000
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0  # below 1e-3 the float32 logits overflow; use 0
MAX_LENGTH = 1 << 20  # a sequence length or position (the model's max_len is checked later)



def shown(text: str) -> str:
    """User text quoted in a message, cut short."""
    return repr(text if len(text) <= 24 else text[:20] + "...")


def count(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer from ``lo`` to ``hi``."""
    return _bounded(int, "an integer", lo, hi, "{:,}")


def finite_float(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number from ``lo`` to ``hi`` (NaN and infinities refused)."""
    return _bounded(float, "a number", lo, hi, "{:g}")


def _bounded(convert: Callable[[str], float], kind: str, lo: float, hi: float, fmt: str) -> Callable[[str], float]:
    """The parser behind :func:`count` and :func:`finite_float`: the message names the
    bound that was crossed ("must be <= 64"), not the whole interval."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {shown(text)}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {shown(text)}")
        if not lo <= value <= hi:
            bound = f">= {fmt.format(lo)}" if value < lo else f"<= {fmt.format(hi)}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {shown(text)}")
        return value

    parse.__name__ = kind.split()[-1]  # argparse names the type in "invalid integer value"
    return parse


def temperature(text: str) -> float:
    """An argparse ``type=`` for sampling temperatures: 0 (greedy) or MIN..MAX_TEMPERATURE."""
    value = finite_float(0.0, MAX_TEMPERATURE)(text)
    if 0 < value < MIN_TEMPERATURE:
        raise argparse.ArgumentTypeError(f"must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {shown(text)}")
    return value


def positions(text: str) -> tuple[int, ...]:
    """An argparse ``type=``: comma-separated positions, 1 to 16 of them, each 1..MAX_LENGTH."""
    parts = text.split(",")
    if len(parts) > 16:
        raise argparse.ArgumentTypeError(f"at most 16 comma-separated positions, got {len(parts)}")
    return tuple(count(1, MAX_LENGTH)(p) for p in parts)


def exit_rule(text: str):
    """An argparse ``type=``: an early-exit rule ``criterion:threshold[:min_loops]``."""
    from .models.depth import ExitRule

    try:
        return ExitRule.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_depth(p: argparse.ArgumentParser) -> None:
    """Test-time depth of a looped model (``models/depth.py``)."""
    from .models.depth import LEVEL_RULES, MAX_LOOPS

    p.add_argument("--loops", type=count(1, MAX_LOOPS), default=None,
                   help="run the looped core this many times (default: as trained)")
    p.add_argument("--level-rule", default="repeat_last", choices=LEVEL_RULES, dest="level_rule",
                   help="which trained level's parameters a loop runs when --loops differs from the trained count")
    p.add_argument("--exit", type=exit_rule, default=None,
                   help="early exit, criterion:threshold[:min_loops] with criterion change, kl, entropy or argmax "
                        "(e.g. kl:0.001); prints the mean number of loops run")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=count(1, MAX_THREADS), default=None,
                   help=f"CPU threads, 1..{MAX_THREADS} (4 x the cores; default: torch's choice)")


def add_beam(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--beam", type=count(1, MAX_BEAM), default=None, help=f"{help}, 1..{MAX_BEAM}")
    p.add_argument("--length-penalty", type=finite_float(0.0, MAX_LENGTH_PENALTY), default=None,
                   dest="length_penalty",
                   help=f"beam length penalty alpha, 0..{MAX_LENGTH_PENALTY:g} (default: the run's)")


def output_file(path: str | None, what: str) -> Path | None:
    """An output named on the command line, proven writable before the work that fills it
    (missing parent folders are created, as the writer would)."""
    from .files import check_writable

    if path is None:
        return None
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    return check_writable(path, what, ConfigError)


def write_output(write: Callable[[], object], path: str | Path, what: str) -> None:
    """Run ``write``; an OS failure (disk full, folder removed meanwhile) is one line."""
    try:
        write()
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
