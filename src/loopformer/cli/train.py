"""``loopformer train TASK``: the trainer on any task, then the task's test figures."""

from __future__ import annotations

import argparse

from ..tasks.registry import TASKS


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a task (progress bar, checkpoints, resume)")
    p.add_argument("task", choices=list(TASKS), help="what to train")
    p.add_argument("--model", default="ringformer", help="family: vanilla, looped, universal, ringformer")
    p.add_argument("--preset", default=None,
                   help="size: mt-small, mt-base (translation; default mt-small), vit-tiny (vision; default), "
                        "lm-small (language; default)")
    p.add_argument("--config", default=None, help="YAML file of settings (flat or model/train/task sections)")
    p.add_argument("--out", default=None, help="run directory (default runs/<task>/<model>-<preset>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its saved settings; settings given again must match, "
                        "except budget and execution ones (max_steps, max_minutes, eval_every, device...)")
    p.add_argument("overrides", nargs="*", help="settings as key=value (model, training or task fields)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..train.distributed import teardown

    try:
        return _train(args)
    finally:
        teardown()


def _train(args: argparse.Namespace) -> int:
    from ..tasks.registry import TASKS

    entry = TASKS[args.task]
    results = entry.train(args.model, args.preset, args.overrides, args.config, args.out, args.resume)
    for line in entry.summary(results):
        print(line)
    return 0
