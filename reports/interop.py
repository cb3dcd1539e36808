"""The interoperability page: loopformer models in CTranslate2 and lm-evaluation-harness.

    python -m reports interop --part ct2 --mt runs/table/vanilla-6x6-s0/best,runs/table/ringformer-6x6-s0/best
    python -m reports interop --part hf --mt runs/table/ringformer-6x6-s0/best
    python -m reports interop --part speed --presets vanilla-mt-base,vanilla-mt-small [--before OLD/src]
    python -m reports interop --part lmeval --lm runs/test-time-depth/lm-looped-fixed-s0/best
    python -m reports interop --part beams --mt runs/table/vanilla-6x6-s0/best --before OLD/src
    python -m reports interop --page-only

Each measurement writes one JSON under docs/results/interop/ (a finished one is kept
unless ``--force``); the page is rebuilt from whatever records exist.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from . import runner
from .interop_page import write_page
from .paths import RESULTS

OUT = RESULTS / "interop"


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("interop", __doc__)
    ap.add_argument("--part", choices=["ct2", "hf", "speed", "beams", "lmeval"], action="append", default=[])
    ap.add_argument("--mt", default="", help="comma-separated trained translation checkpoints")
    ap.add_argument("--presets", default="vanilla-mt-base,vanilla-mt-small")
    ap.add_argument("--lm", default="", help="a trained language-model checkpoint")
    ap.add_argument("--windows", type=int, default=100, help="lmeval: validation windows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="speed: the engines take turns this many times")
    ap.add_argument("--before", default=None,
                    help="speed, beams: the src folder of an earlier loopformer, timed / compared beside this one")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--page-only", action="store_true")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.page_only:
        for part in args.part:
            _run(part, args)
    print(f"wrote {write_page(OUT)}")
    return 0


def _run(part: str, args) -> None:
    from . import interop_measure as m

    if part == "ct2":
        from loopformer.tasks.translation_run import load_translation_checkpoint

        for ckpt in filter(None, args.mt.split(",")):
            name = Path(ckpt).parent.name
            _once(f"ct2-{name}", args.force, lambda ckpt=ckpt, name=name: m.measure_ct2(
                *load_translation_checkpoint(ckpt), name, args.threads, args.beam))
    elif part == "hf":
        for ckpt in filter(None, args.mt.split(",")):
            name = Path(ckpt).parent.name
            _once(f"hf-{name}", args.force, lambda ckpt=ckpt: m.measure_hf(ckpt, args.threads, args.beam))
    elif part == "speed":
        for preset in filter(None, args.presets.split(",")):
            _once(f"speed-{preset}", args.force, lambda preset=preset: {"preset": preset, **m.measure_speed(
                preset, args.threads, args.beam, args.repeats, before=args.before, rounds=args.rounds)})
    elif part == "beams":
        if not args.before:
            raise SystemExit("--part beams needs --before (the src folder of the loopformer to compare with)")
        for ckpt in filter(None, args.mt.split(",")):
            _once(f"beams-{Path(ckpt).parent.name}", args.force,
                  lambda ckpt=ckpt: m.measure_beams(ckpt, args.before, args.beam, args.threads))
    elif args.lm:
        with tempfile.TemporaryDirectory() as tmp:
            _once(f"lmeval-{Path(args.lm).parent.name}", args.force,
                  lambda: m.measure_lmeval(args.lm, args.windows, Path(tmp)))


def _once(name: str, force: bool, measure) -> None:
    path = OUT / f"{name}.json"
    if path.exists() and not force:
        print(f"== {name}: kept (--force to measure again)")
        return
    print(f"== {name}")
    record = measure()
    path.write_text(json.dumps(record, indent=1) + "\n")
