"""End-to-end language-model runs (``loopformer train language``) and text generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_model
from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from ..train.config import TrainConfig
from .language import (LanguageConfig, LanguageTask, absolute_dataset, load_language_config, load_lm_tokenizer,
                       saved_dataset_sha256)
from .runner import Run, open_run, parameters, train_best, write_results

SETTINGS = {"model": ModelConfig, "train": TrainConfig, "task": LanguageConfig}
# language models are usually trained without label smoothing and with a cosine schedule
DEFAULTS = ["label_smoothing=0", "schedule=cosine", "warmup_steps=100", "beta2=0.99", "weight_decay=0.1"]


def train_language(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False, text: str | None = None,
) -> dict[str, Any]:
    """Train, then report the best checkpoint's validation loss. ``text`` injects a corpus."""
    run = open_run("language", SETTINGS, model_name, preset, pairs, config_file, out, resume, defaults=DEFAULTS,
                   load_task=load_language_config, normalize_task=absolute_dataset)
    with run:
        return _train(run, text)


def _train(run: Run, text: str | None) -> dict[str, Any]:
    task_cfg = LanguageConfig(**run.settings["task"])
    if run.last is not None:  # the saved tokenizer, and the corpus checked against the saved hash
        task = LanguageTask(task_cfg, load_lm_tokenizer(run.last, task_cfg.tokenizer), text,
                            dataset_sha256=saved_dataset_sha256(run.last))
    else:
        task = LanguageTask.prepare(task_cfg, text)
    summary, best, final_model = train_best(run, task, "decoder")
    if final_model is None:
        return {"rank": run.dist.rank, "train": summary}
    with torch.no_grad():
        val = task.evaluate(final_model)
    return write_results(run, {"model": run.name, "out": str(run.out_dir), "checkpoint": str(best),
                               "train": summary, "parameters": parameters(final_model), "val": val})


def load_language_checkpoint(path: str | Path) -> tuple[torch.nn.Module, LanguageTask]:
    folder = Path(path)
    model = load_model(folder)
    cfg = load_language_config(folder)
    tok = load_lm_tokenizer(folder, cfg.tokenizer)
    if tok.vocab_size != model.config.vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tok.vocab_size} tokens but the model expects {model.config.vocab_size}"
        )
    return model.eval(), LanguageTask(cfg, tok, dataset_sha256=saved_dataset_sha256(folder))


def generate_text(model, task: LanguageTask, prompt: str, max_new_tokens: int, temperature: float = 0.8,
                  top_k: int | None = 200, seed: int = 0) -> str:
    """Prompt + continuation as text."""
    from ..sampling import sample

    ids = task.tok.encode(prompt)
    if not ids:
        raise ConfigError("the prompt is empty; give at least one character")
    limit = model.config.max_len
    if len(ids) >= limit:
        raise ConfigError(f"the prompt has {len(ids)} tokens; the model's context is {limit}")
    g = torch.Generator().manual_seed(seed)
    out = sample(model, torch.tensor([ids]), max_new_tokens, temperature, top_k, g)
    return task.tok.decode(out[0].tolist())


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The end of a training run, for the console (empty on a non-zero torchrun rank)."""
    if "val" not in results:
        return []
    val = results["val"]
    return [f"\ncheckpoint: {results['checkpoint']}",
            f"validation loss {val['val_loss']:.4f} (perplexity {val['val_ppl']:.2f})"]
