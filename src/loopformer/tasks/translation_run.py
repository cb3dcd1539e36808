"""End-to-end translation runs (what ``loopformer train translation`` does)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_model, write_manifest
from ..config import ModelConfig
from ..errors import CheckpointError
from ..train.config import TrainConfig
from .runner import Run, open_run, parameters, train_best, write_results
from .translation import TARGET_TOKENIZER, TranslationConfig, TranslationTask, choose_length_penalty, load_task_config
from .translation_data import absolute_data

SETTINGS = {"model": ModelConfig, "train": TrainConfig, "task": TranslationConfig}


def train_translation(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False,
) -> dict[str, Any]:
    """Train, then score the best checkpoint on the configured test splits."""
    run = open_run("translation", SETTINGS, model_name, preset, pairs, config_file, out, resume,
                   load_task=load_task_config, normalize_task=absolute_data)
    with run:
        return _train(run)


def _train(run: Run) -> dict[str, Any]:
    task_cfg = TranslationConfig(**run.settings["task"])
    if run.last is not None:
        task = TranslationTask.from_folder(task_cfg, run.last)
        task.data.check()
    else:
        task = TranslationTask.prepare(task_cfg)
    summary, best, final_model = train_best(run, task, "seq2seq")
    if final_model is None:
        return {"rank": run.dist.rank, "train": summary}
    results = {"model": run.name, "out": str(run.out_dir), "checkpoint": str(best), "train": summary,
               "parameters": parameters(final_model)}
    if task_cfg.penalty_grid:
        results["length_penalty_choice"] = choice = choose_length_penalty(task, final_model, task_cfg.penalty_grid)
        task.cfg.length_penalty = choice["length_penalty"]
        task.save_assets(best)  # eval / translate of this checkpoint use the chosen value
        write_manifest(best)  # task.json changed: seal the folder again
    for split in task.test_split_names():
        t0 = time.time()
        res = task.test_bleu(final_model, split)
        res["seconds"] = time.time() - t0
        results[split] = res
    if not task.data.builtin:
        results["data"] = task.data.describe()
    return write_results(run, results)


def load_translation_checkpoint(path: str) -> tuple[torch.nn.Module, TranslationTask]:
    folder = Path(path)
    model = load_model(folder)
    task = TranslationTask.from_folder(load_task_config(folder), folder)
    target = TARGET_TOKENIZER if task.tgt_tok is not task.tok else "tokenizer.json"
    for tok, name, size in ((task.tok, "tokenizer.json", model.config.vocab_size),
                            (task.tgt_tok, target, model.config.target_vocab_size)):
        if tok.vocab_size != size:
            raise CheckpointError(f"{folder / name} has {tok.vocab_size} tokens but the model expects {size}")
    return model.eval(), task


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The end of a training run, for the console (empty on a non-zero torchrun rank)."""
    if "checkpoint" not in results:
        return []
    lines = [f"\ncheckpoint: {results['checkpoint']}"]
    if "length_penalty_choice" in results:
        c = results["length_penalty_choice"]
        tried = ", ".join(f"{lp}: {s:.2f}" for lp, s in c["val_bleu"].items())
        lines.append(f"length penalty {c['length_penalty']} chosen on {c['sentences']} validation sentences "
                     f"(val BLEU at beam {c['beam']}: {tried})")
    for split, r in results.items():
        if isinstance(r, dict) and "bleu" in r:
            lines.append(f"{split} sacreBLEU (beam {r['beam']}): {r['bleu']:.2f}  [{r['text']}]  {r['signature']}")
    skipped = results.get("data", {}).get("skipped")
    if skipped:
        lines.append(f"lines skipped (bad_lines=skip): {skipped}")
    return lines
