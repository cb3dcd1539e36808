"""``loopformer translate``: standard input to standard output, one sentence a line."""

from __future__ import annotations

import argparse
import sys

from .common import one_line, read_stdin_lines, set_threads


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate stdin to stdout, one sentence a line")
    p.add_argument("checkpoint")
    p.add_argument("--beam", type=int, default=None, help="beam size (default: the run's test_beam)")
    p.add_argument("--length-penalty", type=float, default=None, dest="length_penalty")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_translate)


def cmd_translate(args: argparse.Namespace) -> int:
    from ..tasks.translation_run import load_translation_checkpoint

    set_threads(args.threads)
    model, task = load_translation_checkpoint(args.checkpoint)
    lines = read_stdin_lines()
    limit = model.config.max_len - 2
    encoded = task.tok.encode_batch(lines)
    for i, ids in enumerate(encoded):
        if len(ids) >= limit:
            print(f"loopformer: warning: line {i + 1} has {len(ids)} tokens; "
                  f"only the first {limit - 1} are translated", file=sys.stderr)
    for line in task.translate(model, lines, beam=args.beam, length_penalty=args.length_penalty):
        print(one_line(line))
    return 0
