"""Figures and tables of docs/results/analysis.md from the checkpoints of the result pages.

Uses the seed-0 runs of the table scripts (``runs/table``, ``runs/vision-table``,
``runs/language-table``); an analysis whose checkpoints are missing is skipped and
listed as such. Each analysis writes its JSON and PNG into ``docs/results/analysis/``;
the prose of the page (what each figure does and does not support) is written by hand
after looking at the figures, between the markers this script leaves alone.

    LOOPFORMER_DATA_MIRROR=../shared/data python benchmarks/analysis_page.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "analysis"
RUNS = ROOT / "runs"


def best(run: str) -> Path | None:
    from loopformer.train.state import resolve

    return resolve(RUNS / run / "best")


def cka_pairs() -> list[tuple[str, str, str]]:
    return [("translation-ringformer-vs-vanilla", "table/ringformer-s0", "table/vanilla-s0"),
            ("translation-universal-vs-vanilla", "table/universal-s0", "table/vanilla-s0"),
            ("vision-ringformer-vs-vit", "vision-table/ringformer-s0", "vision-table/vit-s0"),
            ("vision-uit-vs-vit", "vision-table/uit-s0", "vision-table/vit-s0")]


def distance_runs() -> list[tuple[str, str, str]]:
    return [("mad-vit", "vision-table/vit-s0", "mad"), ("mad-uit", "vision-table/uit-s0", "mad"),
            ("mad-ringformer-vit", "vision-table/ringformer-s0", "mad"),
            ("distance-spiral", "language-table/spiral-s0", "attention-distance"),
            ("distance-spiral-coarse", "language-table/spiral-coarse-s0", "attention-distance"),
            ("distance-looped-lm", "language-table/looped-s0", "attention-distance")]


def main() -> int:
    from loopformer.analysis.compare import attention_distances, compare_cka
    from loopformer.analysis.plots import plot_cka, plot_distances

    OUT.mkdir(parents=True, exist_ok=True)
    done, missing = [], []
    for name, a, b in cka_pairs():
        pa, pb = best(a), best(b)
        if pa is None or pb is None:
            missing.append(name)
            continue
        res = compare_cka(str(pa), str(pb))
        (OUT / f"{name}.json").write_text(json.dumps(res, indent=1))
        plot_cka(res, OUT / f"{name}.png", name_a=a.split("/")[1], name_b=b.split("/")[1])
        done.append(name)
        print(f"{name}: " + ", ".join(
            f"{s} diagonal " + " ".join(f"{r['cka'][i][i]:.2f}" for i in range(min(len(r['a_layers']),
                                                                                    len(r['b_layers']))))
            for s, r in res.items()), flush=True)
    for name, run, _ in distance_runs():
        path = best(run)
        if path is None:
            missing.append(name)
            continue
        res = attention_distances(str(path))
        (OUT / f"{name}.json").write_text(json.dumps(res, indent=1))
        plot_distances(res, OUT / f"{name}.png", title=name)
        done.append(name)
        print(f"{name}: " + "; ".join(f"{s}: " + " ".join(f"{r['mean']:.1f}" for r in rows)
                                      for s, rows in res["stacks"].items()), flush=True)
    print(f"done: {', '.join(done) or 'none'}; missing checkpoints: {', '.join(missing) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
