"""The one run loop every table page shares: train what is missing, resumably, and
rewrite the page after each run.

A table fills over many sittings and machines, so the loop is idempotent: a (row, seed)
whose record exists is skipped, a run directory holding a checkpoint is resumed, and the
page is rewritten after every finished run so that an interruption never leaves it
behind the records."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .paths import RESULTS
from .spec import PageSpec

DEFAULT_SEEDS = "0,1"  # the seeds every page counts its runs against


def parser(command: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser named after its ``python -m reports`` command, showing the
    module's docstring as its help."""
    return argparse.ArgumentParser(prog=f"python -m reports {command}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def table_parser(spec: PageSpec, doc: str | None) -> argparse.ArgumentParser:
    """The options every table page takes; a page adds its own before parsing."""
    ap = parser(spec.name, doc)
    ap.add_argument("--steps", type=int, default=spec.default_steps)
    ap.add_argument("--seeds", default=DEFAULT_SEEDS, help="seeds to run (the page counts against 0,1 at least)")
    ap.add_argument("--models", default=",".join(spec.rows))
    ap.add_argument("--page-only", action="store_true")
    ap.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu, cuda or cuda:N")
    return ap


def page_seeds(spec: PageSpec, seeds: list[int]) -> list[int]:
    """The seeds the page counts runs against: the default ones even when this call runs
    only some, and every seed that already has a record (so a partial third seed shows as
    such)."""
    found = {int(m.group(1)) for p in spec.results.glob("*.json") if (m := re.search(r"-s(\d+)$", p.stem))}
    return sorted(set(seeds) | {int(s) for s in DEFAULT_SEEDS.split(",")} | found)


def write_page(spec: PageSpec, steps: int, seeds: list[int], out: Path = RESULTS) -> Path:
    """Render the page from the records and write it (and its figures) under ``out``."""
    path = out / spec.page
    text = spec.render(spec, steps, seeds, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run_one(spec: PageSpec, name: str, seed: int, steps: int, device: str) -> dict:
    """Train (or resume) one (row, seed) of the page and write its record. A row with a
    budget of its own (``Row.steps``) keeps it whatever ``steps`` says."""
    from .training import train_row

    row = spec.rows[name]
    return train_row(row, name, seed, row.steps or steps, device, spec.run_dir(name, seed), spec.results)


def run_table(spec: PageSpec, args: argparse.Namespace, ap: argparse.ArgumentParser, out: Path = RESULTS) -> int:
    """Run every missing (row, seed) of ``args`` in order (seeds outer, so a first seed of
    every row comes before any second one), rewriting the page (under ``out``) after each."""
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = args.models.split(",")
    unknown = [m for m in chosen if m not in spec.rows]
    if unknown:
        ap.error(f"unknown rows: {', '.join(unknown)}; choose from {', '.join(spec.rows)}")
    on_page = page_seeds(spec, seeds)
    if not args.page_only:
        for seed in seeds:
            for name in chosen:
                if spec.record_path(name, seed).is_file():
                    continue
                print(f"== {name} seed {seed}", flush=True)
                run_one(spec, name, seed, args.steps, args.device)
                write_page(spec, args.steps, on_page, out)
    write_page(spec, args.steps, on_page, out)
    return 0


def main(spec: PageSpec, doc: str | None, argv: list[str] | None) -> int:
    """The command line of a table page without options of its own."""
    ap = table_parser(spec, doc)
    return run_table(spec, ap.parse_args(argv), ap)
