"""Train one table row and write its JSON record.

The record is all a page ever reads, so its fields and file name
(``<results>/<row>-s<seed>.json``) stay fixed: pages rebuilt later, and runs interrupted
earlier, rely on them. A run directory that already holds a ``last`` checkpoint is
resumed rather than restarted, so an interrupted run continues where it stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .spec import Row

PROMPT = "ROMEO:\n"  # the language page's generation prompt


def run_settings(row: Row, seed: int, steps: int, device: str) -> list[str]:
    """The key=value settings a run passes after its recipe file: the row's overrides, the
    device, the seed and the budget. Later settings win, so these refine the recipe."""
    return [*row.overrides, f"device={device}", f"seed={seed}", f"max_steps={steps}"]


def device_label(device: str) -> str:
    """What a run's speed figures were measured on, for its record and the page."""
    import torch

    from loopformer.device import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU, {torch.get_num_threads()} thread(s)"


def run_context(device: str) -> dict[str, Any]:
    """Where a run's speed was measured: device, threads, and how many table runs shared
    the machine (``TABLE_CONCURRENT_RUNS``, set by whoever launched them side by side)."""
    import os

    import torch

    return {"device": device_label(device), "threads": torch.get_num_threads(),
            "concurrent_runs": int(os.environ.get("TABLE_CONCURRENT_RUNS", "1"))}


def train_row(row: Row, name: str, seed: int, steps: int, device: str, out: Path, results: Path) -> dict:
    """Train (or resume) one row in run directory ``out`` and write its record into
    ``results``; returns the record."""
    from loopformer.train.state import resolve

    trainer, indent = TRAINERS[row.recipe.task]
    resume = resolve(out / "last") is not None
    record = {**run_context(device), **trainer(row, name, seed, steps, device, out, resume)}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}-s{seed}.json").write_text(json.dumps(record, indent=indent) + "\n")
    return record


def _translation(row: Row, name: str, seed: int, steps: int, device: str, out: Path, resume: bool) -> dict:
    """A ``*-mt-small`` run: best-validation checkpoint scored on test2016 and test2017."""
    from loopformer.tasks.translation_run import train_translation

    res = train_translation(row.family, row.preset, run_settings(row, seed, steps, device),
                            config_file=str(row.recipe.file), out=str(out), resume=resume)
    return {
        "name": name, "seed": seed, "steps": res["train"]["step"], "overrides": list(row.overrides),
        "non_embedding": res["parameters"]["non_embedding"], "total": res["parameters"]["total"],
        "train_seconds": res["train"]["train_seconds"], "tokens_seen": res["train"]["tokens_seen"],
        "tokens_per_s": res["train"]["tokens_seen"] / max(res["train"]["train_seconds"], 1e-9),
        "best_val_bleu": res["train"]["best_score"],
        "test2016": res["test2016"]["bleu"], "test2017": res["test2017"]["bleu"],
        "signature": res["test2016"]["signature"], "beam": res["test2016"]["beam"],
    }


def _vision(row: Row, name: str, seed: int, steps: int, device: str, out: Path, resume: bool) -> dict:
    """A ViT run: best-validation checkpoint scored on the 10,000 test images, with its
    per-class accuracy and confusion matrix (the page draws the best RingFormer's)."""
    from loopformer.tasks.vision_run import train_vision

    res = train_vision(row.family, row.preset, run_settings(row, seed, steps, device),
                       config_file=str(row.recipe.file), out=str(out), resume=resume)
    test = res["test"]
    return {
        "name": name, "model": res["model"], "seed": seed, "steps": res["train"]["step"],
        "overrides": list(row.overrides),
        "non_embedding": res["parameters"]["non_embedding"], "total": res["parameters"]["total"],
        "train_seconds": res["train"]["train_seconds"], "images_seen": res["train"]["tokens_seen"],
        "train_images_per_s": res["train"]["tokens_seen"] / max(res["train"]["train_seconds"], 1e-9),
        "eval_images_per_s": test["images"] / max(test["seconds"], 1e-9),
        "best_val_accuracy": res["train"]["best_score"], "test_accuracy": test["accuracy"],
        "per_class": test["per_class"], "confusion": test["confusion"],
    }


def _language(row: Row, name: str, seed: int, steps: int, device: str, out: Path, resume: bool) -> dict:
    """A character-level LM run: validation loss of the best checkpoint, analytic FLOPs and
    the generation speed, measured on the training device, with the sample it generated."""
    from loopformer.analysis.flops import lm_flops
    from loopformer.device import resolve_device
    from loopformer.tasks.language_run import load_language_checkpoint, train_language

    res = train_language(row.family, row.preset, run_settings(row, seed, steps, device),
                         config_file=str(row.recipe.file), out=str(out), resume=resume)
    model, task = load_language_checkpoint(res["checkpoint"])
    model.to(resolve_device(device))
    gen_tps, sample_text = generation_speed(model, task)
    return {
        "name": name, "model": res["model"], "seed": seed, "steps": res["train"]["step"],
        "non_embedding": res["parameters"]["non_embedding"], "total": res["parameters"]["total"],
        "train_seconds": res["train"]["train_seconds"], "tokens_seen": res["train"]["tokens_seen"],
        "train_tokens_per_s": res["train"]["tokens_seen"] / max(res["train"]["train_seconds"], 1e-9),
        "generate_tokens_per_s": gen_tps, "flops_per_token": lm_flops(model.config, 256).per_token,
        "val_loss": res["val"]["val_loss"], "val_ppl": res["val"]["val_ppl"], "sample": sample_text,
    }


def train_with_cli(args: list[str], out: Path) -> dict:
    """Run ``loopformer <args>`` (training into ``out``) in this process, resuming the run
    when ``out`` holds a checkpoint; returns its ``results.json``. Pages whose records are
    command lines (the your-data comparisons) train through the CLI this way."""
    from loopformer.cli import main
    from loopformer.train.state import resolve

    resume = ["--resume"] if resolve(out / "last") is not None else []
    print("== loopformer", " ".join(args + resume), flush=True)
    if main(args + resume) != 0:
        raise SystemExit(f"the run in {out} failed")
    return json.loads((out / "results.json").read_text())


def generation_speed(model, task, tokens: int = 200) -> tuple[float, str]:
    """Tokens/s of KV-cached sampling (batch 1, after a short prompt) and the text."""
    import torch

    from loopformer.sampling import sample

    ids = torch.tensor([task.tok.encode(PROMPT)])
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    out = sample(model, ids, tokens, temperature=0.8, top_k=50, generator=g)
    elapsed = time.perf_counter() - start
    return (out.shape[1] - ids.shape[1]) / elapsed, task.tok.decode(out[0].tolist())


# task -> (trainer, JSON indent of its records: kept as the records were first written)
TRAINERS = {"translation": (_translation, 2), "vision": (_vision, 1), "language": (_language, 1)}
