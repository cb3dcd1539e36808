"""``loopformer eval``: the metric of whichever task wrote the checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..arguments import add_beam, add_depth, add_threads, output_file, write_output
from .common import checkpoint_dir, depth_setting, depth_summary, print_depth, set_threads


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="sacreBLEU (translation), accuracy + confusion matrix (vision), or loss (LM)")
    p.add_argument("checkpoint")
    p.add_argument("--split", default=None,
                   help="translation: val or any split of the run's data (default: its first test split, "
                        "Multi30k test2016); vision: val or test (default: the run's test_split); language: val")
    p.add_argument("--src", default=None, help="translation: score a file of source sentences, one a line ...")
    p.add_argument("--ref", default=None, help="translation: ... against this file of references, line by line")
    p.add_argument("--confusion", default=None,
                   help="vision: where to save the confusion-matrix PNG (default next to the checkpoint)")
    add_beam(p, "translation: beam size (default: the run's test_beam)")
    add_depth(p)
    add_threads(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..tasks.task_file import task_name

    set_threads(args.threads)
    # no task.json: the translation loader says what is missing
    kind = task_name(checkpoint_dir(args.checkpoint), missing="translation")
    if kind != "translation" and (args.src is not None or args.ref is not None):
        raise ConfigError(f"--src/--ref score translation checkpoints; {args.checkpoint} is a {kind} one")
    if kind == "vision":
        return _eval_vision(args)
    if kind == "language":
        return _eval_language(args)
    return _eval_translation(args)


def _eval_translation(args: argparse.Namespace) -> int:
    from ..tasks.translation import file_bleu
    from ..tasks.translation_run import load_translation_checkpoint

    if (args.src is None) != (args.ref is None):
        raise ConfigError("--src and --ref go together: the sources to translate and their references")
    if args.src is not None and args.split is not None:
        raise ConfigError("give either --split or --src/--ref, not both")
    model, task = load_translation_checkpoint(args.checkpoint)
    depth, meter = depth_setting(model, args)
    with depth:
        if args.src is not None:
            res = file_bleu(task, model, args.src, args.ref, beam=args.beam, length_penalty=args.length_penalty)
        else:
            split = args.split or next(iter(task.test_split_names()), "val")
            res = task.test_bleu(model, split, beam=args.beam, length_penalty=args.length_penalty)
    res["depth"] = depth_summary(model, args, meter)
    print_depth(res["depth"])
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['split']} sacreBLEU (beam {res['beam']}, length penalty {res['length_penalty']}): "
              f"{res['bleu']:.2f}")
        print(res["text"])
        print(res["signature"])
    return 0


MAX_CONFUSION_CLASSES = 60


def _eval_vision(args: argparse.Namespace) -> int:
    from ..analysis.confusion import plot_confusion
    from ..tasks.vision_run import load_vision_checkpoint

    if args.split not in (None, "val", "test"):
        raise ConfigError(f"a vision checkpoint is evaluated on val or test, not {args.split!r}")
    if args.confusion is not None:  # a bad output path fails in a second, before any loading
        output_file(args.confusion, "confusion matrix")
    model, task = load_vision_checkpoint(args.checkpoint)
    split = args.split or task.cfg.test_split  # the run's test split: a folder may have no test/
    figure = None
    if len(task.classes) > MAX_CONFUSION_CLASSES:  # a figure of k x k cells stops being readable
        print(f"loopformer: note: {len(task.classes)} classes: no confusion-matrix figure (the JSON "
              "output has the matrix)", file=sys.stderr)
    else:
        figure = _confusion_path(args.confusion, Path(args.checkpoint), split)
    depth, meter = depth_setting(model, args)
    with depth:
        res = task.test_accuracy(model, split)
    res["depth"] = depth_summary(model, args, meter)
    print_depth(res["depth"])
    if figure is not None:
        write_output(lambda: plot_confusion(res["confusion"], task.classes, figure,
                                            title=f"{model.config.arch} ViT, {split}: {res['accuracy']:.2f}%"),
                     figure, "confusion matrix")
    res["confusion_png"] = str(figure) if figure is not None else None
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{split} accuracy: {res['accuracy']:.2f}% on {res['images']:,} images")
    width = max(len(c) for c in task.classes)
    for name, acc in res["per_class"].items():
        print(f"  {name:<{width}}  {acc:6.2f}%")
    if figure is not None:
        print(f"confusion matrix: {figure}")
    return 0


def _confusion_path(explicit: str | None, ckpt: Path, split: str) -> Path | None:
    """Where the confusion PNG goes, known writable before the evaluation: ``--confusion``
    must be (error); the default beside the checkpoint is skipped with a warning when it is
    not (a read-only folder of checkpoints still gets its accuracy printed)."""
    from ..files import check_writable

    if explicit is not None:
        return output_file(explicit, "confusion matrix")
    figure = ckpt.resolve().parent / f"confusion-{ckpt.name}-{split}.png"
    try:
        return check_writable(figure, "confusion matrix", ConfigError)
    except ConfigError as exc:
        print(f"loopformer: warning: {exc}; not saved (give --confusion PATH)", file=sys.stderr)
        return None


def _eval_language(args: argparse.Namespace) -> int:
    import torch

    from ..tasks.language_run import load_language_checkpoint

    if args.split not in (None, "val"):
        raise ConfigError(f"a language-model checkpoint is evaluated on val, not {args.split!r}")
    model, task = load_language_checkpoint(args.checkpoint)
    depth, meter = depth_setting(model, args)
    with torch.no_grad(), depth:
        res = task.evaluate(model)
    res["depth"] = depth_summary(model, args, meter)
    print_depth(res["depth"])
    res.pop("score", None)
    res["tokens"] = task.eval_count() * task.cfg.context  # counted, not read: the split may be large
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"val loss {res['val_loss']:.4f}  perplexity {res['val_ppl']:.2f}  ({res['tokens']:,} tokens)")
    return 0
