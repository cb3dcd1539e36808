"""RingFormer-ViT comparison on Fashion-MNIST: reruns what is missing, then writes the page.

Every run trains one ``*-vit-tiny`` model for the same number of optimizer steps with
the same recipe, evaluates its best-validation checkpoint on the 10,000 test images and
leaves one small JSON (with its confusion matrix) in ``docs/results/vision/``. Finished
runs are skipped; an interrupted run resumes from its checkpoint in ``runs/vision-table/``.
The page ``docs/results/vision.md`` and the confusion-matrix figure of the best RingFormer
run are rebuilt from whatever JSONs exist.

    LOOPFORMER_DATA_MIRROR=../shared/data python benchmarks/vision_table.py
    python benchmarks/vision_table.py --page-only
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import tables
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "vision"
PAGE = ROOT / "docs" / "results" / "vision.md"
FIGURE = RESULTS / "confusion-ringformer.png"

# table row -> (--model family, preset)
MODELS = {
    "ringformer": ("ringformer", "vit-tiny"),
    "vit": ("vanilla", "vit-tiny"),
    "uit": ("universal", "vit-tiny"),
    "looped": ("looped", "vit-tiny"),
    "vit-matched": ("vanilla", "vit-tiny-matched"),
}
# No augmentation: on a budget of a few epochs, random crops and flips cost far more
# accuracy than they protect against overfitting (measured on short runs).
RECIPE = ["lr=1e-3", "warmup_steps=200", "schedule=cosine", "weight_decay=0.05", "beta2=0.999",
          "label_smoothing=0.1", "grad_clip=1.0", "batch_size=128", "crop_padding=0", "hflip=false",
          "eval_every=500", "progress=false"]


def run_one(name: str, seed: int, steps: int) -> None:
    from loopformer.tasks.vision_run import train_vision
    from loopformer.train.state import resolve

    family, preset = MODELS[name]
    out = ROOT / "runs" / "vision-table" / f"{name}-s{seed}"
    resume = resolve(out / "last") is not None
    res = train_vision(family, preset, RECIPE + [f"seed={seed}", f"max_steps={steps}"], out=str(out), resume=resume)
    test = res["test"]
    record = {
        "threads": torch.get_num_threads(),
        "name": name, "model": res["model"], "seed": seed, "steps": res["train"]["step"],
        "non_embedding": res["parameters"]["non_embedding"], "total": res["parameters"]["total"],
        "train_seconds": res["train"]["train_seconds"], "images_seen": res["train"]["tokens_seen"],
        "train_images_per_s": res["train"]["tokens_seen"] / max(res["train"]["train_seconds"], 1e-9),
        "eval_images_per_s": test["images"] / max(test["seconds"], 1e-9),
        "best_val_accuracy": res["train"]["best_score"], "test_accuracy": test["accuracy"],
        "per_class": test["per_class"], "confusion": test["confusion"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}-s{seed}.json").write_text(json.dumps(record, indent=1) + "\n")


def write_page(steps: int, seeds: list[int]) -> None:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))] if RESULTS.is_dir() else []
    rows = []
    for name, (_, preset) in MODELS.items():
        rs = [r for r in records if r["name"] == name]
        if not rs:
            rows.append(f"| {name} | `{preset}` | – | – | – | – | – | 0 of {len(seeds)} |")
            continue
        rows.append(
            f"| {name} | `{rs[0]['model']}` | {rs[0]['non_embedding']:,} | {rs[0]['total']:,} | "
            f"{tables.spread([r['test_accuracy'] for r in rs])} | "
            f"{statistics.mean(r['train_images_per_s'] for r in rs):,.0f} | "
            f"{statistics.mean(r['eval_images_per_s'] for r in rs):,.0f} | {len(rs)} of {len(seeds)} |"
        )
    rings = [r for r in records if r["name"] == "ringformer"]
    figure = ""
    if rings:
        from loopformer.analysis.confusion import plot_confusion
        from loopformer.data.fashion_mnist import CLASSES

        best = max(rings, key=lambda r: r["best_val_accuracy"])
        plot_confusion(best["confusion"], CLASSES, FIGURE,
                       title=f"RingFormer-ViT-tiny, seed {best['seed']}: {best['test_accuracy']:.2f}% test")
        figure = (f"\n## Confusion matrix of the best RingFormer run\n\nSeed {best['seed']} (chosen by "
                  f"validation accuracy), {best['test_accuracy']:.2f}% on the test set:\n\n"
                  f"![confusion matrix](vision/{FIGURE.name})\n")
    detail = "\n".join(
        f"| {r['name']} | {r['seed']} | {r['steps']} | {r['images_seen']:,} | {r['train_seconds'] / 60:.1f} | "
        f"{r['best_val_accuracy']:.2f} | {r['test_accuracy']:.2f} |"
        for r in records
    )
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(f"""# Vision: RingFormer-ViT and baselines on Fashion-MNIST

Produced by `benchmarks/vision_table.py` (rerun it to fill in missing runs; each finished
run is one JSON in `docs/results/vision/`). Every model has 6 levels (or layers), patch 7
on 28×28 greyscale images (16 patches + cls token), fixed sinusoidal positions, pre-norm,
dropout 0.1. Sizes: `vit-tiny` has RingFormer's depth and width (d 192, FFN 768);
`ringformer-vit-tiny` is d 192 with rank-12 level signals; `uit-tiny` and
`looped-vit-tiny` are d 216 so that their parameter count matches RingFormer's, and
`vit-tiny-matched` is a d 88 six-layer ViT of the same size.

One recipe for all: {steps:,} optimizer steps of 128 images (~{steps * 128 / 55000:.1f} epochs of the
55,000 training images; 5,000 held out for validation), AdamW (β 0.9/0.999, weight decay
0.05) at lr 1e-3 with 200 warmup steps and cosine decay to 0, label smoothing 0.1,
gradient clipping 1.0, no augmentation (it cost accuracy at this budget in short trial
runs), fp32. The checkpoint with the best validation accuracy (every 500 steps) is
scored on the 10,000 test images.

Spread is half the range over seeds. Images/s are measured on a 2-core AVX2 CPU (training
with backward; evaluation in batches of 500) and are indicative only: the budget is equal
in steps, not in time.

| row | preset | non-embedding | total | test accuracy % | train img/s | eval img/s | seeds done |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
{figure}
## Runs

| row | seed | steps | images seen | train minutes | best val acc % | test acc % |
|---|---|---|---|---|---|---|
{detail}
""")


def main() -> int:
    return tables.main(__doc__, MODELS, RESULTS, 4300, run_one, write_page)


if __name__ == "__main__":
    sys.exit(main())
