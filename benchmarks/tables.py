"""What the result-table scripts share: the command line, the resumable run loop, and the
"mean ± half-range" formatting."""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path
from typing import Callable

# set by main(): the device every run of this invocation trains on
DEVICE = "auto"


def device_overrides() -> list[str]:
    return [f"device={DEVICE}"]


def device_label() -> str:
    """What a run's speed figures were measured on, for its JSON and the page."""
    import torch

    from loopformer.device import resolve_device

    dev = resolve_device(DEVICE)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU, {torch.get_num_threads()} thread(s)"


def run_context() -> dict:
    """Where a run's speed was measured: device, threads, and how many table runs shared
    the machine (``TABLE_CONCURRENT_RUNS``, set by whoever launched them side by side)."""
    import os

    import torch

    return {"device": device_label(), "threads": torch.get_num_threads(),
            "concurrent_runs": int(os.environ.get("TABLE_CONCURRENT_RUNS", "1"))}


def speed_rows(records: list[dict], names: list[str], keys: list[str], digits: int = 0) -> str:
    """One row per (table row, device): mean of each speed figure over that device's runs."""
    out = []
    for name in names:
        by_device: dict[str, list[dict]] = {}
        for r in records:
            if r["name"] == name:
                label = r.get("device") or f"CPU, {r.get('threads', '?')} thread(s)"
                by_device.setdefault(label, []).append(r)
        for device, rs in by_device.items():
            cells = " | ".join(f"{statistics.mean(r[k] for r in rs):,.{digits}f}" for k in keys)
            out.append(f"| {name} | {device} | {len(rs)} | {cells} |")
    return "\n".join(out)


def mean_half(values: list[float]) -> tuple[float, float]:
    """Mean and half the range over seeds: the only noise estimate two seeds give."""
    return statistics.mean(values), (max(values) - min(values)) / 2


def pooled_sd(groups: list[list[float]]) -> float | None:
    """Seed-to-seed standard deviation pooled over every row with two or more seeds.

    Two seeds give each row a noisy spread of its own (two runs can agree to 0.01 by
    chance), so rows are compared against the noise of all rows together: the rows share
    one recipe and differ by one switch, so their seed noise is assumed alike."""
    num = sum(sum((v - statistics.mean(g)) ** 2 for v in g) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return (num / dof) ** 0.5 if dof else None


def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    mean, half = mean_half(values)
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def main(doc: str, models: dict, results: Path, default_steps: int,
         run_one: Callable[[str, int, int], None], write_page: Callable[[int, list[int]], None]) -> int:
    """Run every missing (model, seed) in order (seeds outer), rewriting the page after each."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=default_steps)
    ap.add_argument("--seeds", default="0,1", help="seeds to run (the page counts against 0,1 at least)")
    ap.add_argument("--models", default=",".join(models))
    ap.add_argument("--page-only", action="store_true")
    ap.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu, cuda or cuda:N")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    seeds = [int(s) for s in args.seeds.split(",")]
    # the page counts runs against the default seeds even when this call runs only some,
    # and against every seed that already has a run (so a partial third seed shows as such)
    found = {int(m.group(1)) for p in results.glob("*.json") if (m := re.search(r"-s(\d+)$", p.stem))}
    page_seeds = sorted(set(seeds) | {0, 1} | found)
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
                write_page(args.steps, page_seeds)
    write_page(args.steps, page_seeds)
    return 0
