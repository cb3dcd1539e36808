"""Translation page: RingFormer and its baselines on Multi30k De->En.

Every row trains one ``*-mt-small`` model for the same number of optimizer steps with the
recipe of ``configs/tables/translation.yaml``, evaluates its best-validation checkpoint
on test2016 and test2017 (beam 4) and leaves one JSON in ``docs/results/translation/``.
Finished runs are skipped; an interrupted run resumes from its checkpoint in
``runs/table/``. The page ``docs/results/translation.md`` is rebuilt from whatever JSONs
exist.

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports translation
    python -m reports translation --page-only
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import runner
from .paths import RESULTS, RUNS
from .spec import PageSpec, Recipe, Row, load_records
from .stats import mean_half, pooled_sd, speed_rows, spread

RECIPE = Recipe.named("translation", "translation")
# name -> model: the 3 + 3 comparison
BASE = {
    "vanilla": Row("vanilla", "mt-small", RECIPE),
    "ringformer": Row("ringformer", "mt-small", RECIPE),
    "universal": Row("universal", "mt-small", RECIPE),
    "looped": Row("looped", "mt-small", RECIPE),
    "vanilla-matched": Row("vanilla", "mt-small", RECIPE, ("n_layers=1",)),
}
# the paper's depth: 6 encoder + 6 decoder levels (layers) at the same width and budget
DEEP = {f"{family}-6x6": Row(family, "mt-small", RECIPE, ("n_layers=6",))
        for family in ("vanilla", "looped", "ringformer", "universal")}
ROWS = {**BASE, **DEEP}


def render(spec: PageSpec, steps: int, seeds: list[int], out: Path) -> str:
    """The whole page, from the records alone (``out`` is unused: no figures)."""
    records = load_records(spec.results)
    signature = next((r["signature"] for r in records), "")
    reading = _reading(records) + depth_reading(records) + _thirty_minutes()
    return (_intro(steps) + _results_table(records, seeds) + f"\n\nsacreBLEU signature: `{signature}`\n"
            + reading + _speed(records) + _runs(records))


def _intro(steps: int) -> str:
    return f"""# Translation: RingFormer and baselines on Multi30k De→En

Produced by `python -m reports translation` (rerun it to fill in missing runs; each
finished run is one JSON in `docs/results/translation/`). All models are `*-mt-small`
(d 256, FFN 1024, 4 heads, 3 encoder + 3 decoder levels — 6 + 6 in the `-6x6` rows —, joint byte-level BPE of 8,000
tokens trained on the training split), trained by the library's trainer with one recipe:
{steps} optimizer steps of ~2,048-token batches (per side), AdamW lr 1e-3, 150 warmup
steps then inverse-square-root decay, label smoothing 0.1, gradient clipping 1.0, dropout
0.1, fp32. The checkpoint with the best validation BLEU (greedy, 300 sentences, every
400 steps) is scored with beam 4, length penalty 0.6. "vanilla-matched" is vanilla with
1+1 layers, close to RingFormer's non-embedding size.

The budget is equal in optimizer steps, not in time: runs were made on a 2-core CPU
and on a GPU with the same recipe (the device of each run is in the last table), so a
seed's result does not depend on where it ran beyond floating-point noise. Spread is half
the range over seeds.

"""


def _results_table(records: list[dict], seeds: list[int]) -> str:
    """Sizes and test BLEU per row, with how many of the page's seeds each row has."""
    rows = []
    for name in ROWS:
        rs = [r for r in records if r["name"] == name]
        if not rs:
            rows.append(f"| {name} | – | – | – | – | 0 of {len(seeds)} |")
            continue
        rows.append(
            f"| {name} | {rs[0]['non_embedding']:,} | {rs[0]['total']:,} | "
            f"{spread([r['test2016'] for r in rs])} | {spread([r['test2017'] for r in rs])} | "
            f"{len(rs)} of {len(seeds)} |"
        )
    head = "| model | non-embedding | total | test2016 BLEU | test2017 BLEU | seeds done |\n|---|---|---|---|---|---|\n"
    return head + "\n".join(rows)


def _speed(records: list[dict]) -> str:
    return f"""
## Training speed

Target tokens per second during training, per device. CPU runs shared the 2-core machine
with another job (1 thread each) or ran alone (2 threads); GPU runs shared one GPU with
the other table runs launched beside them (`concurrent_runs` in each JSON), and these
small models leave a GPU mostly idle, so GPU figures are a floor, not the hardware's
speed. Indicative only: `loopformer bench` is the tool for speed.

| model | device | runs | train tok/s |
|---|---|---|---|
{speed_rows(records, list(ROWS), ["tokens_per_s"])}
"""


def _runs(records: list[dict]) -> str:
    detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['tokens_seen']:,} | {r['train_seconds'] / 60:.1f} | "
        f"{r.get('device') or 'CPU, %s thread(s)' % r.get('threads', '?')} | {r['best_val_bleu']:.2f} | "
        f"{r['test2016']:.2f} | {r['test2017']:.2f} |"
        for r in records
    )
    return f"""
## Runs

| model | seed | steps | target tokens | train minutes | device | best val BLEU | test2016 | test2017 |
|---|---|---|---|---|---|---|---|---|
{detail}
"""


def _thirty_minutes() -> str:
    """The 30-minute check of a 3 + 3 vanilla model against a plain PyTorch script (the
    script's figure: 37.4 test2016 BLEU after 30 training minutes on this kind of machine)."""
    path = RESULTS / "translation_30min.json"
    if not path.is_file():
        return ""
    runs = json.loads(path.read_text())
    rows = "\n".join(
        f"| {r['label']} | {r['steps']:,} | {r['train_minutes']:.1f} | {r['beam']} / {r['length_penalty']} | "
        f"{r['test2016']:.2f} | {r['test2017']:.2f} |" for r in runs)
    best = max(r["test2016"] for r in runs)
    verdict = "reaches" if best >= 37.4 else "does not reach"
    return f"""
## 30 training minutes on the CPU

`vanilla-mt-small` (3 + 3) trained by `loopformer train translation` for at most 30
minutes of training time on a 2-core CPU (an AMD EPYC with AVX-512 BF16; evaluation
time not counted), best
validation checkpoint scored on the test sets. A plain PyTorch script of the same size
reached 37.4 test2016 BLEU (greedy) after 30 minutes; the best run here {verdict} that
({best:.2f}). Commands and details: `docs/results/translation_30min.json`.

| run | steps | train minutes | beam / length penalty | test2016 | test2017 |
|---|---|---|---|---|---|
{rows}
"""


def _level(ring: dict, other: dict) -> str:
    """RingFormer against one baseline on test2016: "level" when the difference of means
    is within the larger of the two half-ranges, the only noise two seeds give each row."""
    d = ring["test2016"][0] - other["test2016"][0]
    if abs(d) <= max(ring["test2016"][1], other["test2016"][1]):
        return "level with"
    return "ahead of" if d > 0 else "behind"


def _signal_ratios() -> str:
    """How large the trained level signals are, when the analysis page has measured them:
    the evidence that a RingFormer uses its signals at all."""
    sig = RESULTS / "analysis" / "signals-ringformer-mt.json"
    if not sig.is_file():
        return ""
    values = [r["ratio"] for r in json.loads(sig.read_text())]
    return (f" After training they are {min(values):.0%}–{max(values):.0%} of the norm of the "
            "projections they are added to (a seed-0 RingFormer retrained with this recipe; "
            "`loopformer analyze signals`, [analysis.md](analysis.md#level-signal-sizes)), so they "
            "are learned and used.")


def _reading(records: list[dict]) -> str:
    """The comparisons the paper makes, computed from the JSONs (empty until every 3 + 3
    row has a run)."""
    stats = {}
    for name in BASE:
        rs = [r for r in records if r["name"] == name]
        if not rs:
            return ""
        stats[name] = {k: mean_half([r[k] for r in rs]) for k in ("test2016", "test2017")}
    ring = stats["ringformer"]

    def gap(other: str) -> str:
        return " / ".join(f"{ring[k][0] - stats[other][k][0]:+.2f}" for k in ("test2016", "test2017"))

    return f"""
## Against the paper's expectations

RingFormer minus each baseline, mean BLEU (test2016 / test2017): vanilla {gap("vanilla")},
Universal {gap("universal")}, plain looped {gap("looped")}, parameter-matched vanilla
{gap("vanilla-matched")}. On test2016 RingFormer is {_level(ring, stats["universal"])} the Universal
Transformer, {_level(ring, stats["vanilla-matched"])} the vanilla model of its size and \
{_level(ring, stats["looped"])} the
plain looped model (level: within the seed spread). The paper expects it within about 1
BLEU of the same-depth vanilla model and ahead of Universal and plain looped models of
similar size.

Checked before reading an unexpected ordering as a property of the method: the parameter
counts of the presets equal the spec's hand counts (tests); the signals are zero at
initialisation, so a RingFormer starts as the plain looped model with per-level
LayerNorms; each signal is the low-rank map of the spec, and a RingFormer with its
signals removed computes exactly the plain looped model (tests).{_signal_ratios()}
What differs from the paper's setting: 3 levels instead of 6, d 256 instead of 512, and
a budget of minutes. Whether the level-by-level differences the signals provide matter
more when one layer has to play six roles is measured in the depth section below.
"""


def _depth_status(by: dict[str, list[float]]) -> str:
    """Which deep rows still lack two seeds: said first, so that no reader takes a partial
    comparison for a finished one."""
    missing = [n for n in DEEP if len(by[n]) < 2]
    done = [f"{n} ({len(by[n])} seed{'s' * (len(by[n]) != 1)})" for n in DEEP if by[n]]
    if not missing:
        return ""
    return (f"Runs still missing for two seeds of {', '.join(missing)}"
            + (f"; done so far: {', '.join(done)}" if done else "") + ". ")


def _depth_margins(by: dict[str, list[float]], sd: float | None,
                   split: str = "test2016") -> tuple[list[str], dict[int, tuple]]:
    """RingFormer minus the plain loop at each depth with its standard error, from the
    pooled seed noise: one sentence per depth that has both rows."""
    lines, margins = [], {}
    for depth, ring, loop in ((3, "ringformer", "looped"), (6, "ringformer-6x6", "looped-6x6")):
        if not by[ring] or not by[loop] or sd is None:
            continue
        d = statistics.mean(by[ring]) - statistics.mean(by[loop])
        se = sd * (1 / len(by[ring]) + 1 / len(by[loop])) ** 0.5
        margins[depth] = (d, se)
        lines.append(f"at {depth} + {depth} levels RingFormer minus the plain loop is {d:+.2f} {split} BLEU "
                     f"({len(by[ring])} and {len(by[loop])} seeds; twice the standard error of the difference: "
                     f"{2 * se:.2f})")
    return lines, margins


def _depth_verdict(margins: dict[int, tuple]) -> str:
    """Whether the margin changes from 3 to 6 levels by more than twice its standard error."""
    if len(margins) != 2:
        return ""
    change = margins[6][0] - margins[3][0]
    se = (margins[6][1] ** 2 + margins[3][1] ** 2) ** 0.5
    if abs(change) <= 2 * se:
        return (f" The margin changes by {change:+.2f} from 3 to 6 levels, within twice its standard error "
                f"({2 * se:.2f}): at this budget it does not measurably grow with depth.")
    return (f" The margin {'grows' if change > 0 else 'shrinks'} by {change:+.2f} from 3 to 6 levels, "
            f"more than twice its standard error ({2 * se:.2f}).")


def _other_split(records: list[dict]) -> str:
    """The same margins on test2017, so a reader sees whether the two test sets agree."""
    if not records or any("test2017" not in r for r in records):
        return ""
    by = {name: [r["test2017"] for r in records if r["name"] == name] for name in ROWS}
    lines, margins = _depth_margins(by, pooled_sd([v for v in by.values() if v]), "test2017")
    return (" On test2017: " + "; ".join(lines) + "." + _depth_verdict(margins)) if lines else ""


def depth_reading(records: list[dict]) -> str:
    """Whether RingFormer's margin over the plain loop grows from 3 + 3 to 6 + 6 levels,
    judged against the seed noise pooled over every row of the page."""
    by = {name: [r["test2016"] for r in records if r["name"] == name] for name in ROWS}
    sd = pooled_sd([v for v in by.values() if v])
    lines, margins = _depth_margins(by, sd)
    vanilla = ""
    if by["vanilla-6x6"] and by["ringformer-6x6"]:
        vanilla = (f" At 6 + 6, RingFormer minus vanilla is "
                   f"{statistics.mean(by['ringformer-6x6']) - statistics.mean(by['vanilla-6x6']):+.2f}.")
    measured = ("Measured: " + "; ".join(lines) + "." + _depth_verdict(margins) + vanilla) if lines else ""
    measured += _other_split(records)
    noise = f" (seed-to-seed s.d. pooled over all rows: {sd:.2f})" if sd is not None else ""
    return f"""
## Depth: 6 encoder + 6 decoder levels

The paper's models have 6 + 6 levels; the rows above have 3 + 3, where one shared layer
plays only three roles. The `-6x6` rows train the same width (d 256, FFN 1024, 4 heads;
RingFormer rank 16) with 6 + 6 levels (layers) and the same recipe and step budget, so
the question a user choosing between RingFormer and a plain loop asks — does the margin
grow with depth? — is measured here{noise}. {_depth_status(by)}{measured}
"""


SPEC = PageSpec(name="translation", rows=ROWS, results=RESULTS / "translation", page="translation.md",
                runs=RUNS / "table", default_steps=2400, render=render)


def main(argv: list[str] | None = None) -> int:
    return runner.main(SPEC, __doc__, argv)
