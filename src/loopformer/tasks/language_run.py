"""End-to-end language-model runs (``loopformer train language``) and text generation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_bytes, load_model
from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from ..models import build_model
from ..registry import get_config
from ..train.config import TrainConfig
from ..train.distributed import setup_from_env
from ..train.state import resolve
from ..train.trainer import Trainer
from .language import LanguageConfig, LanguageTask, load_language_config, load_lm_tokenizer
from .settings import prepare_out_dir, read_settings, run_name

SETTINGS = {"model": ModelConfig, "train": TrainConfig, "task": LanguageConfig}
# language models are usually trained without label smoothing and with a cosine schedule
DEFAULTS = ["label_smoothing=0", "schedule=cosine", "warmup_steps=100", "beta2=0.99", "weight_decay=0.1"]


def train_language(
    model_name: str, preset: str, pairs: list[str], config_file: str | None = None,
    out: str | None = None, resume: bool = False, text: str | None = None,
) -> dict[str, Any]:
    """Train, then report the best checkpoint's validation loss. ``text`` injects a corpus."""
    settings = read_settings(pairs, config_file, SETTINGS, defaults=DEFAULTS)
    name = run_name(model_name, preset)
    out_dir = Path(out or f"runs/language/{name}")
    train_cfg = TrainConfig(**settings["train"])
    dist_info = setup_from_env()
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    last = resolve(out_dir / "last")
    if last is not None and not resume:
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    prepare_out_dir(out_dir)
    if last is not None:
        task_cfg = load_language_config(last)
        task = LanguageTask(task_cfg, load_lm_tokenizer(last, task_cfg.tokenizer), text)
    else:
        task_cfg = LanguageConfig(**settings["task"])
        task = LanguageTask.prepare(task_cfg, text)
    model_cfg = get_config(name, **{**task.model_overrides(), **settings["model"]})
    if model_cfg.task != "decoder":
        raise ConfigError(f"preset '{name}' is not a causal language model (task {model_cfg.task!r})")
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    trainer = Trainer(task, model, train_cfg, out_dir)
    resumed = trainer.resume() if last is not None else False
    started = time.time()
    summary = trainer.fit()
    summary["wall_seconds_this_run"] = time.time() - started
    summary["resumed"] = resumed
    if not dist_info.is_main:  # rank 0 evaluates and reports
        return {"rank": dist_info.rank, "train": summary}
    best = resolve(out_dir / "best") or resolve(out_dir / "last")
    final_model = load_model(best).eval()
    with torch.no_grad():
        val = task.evaluate(final_model)
    from ..analysis.params import count_parameters

    c = count_parameters(final_model)
    results = {"model": name, "out": str(out_dir), "checkpoint": str(best), "train": summary,
               "parameters": {"non_embedding": c.non_embedding, "total": c.total}, "val": val}
    atomic_write_bytes(out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results


def is_language_checkpoint(path: str | Path) -> bool:
    try:
        return json.loads((Path(path) / "task.json").read_text()).get("task") == "language"
    except (OSError, ValueError, AttributeError):
        return False


def load_language_checkpoint(path: str | Path) -> tuple[torch.nn.Module, LanguageTask]:
    folder = Path(path)
    model = load_model(folder)
    cfg = load_language_config(folder)
    tok = load_lm_tokenizer(folder, cfg.tokenizer)
    if tok.vocab_size != model.config.vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tok.vocab_size} tokens but the model expects {model.config.vocab_size}"
        )
    return model.eval(), LanguageTask(cfg, tok)


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
