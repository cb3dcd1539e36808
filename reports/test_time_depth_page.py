"""Renders docs/results/test_time_depth.md and its figures from the records alone."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .stats import pooled_sd, spread

SHOWN = (1, 2, 3, 4, 6, 8, 12)
PARTS = {"lm": ("val_loss", "validation loss (nats/char)", "lower"), "mt": ("val_bleu", "val BLEU (greedy)", "higher")}
DIGITS = {"lm": 3, "mt": 2}


def load(records: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]


def _groups(recs: list[dict], part: str) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        if r["part"] == part:
            out.setdefault((r["arch"], r["mode"]), []).append(r)
    return out


def _metric(sweep_value, key: str) -> float:
    return sweep_value if isinstance(sweep_value, float) else sweep_value[key]


def sweep_table(recs: list[dict], part: str) -> str:
    key, what, better = PARTS[part]
    groups = _groups(recs, part)
    digits = DIGITS[part]
    head = "| model | training | seeds | " + " | ".join(f"{k} loop{'s' * (k > 1)}" for k in SHOWN)
    head += " | 2× − 1× | 4× − 1× |"
    lines = [head, "|" + "---|" * (len(SHOWN) + 5)]
    for (arch, mode), rs in sorted(groups.items()):
        cells = [spread([_metric(r["sweep"][str(k)], key) for r in rs], digits) for k in SHOWN]
        trained = rs[0]["trained_loops"]
        deltas = [spread([_metric(r["sweep"][str(m * trained)], key) - _metric(r["sweep"][str(trained)], key)
                          for r in rs], digits) for m in (2, 4)]
        lines.append(f"| {arch} | {mode} | {len(rs)} | " + " | ".join(cells + deltas) + " |")
    noise = pooled_sd([[_metric(r["sweep"][str(r["trained_loops"])], key) for r in rs] for rs in groups.values()])
    note = f"Seed noise (pooled SD of the trained-count figure over rows): {noise:.3f}." if noise else ""
    return "\n".join(lines) + f"\n\n{what}, {better} is better; mean ± half-range over seeds. {note}\n"


def rules_table(recs: list[dict], part: str) -> str:
    key = PARTS[part][0]
    groups = _groups(recs, part)
    lines = ["| model | training | loops | repeat_last | cycle | spread |", "|---|---|---|---|---|---|"]
    for (arch, mode), rs in sorted(groups.items()):
        for loops in sorted(rs[0]["rules"], key=int):
            cells = [spread([_metric(r["rules"][loops][rule], key) for r in rs], DIGITS[part]) for rule in
                     ("repeat_last", "cycle", "spread")]
            lines.append(f"| {arch} | {mode} | {loops} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def exit_table(recs: list[dict], part: str) -> str:
    """Per model and loop budget: the exit point with the fewest loops whose quality stays
    within the target of full compute (LM: +0.01 nats; MT: -0.3 BLEU), seed by seed."""
    key = PARTS[part][0]
    tol = 0.01 if part == "lm" else 0.3
    speed = "gen_tokens_per_s_b1" if part == "lm" else "tokens_per_s"
    lines = ["| model | training | seed | loops | full: quality, tokens/s | best exit within target | "
             "loops/token | saved | quality | tokens/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in recs if r["part"] == part and r["exits"]),
                    key=lambda r: (r["arch"], r["mode"], r["seed"])):
        for loops in sorted({p["loops"] for p in r["exits"]}):
            pts = [p for p in r["exits"] if p["loops"] == loops]
            full = next(p for p in pts if p["criterion"] is None)
            ok = [p for p in pts if p["criterion"] and _within(p[key], full[key], tol, part)]
            best = min(ok, key=lambda p: p["mean_loops"], default=None)
            head = f"| {r['arch']} | {r['mode']} | {r['seed']} | {loops} | {full[key]:.3f}, {full[speed]:,.0f} |"
            if best is None:
                lines.append(head + " none | – | – | – | – |")
                continue
            saved = 1 - best["mean_loops"] / loops
            lines.append(head + f" {best['criterion']}:{best['threshold']:g} | {best['mean_loops']:.2f} | "
                         f"{saved:.0%} | {best[key]:.3f} | {best[speed]:,.0f} |")
    return "\n".join(lines) + "\n"


def _within(value: float, full: float, tol: float, part: str) -> bool:
    return value <= full + tol if part == "lm" else value >= full - tol


def exit_points(recs: list[dict], part: str) -> str:
    """Every measured exit point, for readers who want the whole curve."""
    key = PARTS[part][0]
    extra = ["gen_tokens_per_s_b1", "gen_tokens_per_s_b8", "gen_mean_loops_b1"] if part == "lm" else ["tokens_per_s"]
    lines = ["| model | training | seed | loops | exit | loops/token | " + key + " | " + " | ".join(extra) + " |",
             "|" + "---|" * (7 + len(extra))]
    for r in sorted((r for r in recs if r["part"] == part), key=lambda r: (r["arch"], r["mode"], r["seed"])):
        for p in r["exits"]:
            name = f"{p['criterion']}:{p['threshold']:g}" if p["criterion"] else "none"
            cells = " | ".join(f"{p[k]:,.2f}" if "loops" in k else f"{p[k]:,.0f}" for k in extra)
            lines.append(f"| {r['arch']} | {r['mode']} | {r['seed']} | {p['loops']} | {name} | "
                         f"{p['mean_loops']:.2f} | {p[key]:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def figure(recs: list[dict], part: str, out: Path) -> str | None:
    """Quality against loops, one panel per model, fixed against random-depth training."""
    groups = _groups(recs, part)
    if not groups:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, what, _ = PARTS[part]
    archs = sorted({a for a, _ in groups})
    fig, axes = plt.subplots(1, len(archs), figsize=(4 * len(archs), 3.2), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for mode in ("fixed", "random"):
            rs = groups.get((arch, mode))
            if not rs:
                continue
            ks = sorted(int(k) for k in rs[0]["sweep"])
            ys = [statistics.mean(_metric(r["sweep"][str(k)], key) for r in rs) for k in ks]
            ax.plot(ks, ys, marker="o", label=f"{mode} ({len(rs)} seed{'s' * (len(rs) > 1)})")
        ax.axvline(3, color="grey", lw=0.8, ls="--")
        ax.set_title(arch)
        ax.set_xlabel("loops at inference")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{part}-loops.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def verdicts(recs: list[dict], part: str) -> str:
    """The target, row by row: with random-depth training, quality at 2x and 4x the
    trained count no worse than at 1x beyond seed noise (two pooled SDs)."""
    key, _, better = PARTS[part]
    groups = _groups(recs, part)
    noise = pooled_sd([[_metric(r["sweep"][str(r["trained_loops"])], key) for r in rs] for rs in groups.values()])
    if noise is None:
        return "Too few seeds yet for a noise estimate: no verdicts.\n"
    sign = 1 if better == "lower" else -1  # a worse figure is higher loss, lower BLEU
    lines = [f"Noise allowance: 2 × pooled seed SD = {2 * noise:.3f}.", ""]
    for (arch, mode), rs in sorted(groups.items()):
        n = rs[0]["trained_loops"]
        worse = {m: statistics.mean(sign * (_metric(r["sweep"][str(m * n)], key) - _metric(r["sweep"][str(n)], key))
                                    for r in rs) for m in (2, 4)}
        held = all(w <= 2 * noise for w in worse.values())
        lines.append(f"- {arch}, {mode} training ({len(rs)} seed{'s' * (len(rs) > 1)}): worse by "
                     f"{worse[2]:+.3f} at 2×, {worse[4]:+.3f} at 4× → "
                     f"{'no worse than 1× within noise' if held else 'degrades beyond noise'}")
    return "\n".join(lines) + "\n\n" + _fixed_against_random(groups, key, sign)


def _fixed_against_random(groups: dict, key: str, sign: int) -> str:
    """How much of the fixed-count model's loss of quality at 4x random training removes."""
    out = []
    for arch in sorted({a for a, _ in groups}):
        pair = [groups.get((arch, m)) for m in ("fixed", "random")]
        if not all(pair):
            continue
        worse = [statistics.mean(sign * (_metric(r["sweep"][str(4 * r["trained_loops"])], key)
                                         - _metric(r["sweep"][str(r["trained_loops"])], key)) for r in rs)
                 for rs in pair]
        at_one = [statistics.mean(_metric(r["sweep"][str(r["trained_loops"])], key) for r in rs) for rs in pair]
        out.append(f"- {arch}: at 4× the trained count quality drops by {worse[0]:.3f} after fixed training and "
                   f"by {worse[1]:.3f} after random-depth training; at the trained count the two score "
                   f"{at_one[0]:.3f} and {at_one[1]:.3f}.")
    return "\n".join(out) + "\n" if out else ""


INTRO = """# Test-time depth: loops at inference, random-depth training, early exit

Produced by `python -m reports test_time_depth` (resumable: one JSON per finished run in
`docs/results/test_time_depth/`; rerun to fill in what is missing, `--page-only` to
rebuild this page). Every model loops its core **3 times** in training: *fixed* trains
every step at 3 loops, *random* draws each step's count from `1 + Poisson(lognormal)`
with mean 3, at most 6 (`depth_sampling=poisson_lognormal loops_max=6`: the same compute
per step on average). At inference the count runs from 1 to 12 (4×); loops beyond the
trained levels run the last level again (`--level-rule repeat_last`, the default; the
rule table compares the others: the plain loop and the Universal Transformer's shared
layers have no per-level weights, so there the rules differ only through the anchor
update or the timing signal, if at all).

- **Causal LMs** (Tiny Shakespeare, characters): the language page's models and recipe
  (`configs/tables/language.yaml`: 1 prelude + 2-layer core × 3 + 1 coda, anchor state
  update, d 128) for {lm_steps} steps; loss on the first 100 validation windows (25,600
  characters), for the best of the checkpoints evaluated every 100 steps.
- **Translation** (Multi30k De→En): `mt-small` narrowed to d 128, MLP 512 (3 loops of
  one shared layer in encoder and decoder) with the translation page's recipe for
  {mt_steps} steps; greedy BLEU on the first 300 validation sentences.

Early exit: each token (LM, translation decoder) stops looping when its criterion falls
below the threshold (`kl`: KL between successive iterations' predictions; `change`: the
relative change of its state); later tokens find the keys and values of its last level
at every deeper one, so cached decoding equals the full forward (tested). In translation
the encoder exits per sentence under `change` and runs all its loops under `kl` (it makes
no predictions); loops/token counts the decoder's core applications per target position
(finished rows of a batch included), and for LMs per token. Tokens/s is measured in the
same run on the same inputs: LM greedy generation of 128 tokens after `ROMEO:` (batch 1
and 8), translation greedy decoding of the 300 sentences in batches of up to 128. This 2-core CPU machine
ran up to four jobs at once while these were measured (`concurrent_runs` in each JSON),
so the speeds are noisy: compare points of one run, and read small differences as noise.
"""


def write_page(records: Path, results: Path) -> Path:
    recs = load(records)
    steps = {part: next((r["steps"] for r in recs if r["part"] == part), "–") for part in PARTS}
    parts = [INTRO.format(lm_steps=steps["lm"], mt_steps=steps["mt"])]
    for part, title in (("lm", "Causal LMs"), ("mt", "Translation")):
        if not any(r["part"] == part for r in recs):
            parts.append(f"## {title}\n\nNo runs recorded yet.\n")
            continue
        fig = figure(recs, part, results / "test_time_depth")
        parts += [f"## {title}: quality against loops\n", sweep_table(recs, part)]
        if fig:
            parts.append(f"![{title}: quality against loops](test_time_depth/{fig})\n")
        parts += ["### The target: random-depth training holds at 2× and 4×\n", verdicts(recs, part),
                  "### Level rules for loops beyond the trained count\n", rules_table(recs, part),
                  f"### {title}: early exit\n", exit_table(recs, part),
                  "<details><summary>every exit point</summary>\n\n" + exit_points(recs, part) + "\n</details>\n"]
    path = results / "test_time_depth.md"
    path.write_text("\n".join(parts))
    return path
