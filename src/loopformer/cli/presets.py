"""Commands about presets and configs: ``list``, ``params``, ``flops``, ``demo``."""

from __future__ import annotations

import argparse
import json
import time

from ..errors import ConfigError
from ..arguments import MAX_LENGTH, count
from .common import model_config

# demo runs one forward pass of a preset at its real size: a few short sequences suffice,
# and a paper-sized vocabulary's logits grow with batch x length
MAX_DEMO_BATCH, MAX_DEMO_LENGTH = 8, 256
MAX_VOCAB, MAX_CLASSES, MAX_IMAGE = 1 << 24, 1 << 20, 1 << 16


def _add_size_flags(p, *flags: str) -> None:
    """The size overrides of params / flops (counted on the meta device: nothing is allocated)."""
    bounds = {"vocab_size": MAX_VOCAB, "num_classes": MAX_CLASSES, "image_size": MAX_IMAGE}
    for flag in flags:
        p.add_argument(f"--{flag.replace('_', '-')}", type=count(1, bounds[flag]), dest=flag,
                       help=f"1..{bounds[flag]:,}")


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list the named presets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("params", help="parameter table of a preset or checkpoint")
    p.add_argument("target", help="preset name (see `loopformer list`) or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    _add_size_flags(p, "vocab_size", "num_classes", "image_size")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("flops", help="analytic forward FLOPs of a causal LM preset or checkpoint")
    p.add_argument("target", help="preset name or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--context", type=count(1, MAX_LENGTH), default=None,
                   help="sequence length (default: the model's max_len)")
    _add_size_flags(p, "vocab_size")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("demo", help="build a preset, run it once on random input, print its parameters")
    p.add_argument("preset", nargs="?", default="ringformer-mt-small")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--batch", type=count(1, MAX_DEMO_BATCH), default=2, help=f"1..{MAX_DEMO_BATCH}")
    p.add_argument("--length", type=count(1, MAX_DEMO_LENGTH), default=16,
                   help=f"tokens per sequence, 1..{MAX_DEMO_LENGTH} and at most the model's max_len")
    p.set_defaults(func=cmd_demo)


def cmd_list(args: argparse.Namespace) -> int:
    from ..registry import PRESETS, list_models

    print(f"{'preset':<22} {'task':<8} {'arch':<11} {'d':>5} {'layers':>7}")
    for name in list_models():
        p = PRESETS[name]
        print(f"{name:<22} {p['task']:<8} {p['arch']:<11} {p['d_model']:>5} {p['n_layers']:>7}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from ..analysis.params import count_parameters, format_parameter_table
    from ..models import build_model

    import torch

    config = model_config(args.target, args.overrides, args)
    with torch.device("meta"):  # count without allocating paper-sized weights
        model = build_model(config)
    count = count_parameters(model)
    if args.json:
        print(json.dumps({"target": args.target, **count.to_dict()}, indent=2))
    else:
        print(format_parameter_table(count, title=f"{args.target} ({config.task}, {config.arch})"))
    return 0


def cmd_flops(args: argparse.Namespace) -> int:
    from ..analysis.flops import lm_flops

    config = model_config(args.target, args.overrides, args)
    if config.task != "decoder":
        raise ConfigError(f"flops covers causal language models; {args.target} is a {config.task} model")
    if args.context is not None and not 1 <= args.context <= config.max_len:
        raise ConfigError(f"--context must be between 1 and the model's max_len ({config.max_len})")
    count = lm_flops(config, args.context)
    if args.json:
        print(json.dumps({"target": args.target, **count.to_dict()}, indent=2))
        return 0
    print(f"{args.target}: forward FLOPs on {count.context:,} tokens")
    for label, value in (("transformer layers", count.layers), ("level signals", count.signals),
                         ("MeSH routers", count.state), ("LM head", count.head)):
        print(f"  {label:<20} {value:>18,.0f}")
    print(f"  {'per token':<20} {count.per_token:>18,.0f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Build a preset, run one forward pass on random input, print its parameter table."""
    import torch

    from ..analysis.params import count_parameters, format_parameter_table
    from ..models import build_model

    config = model_config(args.preset, args.overrides, args)
    if config.task != "vit" and args.length > config.max_len:
        raise ConfigError(f"--length {args.length} exceeds the model's max_len ({config.max_len})")
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
