"""``loopformer generate``: continue a prompt with a language model (KV-cached)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .common import read_stdin_text, set_threads, task_found


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a language-model checkpoint (KV-cached)")
    p.add_argument("checkpoint")
    p.add_argument("--prompt", default=None, help="text to continue (default: read standard input)")
    p.add_argument("--max-new-tokens", type=int, default=200, dest="max_new_tokens")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=200, dest="top_k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from ..tasks.language_run import generate_text, load_language_checkpoint
    from ..tasks.task_file import task_name

    set_threads(args.threads)
    kind = task_name(args.checkpoint, missing="")
    if kind != "language":
        raise ConfigError(f"{args.checkpoint} is not a language-model checkpoint ({task_found(kind)})")
    if args.max_new_tokens < 0:
        raise ConfigError("--max-new-tokens must be >= 0")
    if args.temperature < 0:
        raise ConfigError("--temperature must be >= 0 (0 = greedy)")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k must be >= 1")
    model, task = load_language_checkpoint(args.checkpoint)
    prompt = args.prompt if args.prompt is not None else read_stdin_text()
    print(generate_text(model, task, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed))
    return 0
