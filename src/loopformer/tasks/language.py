"""Causal language modelling: random-window batches, loss, validation loss, sampling.

Training batches are windows at random offsets of the training ids (nanoGPT's scheme),
drawn from a generator seeded by (seed, epoch, batch), so exact resume replays them.
Validation is deterministic: the validation ids cut into consecutive, non-overlapping
windows of the context length (every token predicted once, from the part of its window
before it), optionally only the first ``eval_windows`` of them.

A corpus file is recorded in ``task.json`` by absolute path and sha256, so that
evaluating or resuming the run, from any directory, reads the very text it trained on
or refuses.

``dataset`` may also name a folder made by ``loopformer prepare text`` (see
:mod:`loopformer.data.token_files`): its tokenizer and its train / validation cut are the
folder's, and windows are read from its ``tokens.bin`` as they are needed (validation
batch by batch), so memory does not grow with the corpus. Such a run records the sha256
of the folder's ``prepared.json``, which holds the sha256 of ``tokens.bin``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes
from ..config import Limit, check_fields
from ..data.download import DataError
from ..data.text import BUILTIN, CharTokenizer, load_text, split_text
from ..data.token_files import TokenFile
from ..data.tokenizer import BPETokenizer
from ..device import module_device
from ..errors import CheckpointError, ConfigError
from ..files import read_json, sha256_file
from .task_file import TASK_FILE, read_task_config


@dataclass
class LanguageConfig:
    dataset: str = "tinyshakespeare"  # a built-in corpus, a UTF-8 text file or a prepared folder
    tokenizer: str = "char"  # char | bpe (a prepared folder's own)
    bpe_vocab_size: int = 1024  # text files only: a prepared folder has its vocabulary
    context: int = 256
    batch_size: int = 12
    train_fraction: float = 0.9  # text files only: a prepared folder has its split
    eval_windows: int | None = None  # None: the whole validation split
    eval_batch_size: int = 32

    LIMITS: ClassVar[dict[str, Limit]] = {
        "bpe_vocab_size": Limit(300, 1 << 20), "context": Limit(1, 1 << 20), "batch_size": Limit(1, 1 << 16),
        "train_fraction": Limit(0.0, 1.0, open_lo=True, open_hi=True), "eval_windows": Limit(1, 10**9),
        "eval_batch_size": Limit(1, 1 << 16),
    }

    def __post_init__(self) -> None:
        check_fields(self, "language")
        if self.tokenizer not in ("char", "bpe"):
            raise ConfigError(f"tokenizer must be char or bpe, got {self.tokenizer!r}")


def load_lm_tokenizer(folder: Path, kind: str):
    return CharTokenizer.load(folder) if kind == "char" else BPETokenizer.load(folder)


def is_folder(dataset: str) -> bool:
    """Whether a (normalised) ``dataset`` setting names a prepared folder, not a text file."""
    return dataset not in BUILTIN and os.path.isdir(dataset)


def check_folder_settings(cfg: "LanguageConfig", tokens: TokenFile) -> None:
    """A prepared folder fixes the tokenizer, its vocabulary and the split: a setting that
    says otherwise is refused rather than silently ignored."""
    if cfg.tokenizer != tokens.kind:
        raise ConfigError(f"tokenizer={cfg.tokenizer} but {cfg.dataset} holds {tokens.kind} tokens; "
                          f"set tokenizer={tokens.kind}")
    for key in ("bpe_vocab_size", "train_fraction"):
        if getattr(cfg, key) != getattr(LanguageConfig, key):
            raise ConfigError(f"{key} does not apply to the prepared folder {cfg.dataset} (its vocabulary and "
                              f"split were fixed by loopformer prepare text); leave it unset")
    for split in ("train", "val"):
        if tokens.length(split) < cfg.context + 1:
            raise ConfigError(f"the {split} part of {cfg.dataset} has {tokens.length(split)} tokens, fewer "
                              f"than context + 1 = {cfg.context + 1}")


class LanguageTask:
    def __init__(self, cfg: LanguageConfig, tokenizer, text: str | None = None,
                 dataset_sha256: str | None = None, tokens: TokenFile | None = None) -> None:
        """``text`` supplies the corpus in memory instead of ``cfg.dataset``; a
        ``dataset_sha256`` is what the corpus file (or a prepared folder's manifest) must
        hash to (the one trained on); ``tokens`` is the prepared folder, already open."""
        self.cfg = cfg
        self.tok = tokenizer
        self._text = text
        self.dataset_sha256 = dataset_sha256
        self._ids: dict[str, torch.Tensor] = {}
        self._tokens = tokens

    @classmethod
    def prepare(cls, cfg: LanguageConfig, text: str | None = None) -> "LanguageTask":
        cfg = replace(cfg, dataset=dataset_path(cfg.dataset))
        if text is None and is_folder(cfg.dataset):
            tokens = TokenFile(cfg.dataset)
            check_folder_settings(cfg, tokens)
            return cls(cfg, tokens.tokenizer, dataset_sha256=tokens.sha256, tokens=tokens)
        digest = None
        if text is None:
            digest = None if cfg.dataset in BUILTIN else sha256_file(cfg.dataset, "dataset", DataError)
            text = load_text(cfg.dataset)
        if cfg.tokenizer == "char":
            tok = CharTokenizer.from_text(text)
        else:
            tok = BPETokenizer.train([split_text(text, cfg.train_fraction)[0]], vocab_size=cfg.bpe_vocab_size)
        return cls(cfg, tok, text, dataset_sha256=digest)

    def check_digest(self, digest: str) -> None:
        if self.dataset_sha256 is not None and digest != self.dataset_sha256:
            raise DataError(f"dataset {self.cfg.dataset} changed since the run was trained (sha256 "
                            f"{digest[:12]}..., trained on {self.dataset_sha256[:12]}...)")

    def corpus(self) -> str:
        """The whole text: the one given in memory, or the dataset file, which must still
        be the file the run trained on when its hash is known."""
        if self._text is not None:
            return self._text
        if self.dataset_sha256 is not None:
            self.check_digest(sha256_file(self.cfg.dataset, "dataset", DataError))
        return load_text(self.cfg.dataset)

    def token_file(self) -> TokenFile | None:
        """The prepared folder the run reads (None for a text corpus), opened and checked
        against the run's hash at first use."""
        if self._tokens is None and self._text is None and is_folder(self.cfg.dataset):
            tokens = TokenFile(self.cfg.dataset)
            self.check_digest(tokens.sha256)
            check_folder_settings(self.cfg, tokens)
            self._tokens = tokens
        return self._tokens

    def ids(self, split: str) -> torch.Tensor:
        """All ids of a split in memory (a prepared folder's are read whole: for small ones)."""
        if (tokens := self.token_file()) is not None:
            return tokens.windows(split, [0], tokens.length(split))[0]
        if split not in self._ids:
            text = self.corpus()
            train, val = split_text(text, self.cfg.train_fraction)
            for name, part in (("train", train), ("val", val)):
                ids = torch.tensor(self.tok.encode(part), dtype=torch.long)
                if len(ids) < self.cfg.context + 1:
                    raise ConfigError(
                        f"the {name} split has {len(ids)} tokens, fewer than context + 1 = {self.cfg.context + 1}"
                    )
                self._ids[name] = ids
        return self._ids[split]

    def split_length(self, split: str) -> int:
        tokens = self.token_file()
        return tokens.length(split) if tokens is not None else len(self.ids(split))

    def windows(self, split: str, starts: torch.Tensor, length: int) -> torch.Tensor:
        """(len(starts), length) ids of a split from the given offsets, read from the
        prepared folder's file or sliced from the ids in memory."""
        tokens = self.token_file()
        if tokens is not None:
            return tokens.windows(split, starts, length)
        return self.ids(split)[torch.as_tensor(starts, dtype=torch.long)[:, None] + torch.arange(length)]

    def model_overrides(self) -> dict[str, Any]:
        return {"vocab_size": self.tok.vocab_size, "max_len": self.cfg.context}

    def save_assets(self, folder: Path) -> None:
        self.tok.save(folder)
        saved = {"task": "language", **asdict(self.cfg)}
        if self.dataset_sha256 is not None:
            saved["dataset_sha256"] = self.dataset_sha256
        atomic_write_bytes(Path(folder) / TASK_FILE, json.dumps(saved, indent=2).encode())

    # --- training interface ----------------------------------------------------------------

    def batch_plan(self, epoch: int, seed: int) -> list[int]:
        n = max(1, self.split_length("train") // (self.cfg.batch_size * self.cfg.context))
        base = (seed * 1_000_003 + epoch) * 100_003
        return [base + k for k in range(n)]

    def make_batch(self, item: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(item)
        starts = torch.randint(0, self.split_length("train") - self.cfg.context, (self.cfg.batch_size,), generator=g)
        windows = self.windows("train", starts, self.cfg.context + 1)
        return {"tokens": windows[:, :-1], "labels": windows[:, 1:]}

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["labels"].numel())

    def loss(self, model, batch, label_smoothing: float) -> tuple[torch.Tensor, int]:
        logits = model(batch["tokens"])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                               label_smoothing=label_smoothing)
        return loss, int(batch["labels"].numel())

    def eval_count(self) -> int:
        """How many validation windows there are (at most ``eval_windows``)."""
        n = (self.split_length("val") - 1) // self.cfg.context
        return n if self.cfg.eval_windows is None else min(n, self.cfg.eval_windows)

    def eval_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The validation windows, ``batch_size`` at a time: only one batch is ever read."""
        n, t = self.eval_count(), self.cfg.context
        for i in range(0, n, batch_size):
            yield self.windows("val", torch.arange(i, min(i + batch_size, n)) * t, t + 1)

    def eval_windows(self) -> torch.Tensor:
        """Every validation window at once (for small data; evaluation goes batch by batch)."""
        if self.token_file() is not None:
            empty = torch.zeros(0, self.cfg.context + 1, dtype=torch.long)
            return torch.cat([empty, *self.eval_batches(self.cfg.eval_batch_size)])
        data, t = self.ids("val"), self.cfg.context
        n = self.eval_count()
        return data[: n * t + 1].unfold(0, t + 1, t)[:n] if n else data.new_zeros(0, t + 1)

    input_files = ("chars.json", "tokenizer.json")

    def analysis_batches(self, split: str | None, batch_size: int):
        """Validation windows (inputs only), the split language-model analyses run on."""
        if split not in (None, "val"):
            raise ConfigError(f"language-model analyses run on the validation split, not {split!r}")
        for windows in self.eval_batches(batch_size):
            yield (windows[:, :-1],), {"decoder": None}

    def evaluate(self, model) -> dict[str, float]:
        total, count = 0.0, 0
        device = module_device(model)
        for w in self.eval_batches(self.cfg.eval_batch_size):
            w = w.to(device)
            logits = model(w[:, :-1]).float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                     reduction="sum").item()
            count += w[:, 1:].numel()
        loss = total / max(count, 1)
        return {"val_loss": loss, "val_ppl": float(torch.tensor(loss).exp()), "score": -loss}


def load_language_config(folder: Path) -> LanguageConfig:
    return read_task_config(folder, LanguageConfig, "language-model", task="language")


def dataset_path(source: str) -> str:
    """A corpus file as an absolute path (a built-in corpus name unchanged): a relative
    path would name another file when the run is evaluated from another directory."""
    return source if source in BUILTIN else os.path.abspath(os.path.expanduser(source))


def absolute_dataset(settings: dict[str, Any]) -> dict[str, Any]:
    """Task settings with the ``dataset`` as :func:`dataset_path` stores it."""
    return {**settings, "dataset": dataset_path(settings["dataset"])} if "dataset" in settings else settings


def saved_dataset_sha256(folder: str | Path) -> str | None:
    """The sha256 of the corpus file a checkpoint's run trained on; None for a built-in
    corpus, a corpus given in memory, or a ``task.json`` older than the hash."""
    path = Path(folder) / TASK_FILE
    data = read_json(path, "task file", CheckpointError)
    digest = data.get("dataset_sha256") if isinstance(data, dict) else None
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise CheckpointError(f"{path}: dataset_sha256 is not a sha256 digest")
    return digest
