"""``loopformer eval``: the metric of whichever task wrote the checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..arguments import add_beam, add_threads, output_file, write_output
from .common import checkpoint_dir, set_threads


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="sacreBLEU (translation), accuracy + confusion matrix (vision), or loss (LM)")
    p.add_argument("checkpoint")
    p.add_argument("--split", default=None, choices=["val", "test2016", "test2017", "test"],
                   help="translation: val, test2016 (default), test2017; vision: val, test (default)")
    p.add_argument("--confusion", default=None,
                   help="vision: where to save the confusion-matrix PNG (default next to the checkpoint)")
    add_beam(p, "translation: beam size (default: the run's test_beam)")
    add_threads(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..tasks.task_file import task_name

    set_threads(args.threads)
    # no task.json: the translation loader says what is missing
    kind = task_name(checkpoint_dir(args.checkpoint), missing="translation")
    if kind == "vision":
        return _eval_vision(args)
    if kind == "language":
        return _eval_language(args)
    from ..tasks.translation_run import load_translation_checkpoint

    split = args.split or "test2016"
    if split not in ("val", "test2016", "test2017"):
        raise ConfigError(f"a translation checkpoint is evaluated on val, test2016 or test2017, not {split!r}")
    model, task = load_translation_checkpoint(args.checkpoint)
    res = task.test_bleu(model, split, beam=args.beam, length_penalty=args.length_penalty)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{split} sacreBLEU (beam {res['beam']}, length penalty {res['length_penalty']}): {res['bleu']:.2f}")
        print(res["text"])
        print(res["signature"])
    return 0


def _eval_vision(args: argparse.Namespace) -> int:
    from ..analysis.confusion import plot_confusion
    from ..tasks.vision_run import load_vision_checkpoint

    split = args.split or "test"
    if split not in ("val", "test"):
        raise ConfigError(f"a vision checkpoint is evaluated on val or test, not {split!r}")
    figure = _confusion_path(args.confusion, Path(args.checkpoint), split)
    model, task = load_vision_checkpoint(args.checkpoint)
    res = task.test_accuracy(model, split)
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
    with torch.no_grad():
        res = task.evaluate(model)
    res.pop("score", None)
    res["tokens"] = int(task.eval_windows()[:, 1:].numel())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"val loss {res['val_loss']:.4f}  perplexity {res['val_ppl']:.2f}  ({res['tokens']:,} tokens)")
    return 0
