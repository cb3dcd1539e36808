"""Translation: data preparation, loss, validation BLEU, test evaluation.

The data is Multi30k or any parallel corpus (:mod:`.translation_data`). The task owns
the tokenizer (a byte-level BPE trained on the training split, joint for both languages
or one per side, saved in every checkpoint) and the encoded corpora; the trainer only
sees batches.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes
from ..config import COUNT, Limit, check_fields
from ..data.batching import pad_batch, token_batches
from ..data.download import DataError
from ..data.lines import BAD_LINE_CHOICES, LinePolicy, numbered_lines
from ..data.tokenizer import BOS, EOS, PAD, BPETokenizer
from ..device import module_device
from ..errors import ConfigError
from ..generate import MAX_BEAM, MAX_LENGTH_PENALTY, decode
from ..packing import packed_linears
from .task_file import TASK_FILE, read_task_config
from .translation_data import BUILTIN, MULTI30K_TESTS, TranslationData

TARGET_TOKENIZER = "tokenizer-target.json"  # the target side's, when vocab=separate
VOCAB_CHOICES = ("joint", "separate")
LANG_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


@dataclass
class TranslationConfig:
    # multi30k (built in), a directory of split files, or train:PATH,valid:PATH,... (docs/data.md)
    data: str = BUILTIN
    src_lang: str = "de"
    tgt_lang: str = "en"
    bpe_vocab_size: int = 8000
    vocab: str = "joint"  # joint: one BPE for both languages; separate: one per side
    bad_lines: str = "error"  # error | skip (counted): empty, not UTF-8, over-long, malformed lines
    max_line_chars: int = 2000
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
    # auto: every test split of the data (Multi30k: test2016,test2017); "": none
    test_splits: str = "auto"

    LIMITS: ClassVar[dict[str, Limit]] = {
        "bpe_vocab_size": Limit(300, 1 << 20), "batch_tokens": Limit(1, 1 << 22),
        "max_sentence_tokens": Limit(1, 1 << 16), "val_bleu_sentences": COUNT,
        "val_beam": Limit(1, MAX_BEAM), "test_beam": Limit(1, MAX_BEAM),
        "length_penalty": Limit(0.0, MAX_LENGTH_PENALTY),
        "eval_batch_sentences": Limit(1, 1 << 16), "max_line_chars": Limit(1, 1 << 24),
    }

    def __post_init__(self) -> None:
        check_fields(self, "translation")
        for key, value, choices in (("vocab", self.vocab, VOCAB_CHOICES), ("bad_lines", self.bad_lines,
                                                                          BAD_LINE_CHOICES)):
            if value not in choices:
                raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
        if not self.data:
            raise ConfigError("data must name multi30k, a directory or train:PATH,...; got an empty value")
        if self.data == BUILTIN:
            self.check_multi30k()
        elif self.src_lang == self.tgt_lang or not all(LANG_CODE.fullmatch(x) for x in (self.src_lang, self.tgt_lang)):
            raise ConfigError(f"src_lang and tgt_lang must be two different language codes (as in the file names, "
                              f"e.g. de, en); got {self.src_lang!r}, {self.tgt_lang!r}")
        self.penalty_grid  # noqa: B018 - parses and validates

    def check_multi30k(self) -> None:
        if {self.src_lang, self.tgt_lang} != {"de", "en"}:
            raise ConfigError("Multi30k translates de->en or en->de (src_lang/tgt_lang); other pairs need data=")
        unknown = [t for t in self.splits_to_test or () if t not in ("val", *MULTI30K_TESTS)]
        if unknown:
            raise ConfigError(f"test_splits may name val, test2016, test2017; got {', '.join(unknown)}")


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
    def splits_to_test(self) -> list[str] | None:
        """The test splits asked for (None: all the data has, :meth:`TranslationData.test_splits`)."""
        if self.test_splits.strip() == "auto":
            return None
        return [t.strip() for t in self.test_splits.split(",") if t.strip()]

    def source(self) -> TranslationData:
        return TranslationData(self.data, self.src_lang, self.tgt_lang, self.splits_to_test,
                               self.bad_lines, self.max_line_chars)


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> tuple[Any, str]:
    """sacreBLEU corpus score (default 13a tokenisation, cased) and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    score = metric.corpus_score(list(hyps), [list(refs)])
    return score, str(metric.get_signature())


class TranslationTask:
    def __init__(
        self, cfg: TranslationConfig, tokenizer: BPETokenizer,
        splits: dict[str, tuple[list[str], list[str]]] | None = None, target_tokenizer: BPETokenizer | None = None,
    ) -> None:
        """``splits`` supplies in-memory (sources, targets) per split name instead of the
        configured data; ``target_tokenizer`` is the target side's (vocab=separate)."""
        self.cfg = cfg
        self.tok = tokenizer
        self.tgt_tok = target_tokenizer or tokenizer
        self.data = cfg.source()
        self._splits: dict[str, tuple[list[str], list[str]]] = dict(splits or {})
        self._train: tuple[list[list[int]], list[list[int]]] | None = None
        self._val: dict[str, Any] | None = None

    def encode_pairs(self, src: Sequence[str], tgt: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of sentence pairs as the model sees them: source + EOS, BOS + target + EOS."""
        m = self.cfg.max_sentence_tokens
        s = [ids[: m - 1] + [EOS] for ids in self.tok.encode_batch(src)]
        t = [[BOS] + ids[: m - 1] + [EOS] for ids in self.tgt_tok.encode_batch(tgt)]
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
    def prepare(cls, cfg: TranslationConfig) -> "TranslationTask":
        """Check the data has every split the run needs, then train the tokenizer(s) on
        the training split."""
        data = cfg.source()
        data.check()
        src, tgt = data.split("train")
        if cfg.vocab == "separate":
            tok = BPETokenizer.train(src, vocab_size=cfg.bpe_vocab_size)
            target = BPETokenizer.train(tgt, vocab_size=cfg.bpe_vocab_size)
        else:
            tok, target = BPETokenizer.train(src + tgt, vocab_size=cfg.bpe_vocab_size), None
        task = cls(cfg, tok, {"train": (src, tgt)}, target_tokenizer=target)
        task.data = data  # it holds what was skipped reading the training split
        return task

    @classmethod
    def from_folder(cls, cfg: TranslationConfig, folder: Path) -> "TranslationTask":
        """The task with the tokenizer(s) a checkpoint saved."""
        target = BPETokenizer.load(folder, TARGET_TOKENIZER) if cfg.vocab == "separate" else None
        return cls(cfg, BPETokenizer.load(folder), target_tokenizer=target)

    def split(self, name: str) -> tuple[list[str], list[str]]:
        if name not in self._splits:
            self._splits[name] = self.data.split(name)
        return self._splits[name]

    def test_split_names(self) -> list[str]:
        return self.data.test_splits()

    # files of a checkpoint that decide what its inputs are (two checkpoints compared
    # layer by layer must agree on them)
    input_files = ("tokenizer.json", TARGET_TOKENIZER)

    def analysis_batches(self, split: str | None, batch_size: int):
        """Teacher-forced (source, target input) batches of a split, with the real-token
        mask of each stack: what analyses feed the model."""
        src, ref = self.split(split or next(iter(self.test_split_names()), "val"))
        s_ids, t_ids = self.encode_pairs(src, ref)
        for i in range(0, len(s_ids), batch_size):
            s, t = pad_batch(s_ids[i : i + batch_size], PAD), pad_batch(t_ids[i : i + batch_size], PAD)
            t_in = t[:, :-1]
            yield (s, t_in), {"encoder": s.ne(PAD), "decoder": t_in.ne(PAD)}

    def model_overrides(self) -> dict[str, Any]:
        separate = self.tgt_tok is not self.tok
        return {"vocab_size": self.tok.vocab_size, "tgt_vocab_size": self.tgt_tok.vocab_size if separate else None,
                "pad_id": PAD,
                "max_len": max(self.cfg.max_sentence_tokens + 2, 64)}

    def save_assets(self, folder: Path) -> None:
        self.tok.save(folder)
        if self.tgt_tok is not self.tok:
            self.tgt_tok.save(folder, TARGET_TOKENIZER)
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
                        out[i] = self.tgt_tok.decode(ids)
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


def file_bleu(task: TranslationTask, model, src_path: str, ref_path: str, beam: int | None = None,
              length_penalty: float | None = None) -> dict[str, Any]:
    """sacreBLEU of the translations of a file of sources against a file of references,
    line by line (an empty source line translates to an empty line, as ``translate`` does)."""
    sides = []
    for path in (src_path, ref_path):
        policy = LinePolicy("error", task.cfg.max_line_chars)
        sides.append([text for _, text in numbered_lines(Path(path), policy)])
    if len(sides[0]) != len(sides[1]):
        raise DataError(f"{ref_path} has {len(sides[1])} lines but {src_path} has {len(sides[0])}: "
                        "references pair with sources line by line")
    hyps = task.translate(model, sides[0], beam=beam, length_penalty=length_penalty)
    score, signature = bleu(hyps, sides[1])
    lp = task.cfg.length_penalty if length_penalty is None else length_penalty
    return {"split": str(src_path), "reference": str(ref_path), "sentences": len(hyps), "bleu": score.score,
            "text": str(score), "signature": signature, "beam": beam or task.cfg.test_beam, "length_penalty": lp}


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
