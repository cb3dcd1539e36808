"""``loopformer translate``: standard input to standard output, one sentence a line."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from ..arguments import add_beam, add_depth, add_threads
from .common import (checkpoint_dir, depth_setting, depth_summary, one_line, print_depth, read_stdin_lines,
                     set_threads, task_found)


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate stdin to stdout, one sentence a line")
    p.add_argument("checkpoint")
    add_beam(p, "beam size (default: the run's test_beam)")
    add_depth(p)
    add_threads(p)
    p.set_defaults(func=cmd_translate)


def cmd_translate(args: argparse.Namespace) -> int:
    from ..tasks.task_file import task_name
    from ..tasks.translation_run import load_translation_checkpoint

    set_threads(args.threads)
    kind = task_name(checkpoint_dir(args.checkpoint), missing="translation")  # the loader says what is missing
    if kind != "translation":
        raise ConfigError(f"{args.checkpoint} is not a translation checkpoint ({task_found(kind)})")
    model, task = load_translation_checkpoint(args.checkpoint)
    lines = read_stdin_lines()
    limit = model.config.max_len - 2
    encoded = task.tok.encode_batch(lines)
    for i, ids in enumerate(encoded):
        if len(ids) >= limit:
            print(f"loopformer: warning: line {i + 1} has {len(ids)} tokens; "
                  f"only the first {limit - 1} are translated", file=sys.stderr)
    depth, meter = depth_setting(model, args)
    with depth:
        out = task.translate(model, lines, beam=args.beam, length_penalty=args.length_penalty)
    for line in out:
        print(one_line(line))
    print_depth(depth_summary(model, args, meter))
    return 0
