"""``loopformer train TASK``: the trainer on any task, then the task's test figures."""

from __future__ import annotations

import argparse



def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a task (progress bar, checkpoints, resume)")
    p.add_argument("task", choices=["translation", "vision", "language"], help="what to train")
    p.add_argument("--model", default="ringformer", help="family: vanilla, looped, universal, ringformer")
    p.add_argument("--preset", default=None,
                   help="size: mt-small, mt-base (translation; default mt-small), vit-tiny (vision; default), "
                        "lm-small (language; default)")
    p.add_argument("--config", default=None, help="YAML file of settings (flat or model/train/task sections)")
    p.add_argument("--out", default=None, help="run directory (default runs/<task>/<model>-<preset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("overrides", nargs="*", help="settings as key=value (model, training or task fields)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..train.distributed import teardown

    try:
        return _train(args)
    finally:
        teardown()


def _train(args: argparse.Namespace) -> int:
    if args.task == "language":
        from ..tasks.language_run import train_language

        results = train_language(args.model, args.preset or "lm-small", args.overrides, args.config, args.out,
                                 args.resume)
        if "val" not in results:  # a non-zero rank under torchrun
            return 0
        val = results["val"]
        print(f"\ncheckpoint: {results['checkpoint']}")
        print(f"validation loss {val['val_loss']:.4f} (perplexity {val['val_ppl']:.2f})")
        return 0
    if args.task == "vision":
        from ..tasks.vision_run import train_vision

        preset = args.preset or "vit-tiny"
        results = train_vision(args.model, preset, args.overrides, args.config, args.out, args.resume)
        if "test" not in results:
            return 0
        test = results["test"]
        print(f"\ncheckpoint: {results['checkpoint']}")
        print(f"{test['split']} accuracy: {test['accuracy']:.2f}% on {test['images']:,} images")
        return 0
    from ..tasks.translation_run import train_translation

    results = train_translation(args.model, args.preset or "mt-small", args.overrides, args.config, args.out,
                                args.resume)
    if "checkpoint" not in results:
        return 0
    print(f"\ncheckpoint: {results['checkpoint']}")
    for split in ("test2016", "test2017"):
        if split in results:
            r = results[split]
            print(f"{split} sacreBLEU (beam {r['beam']}): {r['bleu']:.2f}  [{r['text']}]  {r['signature']}")
    return 0
