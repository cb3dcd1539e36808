"""``loopformer classify``: image files through a vision checkpoint."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from ..arguments import MAX_TOP_K, add_depth, count
from .common import checkpoint_dir, depth_setting, depth_summary, print_depth, task_found


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="classify image files (PNG, JPEG, ...) with a vision checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files of any size; converted to the model's input")
    p.add_argument("--top-k", type=count(1, MAX_TOP_K), default=3, dest="top_k",
                   help="classes shown per image (at most the model's)")
    p.add_argument("--invert", default=None, choices=["auto", "yes", "no"],
                   help="invert greyscale pictures (auto: when the border is light, unlike Fashion-MNIST); "
                        "default auto for a Fashion-MNIST model, no for one trained on a folder of images")
    add_depth(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> int:
    from ..tasks.task_file import task_name
    from ..tasks.vision_run import classify_images, load_vision_checkpoint

    kind = task_name(checkpoint_dir(args.checkpoint), missing="")
    if kind != "vision":
        raise ConfigError(f"{args.checkpoint} is not a vision checkpoint ({task_found(kind)})")
    model, task = load_vision_checkpoint(args.checkpoint)
    depth, meter = depth_setting(model, args)
    with depth:
        results = classify_images(model, task, args.images, invert=args.invert, top_k=args.top_k)
    print_depth(depth_summary(model, args, meter))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        tops = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['image']}: {tops}")
    return 0
