"""Test-time depth page: quality against the number of loops run at inference, for models
trained at a fixed loop count and with a random count per step, and early-exit
compute-quality curves (docs/results/test_time_depth.md).

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports test_time_depth --part lm
    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports test_time_depth --part mt
    python -m reports test_time_depth --page-only

Every finished run leaves one JSON in ``docs/results/test_time_depth/`` holding its
training figures and every measurement made on its best checkpoint (the loop sweep, the
level-rule comparison, the exit curves with their decoding speed); a run directory under
``runs/test-time-depth/`` that holds a checkpoint is resumed, and a run whose JSON exists
is skipped, so the command can be rerun until the table is full.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .paths import RECIPES, RESULTS, RUNS
from .runner import parser
from .training import run_context

RECORDS = RESULTS / "test_time_depth"
RUN_ROOT = RUNS / "test-time-depth"
TRAINED = 3  # loops every model here is trained with (the mean, for random-depth runs)
SWEEP = (1, 2, 3, 4, 5, 6, 8, 9, 12)  # 1 to 4x the trained count
MODES = {
    "fixed": [],
    # the count of each step ~ 1 + Poisson(lognormal) with mean 3, at most 6 (2x)
    "random": ["depth_sampling=poisson_lognormal", "loops_max=6"],
}
LM = dict(recipe="language", preset="lm-char", steps=400, archs=("looped", "ringformer", "spiral"),
          extra=["eval_windows=100", "eval_every=100"])
# a narrower translation model than the translation page's (d 128, MLP 512): 12 runs fit a CPU session
MT = dict(recipe="translation", preset="mt-small", steps=800, archs=("looped", "universal", "ringformer"),
          extra=["d_model=128", "d_ff=512", "test_splits=", "val_bleu_sentences=300", "eval_every=400"])
LM_EXITS = {"kl": (0.003, 0.01, 0.03, 0.1), "change": (0.2, 0.4, 0.6)}
MT_EXITS = {"kl": (0.01, 0.03, 0.1, 0.3), "change": (0.2, 0.4)}


def run_name(part: str, arch: str, mode: str, seed: int) -> str:
    return f"{part}-{arch}-{mode}-s{seed}"


def train(part: str, arch: str, mode: str, seed: int, device: str, steps: int | None) -> tuple[dict, Path]:
    """Train (or resume) one run; returns its results.json and its run directory."""
    from loopformer.train.state import resolve

    spec = LM if part == "lm" else MT
    out = RUN_ROOT / run_name(part, arch, mode, seed)
    settings = [*spec["extra"], *MODES[mode], f"seed={seed}", f"device={device}",
                f"max_steps={steps or spec['steps']}", "progress=false", "tensorboard=off"]
    if part == "mt" and arch == "ringformer":
        settings.append("signal_rank=8")
    resume = resolve(out / "last") is not None
    recipe = str(RECIPES / f"{spec['recipe']}.yaml")
    if part == "lm":
        from loopformer.tasks.language_run import train_language as trainer
    else:
        from loopformer.tasks.translation_run import train_translation as trainer
    print(f"== {run_name(part, arch, mode, seed)}", flush=True)
    return trainer(arch, spec["preset"], settings, config_file=recipe, out=str(out), resume=resume), out


def measure(part: str, folder: Path) -> dict:
    """Every measurement the page shows, on one best checkpoint."""
    from . import test_time_depth_measure as m

    if part == "lm":
        from loopformer.tasks.language_run import load_language_checkpoint

        model, task = load_language_checkpoint(folder)
        return m.measure_lm(model, task, SWEEP, LM_EXITS)
    from loopformer.tasks.translation_run import load_translation_checkpoint

    model, task = load_translation_checkpoint(str(folder))
    return m.measure_mt(model, task, SWEEP, MT_EXITS)


def run_one(part: str, arch: str, mode: str, seed: int, device: str, steps: int | None) -> None:
    record = RECORDS / f"{run_name(part, arch, mode, seed)}.json"
    if record.exists():
        return
    started = time.time()
    results, out = train(part, arch, mode, seed, device, steps)
    data = {**run_context(device), "part": part, "arch": arch, "mode": mode, "seed": seed,
            "trained_loops": TRAINED, "settings": MODES[mode],
            "steps": results["train"]["step"], "train_seconds": results["train"]["train_seconds"],
            "best_score": results["train"]["best_score"]}
    data.update(measure(part, out / "best"))
    data["wall_seconds"] = time.time() - started
    RECORDS.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(record)


def main(argv: list[str] | None = None) -> int:
    ap = parser("test_time_depth", __doc__)
    ap.add_argument("--part", choices=["lm", "mt", "all"], default="all")
    ap.add_argument("--archs", default=None, help="comma-separated subset of the part's models")
    ap.add_argument("--modes", default="fixed,random")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=None, help="override the part's step budget (trial runs)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--page-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.page_only:
        for part in (["lm", "mt"] if args.part == "all" else [args.part]):
            spec = LM if part == "lm" else MT
            archs = args.archs.split(",") if args.archs else spec["archs"]
            for seed in (int(s) for s in args.seeds.split(",")):
                for arch in archs:
                    for mode in args.modes.split(","):
                        run_one(part, arch, mode, seed, args.device, args.steps)
    from .test_time_depth_page import write_page

    print(f"wrote {write_page(RECORDS, RESULTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
