"""RingFormer ablations and rank sweep on Multi30k De->En: reruns what is missing, then
writes ``docs/results/ablations.md`` and its figure.

Every variant is ``ringformer-mt-small`` with one switch changed, trained with exactly the
recipe and step budget of ``benchmarks/translation_table.py`` (so the default RingFormer
and the reference baselines are read from that table's JSONs, not retrained). Finished
runs are one JSON each in ``docs/results/ablations/``; an interrupted run resumes from
``runs/ablation/``. Rows can be run one at a time (``--models``) and across sittings.

    LOOPFORMER_DATA_MIRROR=../shared/data python benchmarks/ablation_table.py
    python benchmarks/ablation_table.py --models rank-d64 --seeds 0
    python benchmarks/ablation_table.py --page-only
    python benchmarks/ablation_table.py --probe   # the representation probe (trains missing checkpoints)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import tables
import translation_table
import vision_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "ablations"
PAGE = ROOT / "docs" / "results" / "ablations.md"
FIGURE = RESULTS / "rank-sweep.png"

# row -> (description, overrides of ringformer-mt-small)
VARIANTS = {
    "static": ("static per-level signals (no input dependence)", ["signal_mode=static"]),
    "before": ("signals added before the Q/K/V projections, W(x + g(x))", ["signal_placement=before"]),
    "no-attn": ("no attention signals (FFN signal only)", ["signal_q=false", "signal_k=false", "signal_v=false"]),
    "no-ffn": ("no FFN signal (attention signals only)", ["signal_ffn=false"]),
    "shared-norms": ("one set of LayerNorms for all levels", ["shared_level_norms=true"]),
}
RANKS = {f"rank-d{k}": (f"rank d/{k} = {256 // k}", [f"signal_rank_divisor={k}"]) for k in (64, 32, 8, 4)}
# the main variants again as ringformer-vit-tiny on Fashion-MNIST, with the vision page's
# recipe and budget (VISION_STEPS; --steps sets the translation rows' budget)
# The vision variants keep the ViT settings they were first trained with (dropout on the
# attention output, per-level eps 1e-6, PyTorch's default MLP init; the presets now follow
# the official code) so that
# every seed of a row, and the default row they are compared with, is one model.
PRE_FIX = ["attn_residual_dropout=true", "level_norm_eps=1e-6", "ffn_xavier_init=false"]
VISION = {f"vit-{name}": (what, extra + PRE_FIX) for name, (what, extra) in VARIANTS.items()}
VISION_STEPS = 4300
MODELS = {**VARIANTS, **RANKS, **VISION}


def run_one(name: str, seed: int, steps: int) -> None:
    _, extra = MODELS[name]
    out = ROOT / "runs" / "ablation" / f"{name}-s{seed}"
    if name in VISION:
        vision_table.train_and_record("ringformer", "vit-tiny", extra, out, RESULTS, name, seed, VISION_STEPS)
        return
    translation_table.train_and_record("ringformer", extra, out, RESULTS, name, seed, steps)


# representation probe: (A, B) translation-table runs; the control pair measures how
# separable two seeds of the same model already are
PROBES = {
    "ringformer-vs-vanilla": (("ringformer", 0), ("vanilla", 0)),
    "universal-vs-vanilla": (("universal", 0), ("vanilla", 0)),
    "control-vanilla-seeds": (("vanilla", 1), ("vanilla", 0)),
}
PROBE_DIR = RESULTS / "probe"
PROBE_RECORDS = ROOT / "runs" / "probe-records"  # records of checkpoints trained for the probe (not committed)


def checkpoint(name: str, seed: int, steps: int) -> Path:
    """The best checkpoint of a translation-table run, trained again if this machine lacks it."""
    from loopformer.train.state import resolve

    out = ROOT / "runs" / "table" / f"{name}-s{seed}"
    best = resolve(out / "best")
    if best is None or not (out / "metrics.jsonl").exists() or not any(
            '"step": %d' % steps in line for line in (out / "metrics.jsonl").read_text().splitlines()):
        family, extra = translation_table.MODELS[name]
        scratch = PROBE_RECORDS  # the table's own JSONs stay as they are
        translation_table.train_and_record(family, extra, out, scratch, name, seed, steps)
        best = resolve(out / "best")
    return best


def run_probes(steps: int) -> None:
    from loopformer.tasks.analyze import probe_levels

    PROBE_DIR.mkdir(parents=True, exist_ok=True)
    for pair, (a, b) in PROBES.items():
        target = PROBE_DIR / f"{pair}.json"
        if target.exists():
            continue
        print(f"== probe {pair}", flush=True)
        path_a, path_b = checkpoint(*a, steps), checkpoint(*b, steps)
        res = probe_levels(str(path_a), str(path_b), "test2016")
        target.write_text(json.dumps({"a": f"{a[0]}-s{a[1]}", "b": f"{b[0]}-s{b[1]}", "split": "test2016",
                                      "checkpoints": _probe_records(a, b), "result": res}, indent=1) + "\n")


def _probe_records(*runs: tuple[str, int]) -> dict:
    """BLEU and device of the probed checkpoints, when this machine trained them."""
    out = {}
    for name, seed in runs:
        path = PROBE_RECORDS / f"{name}-s{seed}.json"
        if path.is_file():
            rec = json.loads(path.read_text())
            out[f"{name}-s{seed}"] = {k: rec[k] for k in ("test2016", "test2017", "device", "steps")}
    return out


def probe_section() -> str:
    found = {p: json.loads((PROBE_DIR / f"{p}.json").read_text()) for p in PROBES if (PROBE_DIR / f"{p}.json").exists()}
    head = ("## Representation probe\n\nHeld-out accuracy (%) of a logistic-regression probe telling model A's "
            "hidden states from model B's at the same level on the same test2016 sentences (fitted on even batches, "
            "scored on odd ones; 50 = indistinguishable). Separately trained networks are usually linearly "
            "separable whatever they compute, so each pair is read against the control: two seeds of vanilla.\n")
    if not found:
        return head + "\nNot measured yet: `python benchmarks/ablation_table.py --probe`.\n"
    out = [head]
    checkpoints = {k: v for rec in found.values() for k, v in rec.get("checkpoints", {}).items()}
    if checkpoints:
        out.append("Probed checkpoints (the translation table's recipe and budget, trained by this script; "
                   "test2016 / test2017 BLEU): " + "; ".join(
                       f"{k} {v['test2016']:.2f} / {v['test2017']:.2f} ({v['device']})"
                       for k, v in sorted(checkpoints.items())) + ".")
    present = {s for rec in found.values() for s in rec["result"]}
    stacks = [s for s in ("encoder", "decoder") if s in present] + sorted(present - {"encoder", "decoder"})
    for stack in stacks:
        cols = [p for p in PROBES if p in found and stack in found[p]["result"]]
        depth = max(len(found[p]["result"][stack]["accuracy"]) for p in cols)
        out.append(f"\n{stack}:\n")
        out.append("| level | " + " | ".join(f"{found[p]['a']} vs {found[p]['b']}" for p in cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        for i in range(depth):
            cells = []
            for p in cols:
                acc = found[p]["result"][stack]["accuracy"]
                cells.append(f"{acc[i]:.1f}" if i < len(acc) else "")
            out.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    out += ["", *probe_reading(found, stacks)]
    return "\n".join(out) + "\n"


def probe_reading(found: dict, stacks: list[str]) -> list[str]:
    """Sentences computed from the probe JSONs: each pair's mean accuracy over levels,
    against the control when it has been measured."""
    import statistics

    def mean(pair: str, stack: str) -> float | None:
        res = found.get(pair, {}).get("result", {}).get(stack)
        return statistics.mean(res["accuracy"]) if res else None

    out = []
    for stack in stacks:
        parts = [f"{found[p]['a']} vs {found[p]['b']} {mean(p, stack):.1f}" for p in PROBES
                 if mean(p, stack) is not None]
        out.append(f"- {stack}, mean over levels: " + "; ".join(parts) + ".")
    ring, uni = "ringformer-vs-vanilla", "universal-vs-vanilla"
    for stack in stacks:
        r, u = mean(ring, stack), mean(uni, stack)
        if r is not None and u is not None and round(r, 1) != round(u, 1):
            closer = "RingFormer's" if r < u else "the Universal Transformer's"
            out.append(f"- {stack}: {closer} states are the harder to tell from vanilla's ({r:.1f} vs {u:.1f} for "
                       "RingFormer vs Universal), the direction the paper expects of its level signals; one seed "
                       "per model, so the size of the gap is not established.")
    control = "control-vanilla-seeds"
    if control not in found:
        out.append("- The control (two vanilla seeds) is not measured yet, so these accuracies cannot yet be read "
                   "as a difference in what the models compute: any two separately trained networks may be "
                   "this separable.")
        return out
    for stack in stacks:
        base = mean(control, stack)
        for pair in PROBES:
            m = mean(pair, stack)
            if pair == control or m is None or base is None:
                continue
            if round(m, 1) == round(base, 1):
                how = "as separable from vanilla as a second vanilla seed is"
            else:
                how = (f"{abs(m - base):.1f} points {'more' if m > base else 'less'} separable from vanilla than a "
                       "second vanilla seed is")
            out.append(f"- {stack}: {found[pair]['a']} is {how} ({m:.1f} vs {base:.1f}; one seed per model, so how "
                       "much this moves with the seed is not measured).")
    return out


def _load(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _rank_of(name: str) -> int:
    return 16 if name == "ringformer" else 256 // int(name.split("-d")[1])


def _sweep(records: list[dict], reference: list[dict]) -> dict[int, list[dict]]:
    """Runs of the rank sweep by rank: the rank rows and the default RingFormer (r = 16)."""
    sweep: dict[int, list[dict]] = {}
    for r in records + [r for r in reference if r["name"] == "ringformer"]:
        if r["name"] == "ringformer" or r["name"] in RANKS:
            sweep.setdefault(_rank_of(r["name"]), []).append(r)
    return sweep


def _figure(records: list[dict], reference: list[dict]) -> bool:
    import statistics

    from matplotlib.ticker import FuncFormatter

    from loopformer.analysis.plots import _figure as new_figure
    from loopformer.analysis.plots import _save

    sweep = _sweep(records, reference)
    if len(sweep) < 2:
        return False
    fig = new_figure(6.0, 4.2)
    ax = fig.subplots()
    pts = sorted((rs[0]["non_embedding"], statistics.mean(r["test2016"] for r in rs), rank, len(rs))
                 for rank, rs in sweep.items())
    halves = [tables.mean_half([r["test2016"] for r in sweep[p[2]]])[1] for p in pts]
    ax.errorbar([p[0] / 1e6 for p in pts], [p[1] for p in pts], yerr=halves, fmt="o-", color="tab:red", capsize=3,
                label="RingFormer, rank sweep (bars: half the seed range)")
    for i, (x, y, rank, n) in enumerate(pts):  # labels alternate above and below: neighbours sit close
        ax.annotate(f"r={rank}" + ("" if n > 1 else " (1 seed)"), (x / 1e6, y), textcoords="offset points",
                    xytext=(6, 4 if i % 2 == 0 else -11), fontsize=7)
    markers = {"vanilla": "s", "vanilla-matched": "D", "universal": "^", "looped": "v"}
    for name, marker in markers.items():
        rs = [r for r in reference if r["name"] == name]
        if rs:
            ax.plot(rs[0]["non_embedding"] / 1e6, statistics.mean(r["test2016"] for r in rs), marker,
                    color="tab:blue" if name.startswith("vanilla") else "tab:gray", label=name)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("non-embedding parameters (millions, log scale)")
    ax.set_ylabel("test2016 BLEU (mean over seeds)")
    ax.set_title("Multi30k De→En, *-mt-small, 2,400 steps")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, FIGURE)
    return True


def rank_reading(records: list[dict], reference: list[dict]) -> str:
    """What the rank sweep shows, computed from the runs: how far BLEU moves across the
    measured ranks against the default rank's seed spread, and where the ranks sit
    between the reference models."""
    import statistics

    sweep = _sweep(records, reference)
    if len(sweep) < 2:
        return ""
    means = {rank: statistics.mean(r["test2016"] for r in rs) for rank, rs in sweep.items()}
    ranks = sorted(means)
    lo, hi = min(means.values()), max(means.values())
    params = [sweep[k][0]["non_embedding"] for k in ranks]
    sd = tables.pooled_sd([[r["test2016"] for r in rs] for rs in sweep.values()])
    single = [k for k in ranks if len(sweep[k]) < 2]
    if sd is None:
        verdict = "no seed noise measured yet to compare it with"
    else:  # standard error of the difference of two ranks' means
        se = sd * (1 / len(sweep[min(means, key=means.get)]) + 1 / len(sweep[max(means, key=means.get)])) ** 0.5
        verdict = (("more than" if hi - lo > 2 * se else "no more than")
                   + f" twice the standard error of the difference between the two ({2 * se:.2f}, from the "
                   f"seed-to-seed s.d. pooled over the ranks, {sd:.2f})")
    text = (f"Across the {len(ranks)} measured ranks (r = {', '.join(map(str, ranks))}; "
            f"{params[0] / 1e6:.2f}–{params[-1] / 1e6:.2f} M non-embedding parameters) test2016 BLEU spans "
            f"{lo:.2f}–{hi:.2f}, a range of {hi - lo:.2f}: {verdict}; best r = {max(means, key=means.get)}"
            + (f" (r = {', '.join(map(str, single))} one seed so far)" if single else "") + ".")
    refs = {n: statistics.mean(r["test2016"] for r in reference if r["name"] == n)
            for n in ("universal", "looped", "vanilla") if any(r["name"] == n for r in reference)}
    if refs:
        parts = []
        for n, v in refs.items():
            above = sum(m > v for m in means.values())
            parts.append(f"{above} of {len(means)} ranks above {n} ({v:.2f})")
        text += " Measured: " + "; ".join(parts) + "."
    return text + "\n"


def _compare(records: list[dict], default: list[dict], key: str, names) -> tuple[float | None, list[tuple]]:
    """Each measured variant against the default: (name, seeds, difference of means,
    standard error of that difference). The seed-to-seed s.d. is pooled over the default
    and every variant of the task: two seeds per row are too few for a row's own spread
    to be the noise estimate."""
    groups = [[r[key] for r in default]] + [[r[key] for r in records if r["name"] == n] for n in names]
    sd = tables.pooled_sd(groups)
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
    two seeds ran on different devices, the GPU seed minus the CPU seed."""
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


def write_page(steps: int, seeds: list[int]) -> None:
    records = _load(RESULTS)
    reference = _load(translation_table.RESULTS)
    rows = []
    default = [r for r in reference if r["name"] == "ringformer"]
    vision_default = [r for r in _load(vision_table.DOCS / "vision" / "before-fix") if r["name"] == "ringformer"]
    for name, (what, _) in {"ringformer": ("default RingFormer (translation and vision tables)", []),
                            **VARIANTS, **RANKS}.items():
        rs = default if name == "ringformer" else [r for r in records if r["name"] == name]
        vs = vision_default if name == "ringformer" else [r for r in records if r["name"] == f"vit-{name}"]
        vision = (f"{tables.spread([r['test_accuracy'] for r in vs])} ({vs[0]['non_embedding']:,})" if vs
                  else ("–" if name in VARIANTS or name == "ringformer" else ""))
        done = f"{len(rs)} of {len(seeds)}" + (f"; vision {len(vs)} of {len(seeds)}" if f"vit-{name}" in VISION
                                                else "")
        if not rs:
            rows.append(f"| {name} | {what} | – | – | – | {vision} | {done} |")
            continue
        rows.append(f"| {name} | {what} | {rs[0]['non_embedding']:,} | {tables.spread([r['test2016'] for r in rs])} | "
                    f"{tables.spread([r['test2017'] for r in rs])} | {vision} | {done} |")
    refs = []
    for name in ("vanilla", "vanilla-matched", "universal", "looped"):
        rs = [r for r in reference if r["name"] == name]
        if rs:
            refs.append(f"| {name} | {rs[0]['non_embedding']:,} | {tables.spread([r['test2016'] for r in rs])} | "
                        f"{tables.spread([r['test2017'] for r in rs])} | {len(rs)} |")
    labels = {name: f"`{name}` ({what})" for name, (what, _) in {**VARIANTS, **RANKS}.items()}
    readings = reading(records, default, "test2016", "test2016 BLEU", labels)
    readings += reading(records, vision_default, "test_accuracy", "Fashion-MNIST points",
                        {f"vit-{n}": f"`{n}` on Fashion-MNIST" for n in VARIANTS})
    sums = [summary(records, default, "test2016", [*VARIANTS, *RANKS], "Multi30k test2016 BLEU"),
            summary(records, vision_default, "test_accuracy", list(VISION), "Fashion-MNIST accuracy")]
    what_it_says = ("What the measured rows say (computed from the JSONs when the page is written):\n\n"
                    + "".join(f"**{line}**\n\n" for line in sums if line)
                    + "Each sentence below is a two-sided test at roughly 95% (normal approximation): over these "
                    f"{len(readings)} comparisons about {len(readings) / 20:.1f} would cross the line by chance "
                    "alone, so a crossing counts for more when it holds with more seeds (the lines above give the "
                    "seeds behind each). "
                    + device_reading(records + default)
                    + "\n\n"
                    + "\n".join(readings) + "\n") if readings else ""
    figure = ("\n![BLEU against parameters](ablations/rank-sweep.png)\n\n" + rank_reading(records, reference)
              if _figure(records, reference) else "\n(The rank-sweep figure appears once two ranks have runs.)\n")
    detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['train_seconds'] / 60:.1f} | {r.get('device', '?')} | "
        f"{r['best_val_bleu']:.2f} | {r['test2016']:.2f} | {r['test2017']:.2f} |" for r in records
        if r["name"] not in VISION)
    vision_detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['train_seconds'] / 60:.1f} | {r.get('device', '?')} | "
        f"{r['best_val_accuracy']:.2f} | {r['test_accuracy']:.2f} |" for r in records if r["name"] in VISION)
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(f"""# RingFormer ablations and rank sweep (Multi30k De→En)

Produced by `benchmarks/ablation_table.py` (rerun it to fill in missing runs; each finished
run is one JSON in `docs/results/ablations/`). Every row is `ringformer-mt-small` (d 256,
3 + 3 levels, rank d/16 = 16 unless stated) with one switch changed, trained with the
recipe and budget of [translation.md](translation.md): {steps:,} steps of ~2,048-token
batches, AdamW lr 1e-3, inverse-square-root decay after 150 warmup steps, best validation
checkpoint scored with beam 4. The default row and the reference models are that page's
runs. The Fashion-MNIST column trains the main variants as `ringformer-vit-tiny` (d 192,
6 levels, rank 12) with the recipe and budget of [vision.md](vision.md) ({VISION_STEPS:,} steps of
256 images, no augmentation) and the ViT settings in use when they were first run
(dropout 0.1 on the attention output, per-level LayerNorm eps 1e-6, PyTorch's default MLP
initialisation: the `ringformer-vit-tiny` preset has since moved to the official code's values); its default row is the vision
page's runs with those settings (`docs/results/vision/before-fix/`). Spread is half the range
over seeds.

| row | variant | non-embedding | test2016 BLEU | test2017 BLEU | Fashion-MNIST test % (non-embedding) | seeds done |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{what_it_says}
Reference models (translation table):

| model | non-embedding | test2016 BLEU | test2017 BLEU | seeds |
|---|---|---|---|---|
{chr(10).join(refs)}

## Rank sweep
{figure}
{probe_section()}
## Runs

| row | seed | steps | train minutes | device | best val BLEU | test2016 | test2017 |
|---|---|---|---|---|---|---|---|
{detail}

| vision row | seed | steps | train minutes | device | best val accuracy | test accuracy |
|---|---|---|---|---|---|---|
{vision_detail}
""")


def main() -> int:
    if "--probe" in sys.argv[1:]:  # this script's own mode; the rest is the shared table CLI
        sys.argv.remove("--probe")
        steps = 2400
        if "--steps" in sys.argv:
            steps = int(sys.argv[sys.argv.index("--steps") + 1])
        run_probes(steps)
        write_page(steps, [0, 1])
        return 0
    return tables.main(__doc__, MODELS, RESULTS, 2400, run_one, write_page)


if __name__ == "__main__":
    sys.exit(main())
