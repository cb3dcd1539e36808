"""Joint byte-level BPE (HuggingFace ``tokenizers``), trained offline on training text.

Ids 0-3 are reserved: ``<pad>`` 0 (also the models' ``pad_id``), ``<bos>`` 1, ``<eos>`` 2,
``<unk>`` 3. Byte-level BPE never produces ``<unk>`` and decodes back to the exact text.

A saved ``tokenizer.json`` is read bounded (a regular file of at most ``files.JSON_LIMIT``
bytes) and its vocabulary must number its tokens exactly 0..n-1: an id beyond that would
otherwise surface as an IndexError in the model's embedding, long after loading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import CheckpointError
from ..files import JSON_LIMIT, parse_json, read_bytes

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
FILE_NAME = "tokenizer.json"


class BPETokenizer:
    def __init__(self, tok) -> None:
        self._tok = tok

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, folder: str | Path, name: str = FILE_NAME) -> "BPETokenizer":
        from tokenizers import Tokenizer

        path = Path(folder) / name
        if not os.path.lexists(path):
            raise CheckpointError(f"{path} is missing")
        try:
            text = read_bytes(path, "tokenizer", CheckpointError, JSON_LIMIT).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"{path} is corrupt: not UTF-8 (invalid byte at offset {exc.start})") from None
        size = check_vocabulary(parse_json(text, str(path), CheckpointError), path)
        try:
            tok = Tokenizer.from_str(text)
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            why = (str(exc).strip().splitlines() or ["error"])[0]
            raise CheckpointError(f"{path} is not a readable tokenizer: {why}") from None
        if tok.get_vocab_size() != size:
            raise CheckpointError(f"{path}: the tokenizer counts {tok.get_vocab_size()} tokens, its vocabulary {size}")
        for i, special in enumerate(SPECIALS):
            if tok.token_to_id(special) != i:
                raise CheckpointError(f"{path}: special token {special} does not have id {i}")
        return cls(tok)

    def save(self, folder: str | Path, name: str = FILE_NAME) -> Path:
        from ..checkpoint import atomic_write_bytes

        path = Path(folder) / name
        atomic_write_bytes(path, self._tok.to_str().encode("utf-8"))
        return path

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def backend(self):
        """The ``tokenizers.Tokenizer`` itself (e.g. to wrap it for ``transformers``)."""
        return self._tok

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([i for i in ids if i > UNK], skip_special_tokens=True).strip()


def check_vocabulary(data: Any, path: Path) -> int:
    """The size of a ``tokenizer.json``'s BPE vocabulary, whose ids must be exactly 0..n-1
    and whose added tokens must be among them; one CheckpointError line otherwise."""
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(vocab, dict) or not vocab:
        raise CheckpointError(f"{path} is not a BPE tokenizer: it has no vocabulary")
    n = len(vocab)
    if not all(type(i) is int for i in vocab.values()) or set(vocab.values()) != set(range(n)):
        bad = next((t for t, i in vocab.items() if type(i) is not int or not 0 <= i < n), None)
        detail = f" ({bad[:40]!r} has id {str(vocab[bad])[:20]})" if bad is not None else " (an id repeats)"
        raise CheckpointError(f"{path}: vocabulary ids must be exactly 0..{n - 1}{detail}")
    added = data.get("added_tokens", [])
    if not isinstance(added, list) or not all(
        isinstance(t, dict) and type(t.get("id")) is int and 0 <= t["id"] < n for t in added
    ):
        raise CheckpointError(f"{path}: added tokens must have ids within the vocabulary (0..{n - 1})")
    return n
