"""bf16 autocast against fp32: does the cheaper precision keep the training curve?

Trains ``ringformer-mt-small`` on Multi30k three times with the translation page's
recipe (``configs/tables/translation.yaml``) for ``--steps`` steps (validation on 50
sentences: only the curve matters here): fp32 seed 0, bf16 autocast seed 0 (same
initialisation and batches) and fp32 seed 1. The bf16-vs-fp32 gap in training loss is
compared with the seed-to-seed gap of fp32, which is the noise a precision change has to
stay within. Writes docs/results/speed/loss_curve.{json,png} for the speed page; finished
runs are reused.

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports bf16_loss_curve --steps 300
"""

from __future__ import annotations

import json
import statistics

from . import runner, translation
from .paths import RESULTS, RUNS

OUT = RESULTS / "speed"
CURVES = RUNS / "loss-curve"


def command(steps: int) -> str:
    """The command that measures the curves, as the record and the speed page quote it."""
    return f"LOOPFORMER_DATA_MIRROR=../shared/data python -m reports bf16_loss_curve --steps {steps}"


def train(name: str, steps: int, extra: list[str]) -> list[tuple[int, float]]:
    """(step, training loss) of one curve, training it (or resuming it) unless a finished
    run of this budget is already there. Evaluation is pushed past the end of the run:
    only the training curve is compared."""
    from loopformer.tasks.translation_run import train_translation
    from loopformer.train.state import resolve

    out = CURVES / name
    metrics = out / "metrics.jsonl"
    done = resolve(out / "last") is not None and metrics.exists() and any(
        json.loads(line).get("step") == steps for line in metrics.read_text().splitlines())
    if not done:
        train_translation("ringformer", "mt-small",
                          [f"max_steps={steps}", "eval_every=100000", "log_every=10", "test_splits=val",
                           "val_bleu_sentences=50", *extra],
                          config_file=str(translation.RECIPE.file), out=str(out),
                          resume=resolve(out / "last") is not None)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train" and r["step"] <= steps]


def summarise(curves: dict[str, list[tuple[int, float]]], steps: int) -> dict:
    """The precision gap against the seed gap, after the first third of the run (where
    the curves have left their common start), and the final losses."""
    late = steps // 3

    def gap(a: str, b: str) -> float:
        x, y = dict(curves[a]), dict(curves[b])
        return statistics.mean(abs(x[s] - y[s]) for s in x if s in y and s > late)

    precision, seeds = gap("bf16 seed 0", "fp32 seed 0"), gap("fp32 seed 1", "fp32 seed 0")
    final = {k: statistics.mean(v for s, v in c if s > steps - 50) for k, c in curves.items()}
    summary = (
        f"`ringformer-mt-small` on Multi30k, {steps} steps of the translation page's recipe (10-step "
        f"windows of training loss). Mean |loss gap| after step {late}: bf16 autocast vs fp32 (same seed, same "
        f"batches) **{precision:.3f}**; fp32 seed 1 vs seed 0 {seeds:.3f}. Mean loss over the last 50 steps: "
        + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
        + (". The precision gap is within the seed-to-seed gap." if precision <= seeds
           else ". The precision gap is larger than the seed-to-seed gap.")
    )
    return {"steps": steps, "curves": curves, "gap_bf16_fp32": precision, "gap_seed": seeds,
            "final": final, "summary": summary, "command": command(steps)}


def plot(curves: dict[str, list[tuple[int, float]]]) -> None:
    """The three curves in one figure beside the record (docs/results/speed/loss_curve.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, c in curves.items():
        ax.plot([s for s, _ in c], [v for _, v in c], label=label, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (label-smoothed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "loss_curve.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("bf16_loss_curve", __doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per run (the curve does not depend on it)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    curves = {
        "fp32 seed 0": train("fp32-s0", args.steps, ["seed=0", "bf16=false"]),
        "bf16 seed 0": train("bf16-s0", args.steps, ["seed=0", "bf16=true"]),
        "fp32 seed 1": train("fp32-s1", args.steps, ["seed=1", "bf16=false"]),
    }
    record = summarise(curves, args.steps)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "loss_curve.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(curves)
    print(record["summary"])
    return 0
