"""Translation on Multi30k: data preparation, loss, validation BLEU, test evaluation.

The task owns the tokenizer (a joint byte-level BPE trained on the training split and
saved in every checkpoint) and the encoded corpora; the trainer only sees batches.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes
from ..config import COUNT, Limit, check_fields
from ..data.batching import pad_batch, token_batches
from ..data.multi30k import load_multi30k
from ..data.tokenizer import BOS, EOS, PAD, BPETokenizer
from ..device import module_device
from ..errors import ConfigError
from ..generate import MAX_BEAM, MAX_LENGTH_PENALTY, decode
from ..packing import packed_linears
from .task_file import TASK_FILE, read_task_config


@dataclass
class TranslationConfig:
    src_lang: str = "de"
    tgt_lang: str = "en"
    bpe_vocab_size: int = 8000
    batch_tokens: int = 4096
    max_sentence_tokens: int = 100
    val_bleu_sentences: int = 300
    val_beam: int = 1
    test_beam: int = 4
    length_penalty: float = 0.6
    # after training, beam-search the validation sentences with each of these length
    # penalties and keep the best for the test splits and the checkpoint ("": keep length_penalty)
    length_penalty_grid: str = ""
    eval_batch_sentences: int = 128
    test_splits: str = "test2016,test2017"

    LIMITS: ClassVar[dict[str, Limit]] = {
        "bpe_vocab_size": Limit(300, 1 << 20), "batch_tokens": Limit(1, 1 << 22),
        "max_sentence_tokens": Limit(1, 1 << 16), "val_bleu_sentences": COUNT,
        "val_beam": Limit(1, MAX_BEAM), "test_beam": Limit(1, MAX_BEAM),
        "length_penalty": Limit(0.0, MAX_LENGTH_PENALTY),
        "eval_batch_sentences": Limit(1, 1 << 16),
    }

    def __post_init__(self) -> None:
        check_fields(self, "translation")
        if {self.src_lang, self.tgt_lang} != {"de", "en"}:
            raise ConfigError("Multi30k translates de->en or en->de (src_lang/tgt_lang)")
        unknown = [t for t in self.splits_to_test if t not in ("val", "test2016", "test2017")]
        if unknown:
            raise ConfigError(f"test_splits may name val, test2016, test2017; got {', '.join(unknown)}")
        self.penalty_grid  # noqa: B018 - parses and validates


    @property
    def penalty_grid(self) -> list[float]:
        """The length penalties ``length_penalty_grid`` lists (empty: no choice to make)."""
        text = str(self.length_penalty_grid).replace(" ", "")
        try:
            grid = [float(x) for x in text.split(",") if x]
        except ValueError:
            raise ConfigError(f"length_penalty_grid must list numbers like '0.6,1.0,1.5'; got {text!r}") from None
        if any(not (v >= 0 and v < float("inf")) for v in grid):
            raise ConfigError(f"length_penalty_grid values must be finite and >= 0; got {text!r}")
        return grid

    @property
    def splits_to_test(self) -> list[str]:
        return [t.strip() for t in self.test_splits.split(",") if t.strip()]


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> tuple[Any, str]:
    """sacreBLEU corpus score (default 13a tokenisation, cased) and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    score = metric.corpus_score(list(hyps), [list(refs)])
    return score, str(metric.get_signature())


class TranslationTask:
    def __init__(
        self, cfg: TranslationConfig, tokenizer: BPETokenizer,
        splits: dict[str, tuple[list[str], list[str]]] | None = None,
    ) -> None:
        """``splits`` supplies in-memory (sources, targets) per split name instead of Multi30k."""
        self.cfg = cfg
        self.tok = tokenizer
        self._splits: dict[str, tuple[list[str], list[str]]] = dict(splits or {})
        self._train: tuple[list[list[int]], list[list[int]]] | None = None
        self._val: dict[str, Any] | None = None

    def encode_pairs(self, src: Sequence[str], tgt: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of sentence pairs as the model sees them: source + EOS, BOS + target + EOS."""
        m = self.cfg.max_sentence_tokens
        s = [ids[: m - 1] + [EOS] for ids in self.tok.encode_batch(src)]
        t = [[BOS] + ids[: m - 1] + [EOS] for ids in self.tok.encode_batch(tgt)]
        return s, t

    @property
    def train_data(self) -> tuple[list[list[int]], list[list[int]]]:
        if self._train is None:
            self._train = self.encode_pairs(*self.split("train"))
            self._src_lens = [len(x) for x in self._train[0]]
            self._tgt_lens = [len(x) - 1 for x in self._train[1]]
        return self._train

    @property
    def val_data(self) -> dict[str, Any]:
        if self._val is None:
            src, ref = self.split("val")
            vs, vt = self.encode_pairs(src, ref)
            n, b = min(self.cfg.val_bleu_sentences, len(src)), self.cfg.eval_batch_sentences
            self._val = {"src": src[:n], "ref": ref[:n],
                         "batches": [(vs[i : i + b], vt[i : i + b]) for i in range(0, len(vs), b)]}
        return self._val

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def prepare(cls, cfg: TranslationConfig, folder: Path | None = None) -> "TranslationTask":
        """Load the tokenizer saved in ``folder`` (resume) or train one on the training split."""
        if folder is not None and (Path(folder) / "tokenizer.json").is_file():
            tok = BPETokenizer.load(folder)
        else:
            src, tgt = load_multi30k("train", cfg.src_lang, cfg.tgt_lang)
            tok = BPETokenizer.train(src + tgt, vocab_size=cfg.bpe_vocab_size)
        return cls(cfg, tok)

    def split(self, name: str) -> tuple[list[str], list[str]]:
        if name not in self._splits:
            self._splits[name] = load_multi30k(name, self.cfg.src_lang, self.cfg.tgt_lang)
        return self._splits[name]

    # files of a checkpoint that decide what its inputs are (two checkpoints compared
    # layer by layer must agree on them)
    input_files = ("tokenizer.json",)

    def analysis_batches(self, split: str | None, batch_size: int):
        """Teacher-forced (source, target input) batches of a split, with the real-token
        mask of each stack: what analyses feed the model."""
        src, ref = self.split(split or "test2016")
        s_ids, t_ids = self.encode_pairs(src, ref)
        for i in range(0, len(s_ids), batch_size):
            s, t = pad_batch(s_ids[i : i + batch_size], PAD), pad_batch(t_ids[i : i + batch_size], PAD)
            t_in = t[:, :-1]
            yield (s, t_in), {"encoder": s.ne(PAD), "decoder": t_in.ne(PAD)}

    def model_overrides(self) -> dict[str, Any]:
        return {"vocab_size": self.tok.vocab_size, "tgt_vocab_size": None, "pad_id": PAD,
                "max_len": max(self.cfg.max_sentence_tokens + 2, 64)}

    def save_assets(self, folder: Path) -> None:
        self.tok.save(folder)
        atomic_write_bytes(Path(folder) / TASK_FILE,
                           json.dumps({"task": "translation", **asdict(self.cfg)}, indent=2).encode())

    # --- training interface ------------------------------------------------------------------

    def batch_plan(self, epoch: int, seed: int) -> list[list[int]]:
        self.train_data  # noqa: B018 - builds the length tables
        return token_batches(self._src_lens, self._tgt_lens, self.cfg.batch_tokens, True, seed, epoch)

    def make_batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        train_src, train_tgt = self.train_data
        src = pad_batch([train_src[i] for i in indices], PAD)
        tgt = pad_batch([train_tgt[i] for i in indices], PAD)
        return {"src": src, "tgt_in": tgt[:, :-1], "labels": tgt[:, 1:]}

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["labels"].ne(PAD).sum())

    def loss(self, model, batch, label_smoothing: float) -> tuple[torch.Tensor, int]:
        logits = model(batch["src"], batch["tgt_in"])
        labels = batch["labels"]
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
            ignore_index=PAD, label_smoothing=label_smoothing,
        )
        return loss, int(labels.ne(PAD).sum())

    def evaluate(self, model) -> dict[str, float]:
        total, count = 0.0, 0
        val = self.val_data
        device = module_device(model)
        for src, tgt in val["batches"]:
            s, t = pad_batch(src, PAD).to(device), pad_batch(tgt, PAD).to(device)
            logits = model(s, t[:, :-1]).float()
            labels = t[:, 1:]
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                     ignore_index=PAD, reduction="sum").item()
            count += int(labels.ne(PAD).sum())
        hyps = self.translate(model, val["src"], beam=self.cfg.val_beam)
        score = bleu(hyps, val["ref"])[0].score
        return {"val_loss": total / max(count, 1), "val_bleu": score, "score": score}

    # --- inference ----------------------------------------------------------------------------

    def translate(self, model, sentences: Sequence[str], beam: int | None = None,
                  length_penalty: float | None = None, max_input_tokens: int | None = None) -> list[str]:
        """Translate sentences (empty input -> empty output), in length-sorted batches."""
        beam = beam or self.cfg.test_beam
        lp = self.cfg.length_penalty if length_penalty is None else length_penalty
        limit = max_input_tokens or (model.config.max_len - 2)
        encoded = self.tok.encode_batch(list(sentences))
        out = [""] * len(sentences)
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        todo.sort(key=lambda i: len(encoded[i]))
        step = max(1, self.cfg.eval_batch_sentences // beam)
        was_training = model.training
        model.eval()
        device = module_device(model)
        try:
            with packed_linears(model):  # packed once for all batches, not once per batch
                for start in range(0, len(todo), step):
                    idx = todo[start : start + step]
                    src = pad_batch([encoded[i][: limit - 1] + [EOS] for i in idx], PAD).to(device)
                    max_len = min(int(src.shape[1] * 1.5) + 10, model.config.max_len - 1)
                    hyps = decode(model, src, BOS, EOS, max_len, beam=beam, length_penalty=lp)
                    for i, ids in zip(idx, hyps.tokens):
                        out[i] = self.tok.decode(ids)
        finally:
            model.train(was_training)
        return out

    def test_bleu(self, model, split: str = "test2016", beam: int | None = None,
                  length_penalty: float | None = None) -> dict[str, Any]:
        src, ref = self.split(split)
        hyps = self.translate(model, src, beam=beam, length_penalty=length_penalty)
        score, signature = bleu(hyps, ref)
        lp = self.cfg.length_penalty if length_penalty is None else length_penalty
        return {"split": split, "bleu": score.score, "text": str(score), "signature": signature,
                "beam": beam or self.cfg.test_beam, "length_penalty": lp}


def choose_length_penalty(task: TranslationTask, model, grid: Sequence[float]) -> dict[str, Any]:
    """The length penalty with the best validation BLEU at the test beam width.

    Beam search keeps the hypothesis with the best score / length-norm; how strongly that
    norm must favour long outputs depends on the model (short runs end with models whose
    outputs are several percent too short at the default), so the run picks it on the
    validation sentences it already scores, never on a test split. Ties go to the earlier
    value in the grid."""
    val = task.val_data
    scores = {lp: bleu(task.translate(model, val["src"], length_penalty=lp), val["ref"])[0].score for lp in grid}
    best = max(grid, key=lambda lp: scores[lp])
    return {"length_penalty": best, "val_bleu": {str(lp): s for lp, s in scores.items()},
            "sentences": len(val["src"]), "beam": task.cfg.test_beam}


def load_task_config(folder: Path) -> TranslationConfig:
    return read_task_config(folder, TranslationConfig, "translation", missing_ok=True)
