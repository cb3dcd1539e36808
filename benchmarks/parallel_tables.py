"""Run many result-table runs side by side on one machine (typically one GPU), each run
(table, row, seed) in its own process, with a deadline.

Models of the result pages are small: one of them leaves a GPU mostly idle, so a GPU
finishes a whole table fastest by running all its rows and seeds at once. Every run is a
normal invocation of its table script (``--models ROW --seeds S``), so finished runs are
skipped and interrupted ones resume exactly as when the scripts run one after another;
the JSONs they write are the same. Runs still going at the deadline get SIGTERM, which
makes the trainer save its resumable state before exiting.

    python benchmarks/parallel_tables.py --device cuda --deadline 480 \\
        translation:universal:0,1 vision:all:0,1 language:ringformer:0

Each job is ``TABLE:ROWS:SEEDS`` (ROWS ``all`` or comma-separated, SEEDS comma-separated),
with extra options after a second colon-separated field for the script (e.g.
``vision:all:0,1:--recipe=plain``). Logs go to ``runs/parallel/``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"translation": "translation_table", "vision": "vision_table", "language": "language_table",
           "ablation": "ablation_table"}


def expand(spec: str) -> list[tuple[str, str, str, list[str]]]:
    """``TABLE:ROWS:SEEDS[:OPTS]`` -> one (table, row, seed, options) per run."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or parts[0] not in SCRIPTS:
        raise SystemExit(f"job {spec!r} must look like TABLE:ROWS:SEEDS[:OPTS] with TABLE in {', '.join(SCRIPTS)}")
    table, rows, seeds = parts[:3]
    opts = [o.replace("=", " ", 1).split(" ") for o in parts[3].split(",")] if len(parts) == 4 else []
    flat = [x for o in opts for x in o]
    sys.path.insert(0, str(Path(__file__).parent))
    models = list(importlib.import_module(SCRIPTS[table]).MODELS)
    chosen = models if rows == "all" else rows.split(",")
    unknown = [r for r in chosen if r not in models]
    if unknown:
        raise SystemExit(f"{table} has no rows {', '.join(unknown)}; choose from {', '.join(models)}")
    return [(table, row, seed, flat) for seed in seeds.split(",") for row in chosen]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobs", nargs="+")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--deadline", type=float, default=None, help="seconds; then SIGTERM what is still running")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    args = ap.parse_args()
    runs = [r for spec in args.jobs for r in expand(spec)]
    logs = ROOT / "runs" / "parallel"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false",
               TABLE_CONCURRENT_RUNS=str(len(runs)), PYTHONUNBUFFERED="1")
    procs = []
    start = time.time()
    for table, row, seed, opts in runs:
        tag = "-".join([table, row, f"s{seed}"] + [o.lstrip("-") for o in opts])
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{SCRIPTS[table]}.py"), "--models", row, "--seeds", seed,
               "--device", args.device, *opts]
        fh = open(logs / f"{tag}.log", "w")
        procs.append((tag, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT), fh))
    print(f"started {len(procs)} runs on {args.device}", flush=True)
    stopped = False
    while any(p.poll() is None for _, p, _ in procs):
        time.sleep(2)
        if args.deadline is not None and not stopped and time.time() - start > args.deadline:
            print(f"deadline of {args.deadline:.0f}s: stopping the runs still going", flush=True)
            for _, p, _ in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            stopped = True
            stop_at = time.time()
        if stopped and time.time() - stop_at > 60:
            for _, p, _ in procs:
                if p.poll() is None:
                    p.kill()
    failed = 0
    for tag, p, fh in procs:
        fh.close()
        status = "ok" if p.returncode == 0 else f"exit {p.returncode}"
        failed += p.returncode != 0
        print(f"{tag}: {status}", flush=True)
    print(f"{len(procs) - failed} of {len(procs)} runs finished in {time.time() - start:.0f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
