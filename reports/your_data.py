"""The "your own data" page: the same recipes trained from plain files and from the
built-in registry, side by side (docs/results/your_data.md).

``python -m reports your_data --translation`` trains the translation pair (Multi30k
En→De through the registry, then through ``data=`` on its files), resumably, one JSON
per finished run in docs/results/your_data/; the image-folder and token-file records
come from ``reports.your_data_images`` and ``reports.your_data_text``. ``--curves``
draws each pair's curves with ``loopformer plot`` from the run directories under
``--runs`` (where the pairs were trained). Without options the page is only rebuilt
from the records.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .paths import RESULTS, ROOT, RUNS
from .runner import parser
from .training import run_context, train_with_cli
from .your_data_page import render

RECORDS = RESULTS / "your_data"
RECIPE = "configs/mt-small-cpu.yaml"
SOURCES = ("registry", "files")


def translation_command(source: str, seed: int, out: Path, multi30k_dir: str) -> list[str]:
    """The exact ``loopformer`` arguments of one run of the pair (En→De, the main-job recipe)."""
    args = ["train", "translation", "--model", "ringformer", "--preset", "mt-small", "--config", RECIPE,
            "--out", str(out), "src_lang=en", "tgt_lang=de", f"seed={seed}", "progress=false"]
    if source == "files":
        args += [f"data={multi30k_dir}", "test_splits=test_2016_flickr,test_2017_flickr"]
    else:
        args += ["test_splits=test2016,test2017"]
    return args


def train_translation_pair(seed: int, multi30k_dir: str, device: str, steps: int | None,
                           sources: tuple[str, ...] = SOURCES) -> None:
    for source in sources:
        record = RECORDS / f"translation-{source}-s{seed}.json"
        if record.exists():
            continue
        out = RUNS / "your-data" / f"translation-{source}-s{seed}"
        args = translation_command(source, seed, out, multi30k_dir) + [f"device={device}"]
        args += [f"max_steps={steps}"] if steps else []
        started = time.time()
        results = train_with_cli(args, out)
        RECORDS.mkdir(parents=True, exist_ok=True)
        record_data = translation_record(source, seed, args, results, started, device)
        record.write_text(json.dumps(record_data, indent=1) + "\n")


def translation_record(source: str, seed: int, args: list[str], results: dict, started: float, device: str) -> dict:
    tests = {k: v for k, v in results.items() if isinstance(v, dict) and "bleu" in v}
    shown = [a.replace(str(ROOT) + "/", "") for a in args]
    return {
        **run_context(device), "source": source, "seed": seed, "command": "loopformer " + " ".join(shown),
        "steps": results["train"]["step"], "train_seconds": results["train"]["train_seconds"],
        "wall_seconds": time.time() - started, "best_val_bleu": results["train"]["best_score"],
        "length_penalty": results.get("length_penalty_choice", {}).get("length_penalty"),
        "tests": {name: {"bleu": r["bleu"], "text": r["text"], "signature": r["signature"]}
                  for name, r in tests.items()},
        "data": results.get("data", {"data": "multi30k"}),
    }


def draw_curves(roots: list[Path]) -> None:
    """One ``loopformer plot`` figure per pair whose two run directories exist, and the
    page section showing them with the command that drew them."""
    from loopformer.cli import main as cli

    lines = ["## Curves: `loopformer plot`", ""]
    for pair, title in (("translation", "translation pair"), ("vision", "image pair")):
        dirs = sorted((d for root in roots for d in root.glob(f"{pair}-*-s0")), key=lambda d: d.name)
        if len(dirs) < 2:
            continue
        png = RECORDS / f"curves-{pair}.png"
        args = ["plot", *map(str, dirs), "--out", str(png)]
        if cli(args) != 0:
            raise SystemExit(f"loopformer plot failed on {dirs}")
        shown = " ".join(["loopformer", "plot", *(f"runs/your-data/{d.name}" for d in dirs),
                          "--out", f"docs/results/your_data/{png.name}"])
        lines += [f"The {title}, training loss, validation loss and the task metric on shared axes:", "",
                  f"    {shown}", "", f"![{title}](your_data/{png.name})", ""]
    (RECORDS / "curves.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = parser("your_data", __doc__)
    ap.add_argument("--translation", action="store_true", help="train the translation pair that is missing")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--sources", default=",".join(SOURCES), help="which runs of the pair (side by side: one each)")
    ap.add_argument("--multi30k-dir", default=os.path.join(os.environ.get("LOOPFORMER_DATA_MIRROR", ""), "multi30k"),
                    help="the folder of Multi30k's files (default: $LOOPFORMER_DATA_MIRROR/multi30k)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=None, help="a budget other than the recipe's (smoke tests)")
    ap.add_argument("--curves", action="store_true", help="draw each pair's curves (loopformer plot)")
    ap.add_argument("--runs", default=str(RUNS / "your-data"),
                    help="where the pairs' run directories are (comma-separated folders)")
    args = ap.parse_args(argv)
    if args.translation:
        for seed in (int(s) for s in args.seeds.split(",")):
            train_translation_pair(seed, os.path.abspath(args.multi30k_dir), args.device, args.steps,
                                   tuple(args.sources.split(",")))
    if args.curves:
        draw_curves([Path(p) for p in args.runs.split(",")])
    page = RESULTS / "your_data.md"
    page.write_text(render(RECORDS))
    print(f"wrote {page}")
    return 0
