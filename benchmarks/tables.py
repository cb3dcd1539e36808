"""What the result-table scripts share: the command line, the resumable run loop, and the
"mean ± half-range" formatting."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Callable


def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{statistics.mean(values):.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}"


def main(doc: str, models: dict, results: Path, default_steps: int,
         run_one: Callable[[str, int, int], None], write_page: Callable[[int, list[int]], None]) -> int:
    """Run every missing (model, seed) in order (seeds outer), rewriting the page after each."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=default_steps)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--models", default=",".join(models))
    ap.add_argument("--page-only", action="store_true")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = args.models.split(",")
    unknown = [m for m in chosen if m not in models]
    if unknown:
        ap.error(f"unknown rows: {', '.join(unknown)}; choose from {', '.join(models)}")
    if not args.page_only:
        for seed in seeds:
            for name in chosen:
                if (results / f"{name}-s{seed}.json").is_file():
                    continue
                print(f"== {name} seed {seed}", flush=True)
                run_one(name, seed, args.steps)
                write_page(args.steps, seeds)
    write_page(args.steps, seeds)
    return 0
