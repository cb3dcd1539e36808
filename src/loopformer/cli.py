"""The ``loopformer`` command-line tool.

User mistakes (unknown preset, bad override, corrupt checkpoint) end with a one-line
``loopformer: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import CheckpointError, LoopformerError


def _model_config(target: str, overrides: Sequence[str], args: argparse.Namespace):
    """A config from a preset name or a checkpoint directory, with overrides applied."""
    from .checkpoint import read_checkpoint_config
    from .config import parse_override
    from .registry import get_config

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


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import PRESETS, list_models

    print(f"{'preset':<22} {'task':<8} {'arch':<11} {'d':>5} {'layers':>7}")
    for name in list_models():
        p = PRESETS[name]
        print(f"{name:<22} {p['task']:<8} {p['arch']:<11} {p['d_model']:>5} {p['n_layers']:>7}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from .analysis.params import count_parameters, format_parameter_table
    from .models import build_model

    import torch

    config = _model_config(args.target, args.overrides, args)
    with torch.device("meta"):  # count without allocating paper-sized weights
        model = build_model(config)
    count = count_parameters(model)
    if args.json:
        print(json.dumps({"target": args.target, **count.to_dict()}, indent=2))
    else:
        print(format_parameter_table(count, title=f"{args.target} ({config.task}, {config.arch})"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Build a preset, run one forward pass on random input, print its parameter table."""
    import torch

    from .analysis.params import count_parameters, format_parameter_table
    from .models import build_model

    config = _model_config(args.preset, args.overrides, args)
    torch.manual_seed(0)
    model = build_model(config).eval()
    print(format_parameter_table(count_parameters(model), title=f"{args.preset} ({config.task}, {config.arch})"))
    b = args.batch
    with torch.inference_mode():
        if config.task == "vit":
            inputs = (torch.randn(b, config.in_channels, config.image_size, config.image_size),)
        elif config.task == "seq2seq":
            inputs = (torch.randint(1, config.vocab_size, (b, args.length)),
                      torch.randint(1, config.target_vocab_size, (b, args.length)))
        else:
            inputs = (torch.randint(1, config.vocab_size, (b, args.length)),)
        start = time.perf_counter()
        out = model(*inputs)
        elapsed = time.perf_counter() - start
    print(f"\nforward on {tuple(inputs[0].shape)} -> output {tuple(out.shape)} in {elapsed * 1000:.1f} ms")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopformer", description="Looped Transformers: RingFormer, SpiralFormer and baselines.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the named presets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("params", help="parameter table of a preset or checkpoint")
    p.add_argument("target", help="preset name (see `loopformer list`) or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--vocab-size", type=int, dest="vocab_size")
    p.add_argument("--num-classes", type=int, dest="num_classes")
    p.add_argument("--image-size", type=int, dest="image_size")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("demo", help="build a preset, run it once on random input, print its parameters")
    p.add_argument("preset", nargs="?", default="ringformer-mt-small")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=16)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LoopformerError as exc:
        print(f"loopformer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loopformer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
