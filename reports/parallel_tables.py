"""Run many table runs side by side on one machine (typically one GPU), each run (page,
row, seed) in its own process, with a deadline.

Models of the result pages are small: one of them leaves a GPU mostly idle, so a GPU
finishes a whole table fastest by running all its rows and seeds at once. Every run is a
normal invocation of its page (``python -m reports PAGE --models ROW --seeds S``), so
finished runs are skipped and interrupted ones resume exactly as when the pages run one
after another; the JSONs they write are the same. Runs still going at the deadline get
SIGTERM, which makes the trainer save its resumable state before exiting.

    python -m reports parallel_tables --device cuda --deadline 480 \\
        translation:universal:0,1 vision:all:0,1 language:ringformer:0

Each job is ``PAGE:ROWS:SEEDS`` (PAGE one of translation, vision, language, ablations;
ROWS ``all`` or comma-separated, SEEDS comma-separated), with extra options for the page
in a fourth colon-separated field (e.g. ``vision:all:0,1:--recipe=plain``). Logs go to
``runs/parallel/``.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time

from . import runner
from .paths import ROOT, RUNS

TABLES = ("translation", "vision", "language", "ablations")


def expand(spec: str) -> list[tuple[str, str, str, list[str]]]:
    """``PAGE:ROWS:SEEDS[:OPTS]`` -> one (page, row, seed, options) per run."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or parts[0] not in TABLES:
        raise SystemExit(f"job {spec!r} must look like PAGE:ROWS:SEEDS[:OPTS] with PAGE in {', '.join(TABLES)}")
    table, rows, seeds = parts[:3]
    opts = [o.replace("=", " ", 1).split(" ") for o in parts[3].split(",")] if len(parts) == 4 else []
    flat = [x for o in opts for x in o]
    models = list(importlib.import_module(f"reports.{table}").SPEC.rows)
    chosen = models if rows == "all" else rows.split(",")
    unknown = [r for r in chosen if r not in models]
    if unknown:
        raise SystemExit(f"{table} has no rows {', '.join(unknown)}; choose from {', '.join(models)}")
    return [(table, row, seed, flat) for seed in seeds.split(",") for row in chosen]


def start(runs: list[tuple[str, str, str, list[str]]], device: str, threads: int) -> list[tuple]:
    """One process per run, each logging to ``runs/parallel/<tag>.log``; every run is told
    how many share the machine (``TABLE_CONCURRENT_RUNS``, recorded with its speed)."""
    logs = RUNS / "parallel"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false",
               TABLE_CONCURRENT_RUNS=str(len(runs)), PYTHONUNBUFFERED="1")
    procs = []
    for table, row, seed, opts in runs:
        tag = "-".join([table, row, f"s{seed}"] + [o.lstrip("-") for o in opts])
        cmd = [sys.executable, "-m", "reports", table, "--models", row, "--seeds", seed, "--device", device, *opts]
        fh = open(logs / f"{tag}.log", "w")
        procs.append((tag, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT), fh))
    return procs


def wait(procs: list[tuple], deadline: float | None, started: float) -> None:
    """Wait for every run; at the deadline send SIGTERM (the trainer saves its state), and
    kill whatever is still running a minute later."""
    stopped, stop_at = False, 0.0
    while any(p.poll() is None for _, p, _ in procs):
        time.sleep(2)
        if deadline is not None and not stopped and time.time() - started > deadline:
            print(f"deadline of {deadline:.0f}s: stopping the runs still going", flush=True)
            for _, p, _ in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            stopped, stop_at = True, time.time()
        if stopped and time.time() - stop_at > 60:
            for _, p, _ in procs:
                if p.poll() is None:
                    p.kill()


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("parallel_tables", __doc__)
    ap.add_argument("jobs", nargs="+")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--deadline", type=float, default=None, help="seconds; then SIGTERM what is still running")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    args = ap.parse_args(argv)
    runs = [r for spec in args.jobs for r in expand(spec)]
    started = time.time()
    procs = start(runs, args.device, args.threads)
    print(f"started {len(procs)} runs on {args.device}", flush=True)
    wait(procs, args.deadline, started)
    failed = 0
    for tag, p, fh in procs:
        fh.close()
        status = "ok" if p.returncode == 0 else f"exit {p.returncode}"
        failed += p.returncode != 0
        print(f"{tag}: {status}", flush=True)
    print(f"{len(procs) - failed} of {len(procs)} runs finished in {time.time() - started:.0f}s", flush=True)
    return 1 if failed else 0
