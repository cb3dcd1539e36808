"""Figures and tables of docs/results/analysis.md from the checkpoints of the result pages.

Uses the runs of one seed (``--seed``, default 0) of the table scripts: ``runs/table``,
``runs/vision-table-<recipe>`` (``--vision-recipe``, default plain) and
``runs/language-table``; an analysis whose checkpoints are missing is skipped and listed
as such. Each analysis writes its JSON and PNG into ``docs/results/analysis/``; the prose
of ``docs/results/analysis.md`` (what each figure does and does not support) is written by
hand after looking at the figures.

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


VISION = "vision-table-plain"  # set from --vision-recipe


def cka_pairs(s: int) -> list[tuple[str, str, str]]:
    return [("translation-ringformer-vs-vanilla", f"table/ringformer-s{s}", f"table/vanilla-s{s}"),
            ("translation-universal-vs-vanilla", f"table/universal-s{s}", f"table/vanilla-s{s}"),
            ("vision-ringformer-vs-vit", f"{VISION}/ringformer-s{s}", f"{VISION}/vit-s{s}"),
            ("vision-uit-vs-vit", f"{VISION}/uit-s{s}", f"{VISION}/vit-s{s}")]


def distance_runs(s: int) -> list[tuple[str, str, str]]:
    return [("mad-vit", f"{VISION}/vit-s{s}", "mad"), ("mad-uit", f"{VISION}/uit-s{s}", "mad"),
            ("mad-ringformer-vit", f"{VISION}/ringformer-s{s}", "mad"),
            ("distance-spiral", f"language-table/spiral-s{s}", "attention-distance"),
            ("distance-spiral-coarse", f"language-table/spiral-coarse-s{s}", "attention-distance"),
            ("distance-looped-lm", f"language-table/looped-s{s}", "attention-distance")]


def main() -> int:
    import argparse

    from loopformer.tasks.analyze import attention_distances, compare_cka
    from loopformer.analysis.plots import plot_cka, plot_distances
    from loopformer.errors import LoopformerError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="which seed's checkpoints to analyse")
    ap.add_argument("--vision-recipe", default="plain", help="which vision table's runs (plain or augment)")
    args = ap.parse_args()
    seed = args.seed
    global VISION
    VISION = f"vision-table-{args.vision_recipe}"

    OUT.mkdir(parents=True, exist_ok=True)
    done, missing = [], []
    for name, a, b in cka_pairs(seed):
        pa, pb = best(a), best(b)
        if pa is None or pb is None:
            missing.append(name)
            continue
        try:
            res = compare_cka(str(pa), str(pb))
        except LoopformerError as exc:
            print(f"{name}: skipped ({exc})", flush=True)
            missing.append(name)
            continue
        (OUT / f"{name}.json").write_text(json.dumps(res, indent=1))
        plot_cka(res, OUT / f"{name}.png", name_a=a.split("/")[1], name_b=b.split("/")[1])
        done.append(name)
        print(f"{name}: " + ", ".join(
            f"{s} diagonal " + " ".join(f"{r['cka'][i][i]:.2f}" for i in range(min(len(r['a_layers']),
                                                                                    len(r['b_layers']))))
            for s, r in res.items()), flush=True)
    for name, run, _ in distance_runs(seed):
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
