"""``loopformer generate``: continue a prompt with a language model (KV-cached)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..arguments import MAX_NEW_TOKENS, MAX_SEED, MAX_TOP_K, add_depth, add_threads, count, temperature
from .common import checkpoint_dir, depth_setting, depth_summary, print_depth, read_stdin_text, set_threads, task_found


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a language-model checkpoint (KV-cached)")
    p.add_argument("checkpoint")
    p.add_argument("--prompt", default=None, help="text to continue (default: read standard input)")
    p.add_argument("--max-new-tokens", type=count(0, MAX_NEW_TOKENS), default=200, dest="max_new_tokens",
                   help="at most this many (generation also stops at the model's context)")
    p.add_argument("--temperature", type=temperature, default=0.8, help="0 = greedy, else 0.001..100")
    p.add_argument("--top-k", type=count(1, MAX_TOP_K), default=200, dest="top_k")
    p.add_argument("--seed", type=count(0, MAX_SEED), default=0)
    add_depth(p)
    add_threads(p)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from ..tasks.language_run import generate_text, load_language_checkpoint
    from ..tasks.task_file import task_name

    set_threads(args.threads)
    kind = task_name(checkpoint_dir(args.checkpoint), missing="")
    if kind != "language":
        raise ConfigError(f"{args.checkpoint} is not a language-model checkpoint ({task_found(kind)})")
    model, task = load_language_checkpoint(args.checkpoint)
    prompt = args.prompt if args.prompt is not None else read_stdin_text()
    depth, meter = depth_setting(model, args)
    with depth:
        text = generate_text(model, task, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed)
    print(text)
    print_depth(depth_summary(model, args, meter))
    return 0
