"""Analysis figures (docs/results/analysis/) from the checkpoints of the table pages.

Uses the runs of one seed (``--seed``, default 0) of the tables: ``runs/table``,
``runs/vision-table-<recipe>`` (``--vision-recipe``, default plain) and
``runs/language-table``; an analysis whose checkpoints are missing is skipped and listed
as such. Each analysis writes its JSON and PNG into ``docs/results/analysis/``; the prose
of ``docs/results/analysis.md`` (what each figure does and does not support) is written by
hand after looking at the figures.

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports analysis
"""

from __future__ import annotations

import json
from pathlib import Path

from . import language, runner, translation, vision
from .paths import RESULTS

OUT = RESULTS / "analysis"


def best(run: Path) -> Path | None:
    """The best checkpoint of a run directory, if this machine has it."""
    from loopformer.train.state import resolve

    return resolve(run / "best")


def cka_pairs(seed: int, vision_recipe: str) -> list[tuple[str, Path, Path]]:
    """(figure name, run A, run B): each looped model against the vanilla model of its table."""
    mt, vit = translation.SPEC, vision.page_spec(vision_recipe)
    return [("translation-ringformer-vs-vanilla", mt.run_dir("ringformer", seed), mt.run_dir("vanilla", seed)),
            ("translation-universal-vs-vanilla", mt.run_dir("universal", seed), mt.run_dir("vanilla", seed)),
            ("vision-ringformer-vs-vit", vit.run_dir("ringformer", seed), vit.run_dir("vit", seed)),
            ("vision-uit-vs-vit", vit.run_dir("uit", seed), vit.run_dir("vit", seed))]


def distance_runs(seed: int, vision_recipe: str) -> list[tuple[str, Path]]:
    """(figure name, run): mean attention distance of the ViTs (MAD) and of the LMs."""
    vit, lm = vision.page_spec(vision_recipe), language.SPEC
    return [("mad-vit", vit.run_dir("vit", seed)), ("mad-uit", vit.run_dir("uit", seed)),
            ("mad-ringformer-vit", vit.run_dir("ringformer", seed)),
            ("distance-spiral", lm.run_dir("spiral", seed)),
            ("distance-spiral-coarse", lm.run_dir("spiral-coarse", seed)),
            ("distance-looped-lm", lm.run_dir("looped", seed))]


def run_cka(pairs: list[tuple[str, Path, Path]], done: list[str], missing: list[str]) -> None:
    """Layer-by-layer CKA of each pair whose two checkpoints exist; a pair the analysis
    refuses (e.g. models of different tasks) is skipped, not fatal."""
    from loopformer.analysis.plots import plot_cka
    from loopformer.errors import LoopformerError
    from loopformer.tasks.analyze import compare_cka

    for name, a, b in pairs:
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
        plot_cka(res, OUT / f"{name}.png", name_a=a.name, name_b=b.name)
        done.append(name)
        print(f"{name}: " + ", ".join(
            f"{s} diagonal " + " ".join(f"{r['cka'][i][i]:.2f}" for i in range(min(len(r['a_layers']),
                                                                                    len(r['b_layers']))))
            for s, r in res.items()), flush=True)


def run_distances(runs: list[tuple[str, Path]], done: list[str], missing: list[str]) -> None:
    """Attention distance per level of each run whose checkpoint exists."""
    from loopformer.analysis.plots import plot_distances
    from loopformer.tasks.analyze import attention_distances

    for name, run in runs:
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


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("analysis", __doc__)
    ap.add_argument("--seed", type=int, default=0, help="which seed's checkpoints to analyse")
    ap.add_argument("--vision-recipe", default=vision.MAIN, choices=list(vision.RECIPES),
                    help="which vision table's runs (plain or augment)")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    missing: list[str] = []
    run_cka(cka_pairs(args.seed, args.vision_recipe), done, missing)
    run_distances(distance_runs(args.seed, args.vision_recipe), done, missing)
    print(f"done: {', '.join(done) or 'none'}; missing checkpoints: {', '.join(missing) or 'none'}")
    return 0
