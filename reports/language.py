"""Language page: SpiralFormer and its baselines on Tiny Shakespeare (characters).

Every row has the same unique layers (1 prelude + 2 shared core + 1 coda for the looped
models, 4 layers for GPT; d 128, 4 heads, rotary on 25% of head dims, context 256) and
trains on the same number of tokens with the recipe of ``configs/tables/language.yaml``.
Each finished run leaves one JSON in ``docs/results/language/`` (validation loss of the
best checkpoint, analytic FLOPs, measured training and generation speed, a sample);
interrupted runs resume from ``runs/language-table/``. The page
``docs/results/language.md`` is rebuilt from the JSONs.

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports language
    python -m reports language --page-only
"""

from __future__ import annotations

from pathlib import Path

from . import runner
from .paths import RESULTS, RUNS
from .spec import PageSpec, Recipe, Row, load_records
from .stats import mean_half, speed_rows, spread

RECIPE = Recipe.named("language", "language")
ROWS = {
    "gpt": Row("vanilla", "lm-char", RECIPE, about="GPT, 4 layers"),
    "looped": Row("looped", "lm-char", RECIPE, about="full-resolution loop 1+2R3+1, anchor"),
    "spiral": Row("spiral", "lm-char", RECIPE,
                  about="SpiralFormer 1+2R{4,2,1}+1 (last iteration at full resolution)"),
    "spiral-coarse": Row("spiral-coarse", "lm-char", RECIPE,
                         about="SpiralFormer 1+2R{8,4,2}+1 (no full-resolution iteration)"),
    "ringformer": Row("ringformer", "lm-char", RECIPE, about="RingFormer-LM 1+2R3+1, anchor, r 8"),
}


def render(spec: PageSpec, steps: int, seeds: list[int], out: Path) -> str:
    """The whole page, from the records alone (``out`` is unused: no figures)."""
    records = load_records(spec.results)
    return (_intro(steps) + "\n".join(_table_rows(records, seeds)) + "\n" + _reading(records) + _sample(records)
            + _speed(records) + _runs(records))


def _intro(steps: int) -> str:
    return f"""# Language modelling: SpiralFormer and baselines on Tiny Shakespeare

Produced by `python -m reports language` (rerun it to fill in missing runs; each
finished run is one JSON in `docs/results/language/`). Character level (65 symbols),
nanoGPT's split (first 90% of the text trains, last 10% validates), context 256. Every
row has the same unique layers: d 128, 4 heads, MLP 512, pre-norm, rotary positions on
25% of each head's dimensions; GPT has 4 layers, the looped models 1 prelude layer, a
2-layer shared core and 1 coda layer, with the anchor state update. RingFormer-LM adds
its level signals and per-level norms (the extra parameters in its row).

One budget for all: {steps:,} optimizer steps of 8 × 256 = 2,048 tokens ({steps * 2048 / 1e6:.2f} M tokens),
AdamW (β 0.9/0.99, weight decay 0.1) at lr 2e-3, 100 warmup steps, cosine decay to 2e-4,
gradient clipping 1.0, no dropout, fp32. Validation loss is the mean next-character
cross-entropy over the whole validation split in consecutive 256-character windows, for
the checkpoint with the best validation loss (evaluated every 400 steps).

FLOPs are analytic forward FLOPs per token at context 256 (spec section 8, LM head
included). The budget is equal in steps, not in time; the device of each run is in the
last table. Spread is half the range over seeds.

| row | model | non-embedding params | val loss | FLOPs/token | seeds done |
|---|---|---|---|---|---|
"""


def _table_rows(records: list[dict], seeds: list[int]) -> list[str]:
    """Size, validation loss and FLOPs per row, with how many of the page's seeds it has."""
    rows = []
    for name, row in ROWS.items():
        rs = [r for r in records if r["name"] == name]
        if not rs:
            rows.append(f"| {name} | {row.about} | – | – | – | 0 of {len(seeds)} |")
            continue
        rows.append(
            f"| {name} | {row.about} | {rs[0]['non_embedding']:,} | {spread([r['val_loss'] for r in rs], 4)} | "
            f"{rs[0]['flops_per_token'] / 1e6:.2f} M | {len(rs)} of {len(seeds)} |"
        )
    return rows


def _sample(records: list[dict]) -> str:
    """The text the best model generated, so a reader can see what a loss means."""
    if not records:
        return ""
    best = min(records, key=lambda r: r["val_loss"])
    return (f"\n## Sample from the best model\n\n`{best['model']}`, seed {best['seed']} (validation loss "
            f"{best['val_loss']:.4f}); prompt `ROMEO:`, temperature 0.8, top-k 50, 200 characters:\n\n"
            f"```text\n{best['sample']}\n```\n")


def _speed(records: list[dict]) -> str:
    return f"""
## Speed

Training tokens/s (with the backward pass) and generation tokens/s (KV-cached sampling of
200 characters, batch 1), per device. CPU runs shared the 2-core machine with another
1-thread job; GPU runs shared one GPU with the other table runs launched beside them
(`concurrent_runs` in each JSON), and models this small leave a GPU mostly idle, so GPU
figures are a floor and say little about the models' relative cost. Indicative only:
`loopformer bench` is the tool for speed.

| row | device | runs | train tok/s | generate tok/s |
|---|---|---|---|---|
{speed_rows(records, list(ROWS), ["train_tokens_per_s", "generate_tokens_per_s"])}
"""


def _runs(records: list[dict]) -> str:
    detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['tokens_seen']:,} | {r['train_seconds'] / 60:.1f} | "
        f"{r.get('device') or 'CPU, %s thread(s)' % r.get('threads', '?')} | {r['val_loss']:.4f} | {r['val_ppl']:.3f} |"
        for r in records
    )
    return f"""
## Runs

| row | seed | steps | tokens | train minutes | device | val loss | val perplexity |
|---|---|---|---|---|---|---|---|
{detail}
"""


def _reading(records: list[dict]) -> str:
    """SpiralFormer against the full-resolution loop, computed from the JSONs (empty until
    every compared row has a run)."""
    stats = {}
    for name in ("looped", "spiral", "spiral-coarse", "gpt"):
        rs = [r for r in records if r["name"] == name]
        if not rs:
            return ""
        mean, half = mean_half([r["val_loss"] for r in rs])
        stats[name] = (mean, rs[0]["flops_per_token"], half)
    loop_loss, loop_flops, loop_spread = stats["looped"]
    gap = stats["spiral"][0] - loop_loss
    if abs(gap) <= max(loop_spread, stats["spiral"][2]):
        where = "level with it (within the seed spread)"
    else:
        where = "ahead, by more than the seed spread" if gap < 0 else "behind, by more than the seed spread"

    def versus(name: str) -> str:
        loss, flops, _ = stats[name]
        return f"{loss - loop_loss:+.3f} nats at {flops / loop_flops:.2f}× the FLOPs"

    return f"""
## Against the paper's claim

Validation loss relative to the full-resolution loop (same unique parameters): SpiralFormer
{{4,2,1}} {versus("spiral")}, SpiralFormer {{8,4,2}} {versus("spiral-coarse")}, GPT
{versus("gpt")}. The paper reports SpiralFormer ahead of the full-resolution loop at equal
parameters with fewer FLOPs; in these runs SpiralFormer {{4,2,1}} is {where}.

How far this setting is from the paper's: characters instead of BPE tokens, context 256
instead of 4,096, a 0.8M-parameter model trained on 2.5M characters instead of 160M–1.4B
parameters on 250B tokens, and the anchor state update instead of MeSH. The parts of the
method the spec marks uncertain use its defaults (self-aggregation pooling, learned
allocation with λ = √g, latent positions = latent index, offsets 0); each is a switch
(`spiral_pool`, `spiral_upscale`, `latent_positions`, `spiral_offsets`, `state_update`).
The full-resolution loop's core attends about 3–6 characters back while SpiralFormer's attends
tens (analysis.md): character-level text at this scale may simply reward local
computation, which compressing the sequence takes away.
"""


SPEC = PageSpec(name="language", rows=ROWS, results=RESULTS / "language", page="language.md",
                runs=RUNS / "language-table", default_steps=1200, render=render)


def main(argv: list[str] | None = None) -> int:
    return runner.main(SPEC, __doc__, argv)
