"""bf16 autocast against fp32: does the cheaper precision keep the training curve?

Trains ``ringformer-mt-small`` on Multi30k three times with the translation page's
recipe for ``--steps`` steps (validation on 50 sentences: only the curve matters here):
fp32 seed 0, bf16 autocast seed 0 (same initialisation and batches) and fp32 seed 1.
The bf16-vs-fp32 gap in training loss is compared with the seed-to-seed gap of
fp32, which is the noise a precision change has to stay within.
Writes docs/results/speed/loss_curve.{json,png}; finished runs are reused.

    LOOPFORMER_DATA_MIRROR=../shared/data python benchmarks/bf16_loss_curve.py --steps 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "speed"
RUNS = ROOT / "runs" / "loss-curve"
sys.path.insert(0, str(Path(__file__).parent))


def train(name: str, steps: int, extra: list[str]) -> list[tuple[int, float]]:
    from loopformer.tasks.translation_run import train_translation
    from loopformer.train.state import resolve

    out = RUNS / name
    metrics = out / "metrics.jsonl"
    done = resolve(out / "last") is not None and metrics.exists() and any(
        json.loads(line).get("step") == steps for line in metrics.read_text().splitlines())
    if not done:
        from translation_table import RECIPE

        keep = [r for r in RECIPE if not r.startswith("eval_every=")]
        train_translation("ringformer", "mt-small",
                          keep + [f"max_steps={steps}", "eval_every=100000", "log_every=10", "test_splits=val",
                                  "val_bleu_sentences=50", *extra],
                          out=str(out), resume=resolve(out / "last") is not None)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train" and r["step"] <= steps]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per run (the curve does not depend on it)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    curves = {
        "fp32 seed 0": train("fp32-s0", args.steps, ["seed=0", "bf16=false"]),
        "bf16 seed 0": train("bf16-s0", args.steps, ["seed=0", "bf16=true"]),
        "fp32 seed 1": train("fp32-s1", args.steps, ["seed=1", "bf16=false"]),
    }
    late = args.steps // 3  # after the first third: where the curves are compared

    def gap(a: str, b: str) -> float:
        x, y = dict(curves[a]), dict(curves[b])
        return statistics.mean(abs(x[s] - y[s]) for s in x if s in y and s > late)

    precision, seeds = gap("bf16 seed 0", "fp32 seed 0"), gap("fp32 seed 1", "fp32 seed 0")
    final = {k: statistics.mean(v for s, v in c if s > args.steps - 50) for k, c in curves.items()}
    summary = (
        f"`ringformer-mt-small` on Multi30k, {args.steps} steps of the translation page's recipe (10-step "
        f"windows of training loss). Mean |loss gap| after step {late}: bf16 autocast vs fp32 (same seed, same "
        f"batches) **{precision:.3f}**; fp32 seed 1 vs seed 0 {seeds:.3f}. Mean loss over the last 50 steps: "
        + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
        + (". The precision gap is within the seed-to-seed gap." if precision <= seeds
           else ". The precision gap is larger than the seed-to-seed gap.")
    )
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"steps": args.steps, "curves": curves, "gap_bf16_fp32": precision, "gap_seed": seeds,
              "final": final, "summary": summary,
              "command": f"LOOPFORMER_DATA_MIRROR=../shared/data python benchmarks/bf16_loss_curve.py "
                         f"--steps {args.steps}"}
    (OUT / "loss_curve.json").write_text(json.dumps(record, indent=2) + "\n")
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
    print(summary)


if __name__ == "__main__":
    main()
