"""The ``loopformer`` command-line tool: one module per command, each adding its parser.

User mistakes (unknown preset, bad override, corrupt checkpoint) end with a one-line
``loopformer: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import LoopformerError
from . import analyze, classify, evaluate, generate, presets, train, translate


def build_parser() -> argparse.ArgumentParser:
    from ..bench.cli import add_parser as add_bench

    parser = argparse.ArgumentParser(
        prog="loopformer", description="Looped Transformers: RingFormer, SpiralFormer and baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (presets, train, translate, evaluate, generate, analyze, classify):
        command.add_parser(sub)
    add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (argparse stops collecting positionals there)
    stray = [e for e in extra if "=" not in e or e.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
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


__all__ = ["build_parser", "main"]
