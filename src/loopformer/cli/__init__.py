"""The ``loopformer`` command-line tool: one module per command, each adding its parser.

User mistakes (unknown preset, bad override, corrupt checkpoint, an argument out of its
range) end with a one-line ``loopformer: error: ...`` on stderr and exit status 2, never a
traceback. The ranges of the numeric arguments are declared in :mod:`.common`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import LoopformerError
from . import analyze, classify, evaluate, generate, interop, plot, prepare, presets, train, translate
from .common import Parser


def build_parser() -> argparse.ArgumentParser:
    from ..bench.cli import add_parser as add_bench

    parser = Parser(
        prog="loopformer", description="Looped Transformers: RingFormer, SpiralFormer and baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (presets, train, translate, evaluate, generate, analyze, classify, plot, prepare, interop):
        command.add_parser(sub)
    add_bench(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (argparse stops collecting positionals there)
    stray = [e for e in extra if "=" not in e or e.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(build_parser(), argv)
    except SystemExit as exc:  # --help, or a usage mistake already reported in one line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except LoopformerError as exc:
        print(f"loopformer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loopformer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 141


__all__ = ["build_parser", "main", "parse_args"]
