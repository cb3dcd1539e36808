"""Ablations page: RingFormer's switches and rank sweep on Multi30k De->En, the main
switches again on Fashion-MNIST, and the representation probe.

Every variant is ``ringformer-mt-small`` with one switch changed, trained with exactly the
recipe and step budget of the translation page (``configs/tables/translation.yaml``), so
the default RingFormer and the reference baselines are read from that page's JSONs, not
retrained. The ``vit-*`` rows are ``ringformer-vit-tiny`` with the vision page's main
recipe and budget. Finished runs are one JSON each in ``docs/results/ablations/``; an
interrupted run resumes from ``runs/ablation/``. Rows can be run one at a time
(``--models``) and across sittings.

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports ablations
    python -m reports ablations --models rank-d64 --seeds 0
    python -m reports ablations --page-only
    python -m reports ablations --probe   # the representation probe (trains missing checkpoints)
"""

from __future__ import annotations

import statistics
from pathlib import Path

from . import runner, translation, vision
from .ablation_figure import rank_reading, rank_sweep_figure
from .ablation_probe import probe_section, run_probes
from .paths import RESULTS, RUNS
from .spec import PageSpec, Row, load_records
from .stats import pooled_sd, spread

# row -> (description, overrides of ringformer-mt-small)
SWITCHES = {
    "static": ("static per-level signals (no input dependence)", ["signal_mode=static"]),
    "before": ("signals added before the Q/K/V projections, W(x + g(x))", ["signal_placement=before"]),
    "no-attn": ("no attention signals (FFN signal only)", ["signal_q=false", "signal_k=false", "signal_v=false"]),
    "no-ffn": ("no FFN signal (attention signals only)", ["signal_ffn=false"]),
    "shared-norms": ("one set of LayerNorms for all levels", ["shared_level_norms=true"]),
}
VARIANTS = {name: Row("ringformer", "mt-small", translation.RECIPE, tuple(extra), what)
            for name, (what, extra) in SWITCHES.items()}
RANKS = {f"rank-d{k}": Row("ringformer", "mt-small", translation.RECIPE, (f"signal_rank_divisor={k}",),
                           f"rank d/{k} = {256 // k}") for k in (64, 32, 8, 4)}
# The main variants again as ringformer-vit-tiny on Fashion-MNIST, with the vision page's
# recipe and budget (VISION_STEPS, whatever --steps sets for the translation rows). They
# keep the ViT settings they were first trained with (dropout on the attention output,
# per-level eps 1e-6, PyTorch's default MLP init; the presets now follow the official
# code) so that every seed of a row, and the default row they are compared with, is one model.
PRE_FIX = ("attn_residual_dropout=true", "level_norm_eps=1e-6", "ffn_xavier_init=false")
VISION_STEPS = vision.SPEC.default_steps
VISION = {f"vit-{name}": Row("ringformer", "vit-tiny", vision.recipe("plain"), (*extra, *PRE_FIX), what,
                             steps=VISION_STEPS)
          for name, (what, extra) in SWITCHES.items()}
ROWS = {**VARIANTS, **RANKS, **VISION}


def render(spec: PageSpec, steps: int, seeds: list[int], out: Path) -> str:
    """The whole page from the ablation records, the translation page's records (default
    row and references) and the vision page's records before the preset fix; the
    rank-sweep figure is written under ``out``."""
    records = load_records(spec.results)
    reference = load_records(translation.SPEC.results)
    default = [r for r in reference if r["name"] == "ringformer"]
    vision_default = [r for r in load_records(vision.SPEC.results / "before-fix") if r["name"] == "ringformer"]
    figure_path = out / spec.results.relative_to(RESULTS) / "rank-sweep.png"
    figure = ("\n![BLEU against parameters](ablations/rank-sweep.png)\n\n" + rank_reading(records, reference)
              if rank_sweep_figure(records, reference, figure_path)
              else "\n(The rank-sweep figure appears once two ranks have runs.)\n")
    return (_intro(steps) + "\n".join(_main_rows(records, default, vision_default, seeds)) + "\n\n"
            + _what_it_says(records, default, vision_default) + _references(reference)
            + f"\n## Rank sweep\n{figure}\n{probe_section()}" + _runs(records))


def _intro(steps: int) -> str:
    return f"""# RingFormer ablations and rank sweep (Multi30k De→En)

Produced by `python -m reports ablations` (rerun it to fill in missing runs; each finished
run is one JSON in `docs/results/ablations/`). Every row is `ringformer-mt-small` (d 256,
3 + 3 levels, rank d/16 = 16 unless stated) with one switch changed, trained with the
recipe and budget of [translation.md](translation.md): {steps:,} steps of ~2,048-token
batches, AdamW lr 1e-3, inverse-square-root decay after 150 warmup steps, best validation
checkpoint scored with beam 4. The default row and the reference models are that page's
runs. The Fashion-MNIST column trains the main variants as `ringformer-vit-tiny` (d 192,
6 levels, rank 12) with the recipe and budget of [vision.md](vision.md) ({VISION_STEPS:,} steps of
256 images, no augmentation) and the ViT settings in use when they were first run
(dropout 0.1 on the attention output, per-level LayerNorm eps 1e-6, PyTorch's default MLP
initialisation: the `ringformer-vit-tiny` preset has since moved to the official code's values); \
its default row is the vision
page's runs with those settings (`docs/results/vision/before-fix/`). Spread is half the range
over seeds.

| row | variant | non-embedding | test2016 BLEU | test2017 BLEU | Fashion-MNIST test % (non-embedding) | seeds done |
|---|---|---|---|---|---|---|
"""


def _main_rows(records: list[dict], default: list[dict], vision_default: list[dict], seeds: list[int]) -> list[str]:
    """One row per translation variant (the default first), with its Fashion-MNIST twin."""
    rows = []
    described = {"ringformer": "default RingFormer (translation and vision tables)",
                 **{name: row.about for name, row in {**VARIANTS, **RANKS}.items()}}
    for name, what in described.items():
        rs = default if name == "ringformer" else [r for r in records if r["name"] == name]
        vs = vision_default if name == "ringformer" else [r for r in records if r["name"] == f"vit-{name}"]
        vision_cell = (f"{spread([r['test_accuracy'] for r in vs])} ({vs[0]['non_embedding']:,})" if vs
                       else ("–" if name in VARIANTS or name == "ringformer" else ""))
        done = f"{len(rs)} of {len(seeds)}" + (f"; vision {len(vs)} of {len(seeds)}" if f"vit-{name}" in VISION
                                                else "")
        if not rs:
            rows.append(f"| {name} | {what} | – | – | – | {vision_cell} | {done} |")
            continue
        rows.append(f"| {name} | {what} | {rs[0]['non_embedding']:,} | {spread([r['test2016'] for r in rs])} | "
                    f"{spread([r['test2017'] for r in rs])} | {vision_cell} | {done} |")
    return rows


def _references(reference: list[dict]) -> str:
    refs = []
    for name in ("vanilla", "vanilla-matched", "universal", "looped"):
        rs = [r for r in reference if r["name"] == name]
        if rs:
            refs.append(f"| {name} | {rs[0]['non_embedding']:,} | {spread([r['test2016'] for r in rs])} | "
                        f"{spread([r['test2017'] for r in rs])} | {len(rs)} |")
    return ("\nReference models (translation table):\n\n| model | non-embedding | test2016 BLEU | test2017 BLEU | "
            "seeds |\n|---|---|---|---|---|\n" + "\n".join(refs) + "\n")


def _runs(records: list[dict]) -> str:
    detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['train_seconds'] / 60:.1f} | {r.get('device', '?')} | "
        f"{r['best_val_bleu']:.2f} | {r['test2016']:.2f} | {r['test2017']:.2f} |" for r in records
        if r["name"] not in VISION)
    vision_detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['train_seconds'] / 60:.1f} | {r.get('device', '?')} | "
        f"{r['best_val_accuracy']:.2f} | {r['test_accuracy']:.2f} |" for r in records if r["name"] in VISION)
    return f"""
## Runs

| row | seed | steps | train minutes | device | best val BLEU | test2016 | test2017 |
|---|---|---|---|---|---|---|---|
{detail}

| vision row | seed | steps | train minutes | device | best val accuracy | test accuracy |
|---|---|---|---|---|---|---|
{vision_detail}
"""


def _what_it_says(records: list[dict], default: list[dict], vision_default: list[dict]) -> str:
    """The readings of both tasks: a summary sentence per task, then one sentence per
    variant, with how many crossings chance alone would give over that many tests."""
    labels = {name: f"`{name}` ({row.about})" for name, row in {**VARIANTS, **RANKS}.items()}
    readings = reading(records, default, "test2016", "test2016 BLEU", labels)
    readings += reading(records, vision_default, "test_accuracy", "Fashion-MNIST points",
                        {f"vit-{n}": f"`{n}` on Fashion-MNIST" for n in VARIANTS})
    if not readings:
        return ""
    sums = [summary(records, default, "test2016", [*VARIANTS, *RANKS], "Multi30k test2016 BLEU"),
            summary(records, vision_default, "test_accuracy", list(VISION), "Fashion-MNIST accuracy")]
    return ("What the measured rows say (computed from the JSONs when the page is written):\n\n"
            + "".join(f"**{line}**\n\n" for line in sums if line)
            + "Each sentence below is a two-sided test at roughly 95% (normal approximation): over these "
            f"{len(readings)} comparisons about {len(readings) / 20:.1f} would cross the line by chance "
            "alone, so a crossing counts for more when it holds with more seeds (the lines above give the "
            "seeds behind each). "
            + device_reading(records + default)
            + "\n\n"
            + "\n".join(readings) + "\n")


def _compare(records: list[dict], default: list[dict], key: str, names) -> tuple[float | None, list[tuple]]:
    """Each measured variant against the default: (name, seeds, difference of means,
    standard error of that difference). The seed-to-seed s.d. is pooled over the default
    and every variant of the task: two seeds per row are too few for a row's own spread
    to be the noise estimate."""
    groups = [[r[key] for r in default]] + [[r[key] for r in records if r["name"] == n] for n in names]
    sd = pooled_sd(groups)
    base = [r[key] for r in default]
    out = []
    for name in names:
        values = [r[key] for r in records if r["name"] == name]
        if values and base:
            se = sd * (1 / len(values) + 1 / len(base)) ** 0.5 if sd is not None else None
            out.append((name, len(values), statistics.mean(values) - statistics.mean(base), se))
    return sd, out


def reading(records: list[dict], default: list[dict], key: str, unit: str, names: dict) -> list[str]:
    """One sentence per variant with runs: its difference from the default RingFormer
    against twice the standard error of that difference; one seed is said to be one seed."""
    out = []
    for name, seeds, diff, se in _compare(records, default, key, names)[1]:
        if se is None:
            out.append(f"- {names[name]}: {diff:+.2f} {unit} against the default (no seed noise measured yet).")
            continue
        verdict = "a measured difference" if abs(diff) > 2 * se else "not a measured difference"
        out.append(f"- {names[name]}: {diff:+.2f} {unit} against the default, {verdict} "
                   f"(twice its standard error: {2 * se:.2f}{'' if seeds > 1 else '; one seed so far'}).")
    return out


def summary(records: list[dict], default: list[dict], key: str, names: list[str], task: str) -> str:
    """The table's reading in one sentence: which switches move the result by more than
    twice the standard error, and the pooled noise that judgement rests on."""
    sd, compared = _compare(records, default, key, names)
    if sd is None or not compared:
        return ""
    base = len(default)
    moved = [f"`{name.removeprefix('vit-')}` ({diff:+.2f}; {seeds} seeds against the default's {base})"
             for name, seeds, diff, se in compared if abs(diff) > 2 * se]
    head = (f"{task}: of {len(compared)} variants, " + (", ".join(moved) + (" moves" if len(moved) == 1 else " move")
            if moved else "none moves") + " the result by more than twice the standard error of the difference "
            f"(seed-to-seed s.d. pooled over all rows: {sd:.2f})")
    rest = len(compared) - len(moved)
    return head + (f"; the other {rest} are indistinguishable from the default at this budget." if moved and rest
                   else ".")


def device_reading(records: list[dict]) -> str:
    """Whether the device a seed ran on shows in the result: over translation rows whose
    seeds ran on different devices, the GPU seeds minus the CPU seeds."""
    diffs = []
    for name in sorted({r["name"] for r in records if r["name"] not in VISION}):
        rs = [r for r in records if r["name"] == name]
        on_cpu = [not r.get("device") or str(r["device"]).startswith("CPU") for r in rs]  # older records: CPU
        cpu = [r["test2016"] for r, c in zip(rs, on_cpu) if c]
        gpu = [r["test2016"] for r, c in zip(rs, on_cpu) if not c]
        if cpu and gpu:
            diffs.append(statistics.mean(gpu) - statistics.mean(cpu))
    if len(diffs) < 2:
        return ""
    return (f"Seeds of a row ran on different devices (last tables): over the {len(diffs)} translation rows with one "
            f"seed on each, the GPU seed minus the CPU seed averages {statistics.mean(diffs):+.2f} test2016 BLEU "
            f"(from {min(diffs):+.2f} to {max(diffs):+.2f}), {sum(d > 0 for d in diffs)} of {len(diffs)} positive.")


SPEC = PageSpec(name="ablations", rows=ROWS, results=RESULTS / "ablations", page="ablations.md",
                runs=RUNS / "ablation", default_steps=2400, render=render)


def main(argv: list[str] | None = None) -> int:
    """The table command line plus ``--probe``, which measures the representation probe
    (training the checkpoints it lacks with ``--steps`` and ``--device``) and rewrites the page."""
    ap = runner.table_parser(SPEC, __doc__)
    ap.add_argument("--probe", action="store_true", help="run the representation probe instead of the table")
    args = ap.parse_args(argv)
    if args.probe:
        run_probes(args.steps, args.device)
        runner.write_page(SPEC, args.steps, runner.page_seeds(SPEC, [int(s) for s in args.seeds.split(",")]))
        return 0
    return runner.run_table(SPEC, args, ap)
