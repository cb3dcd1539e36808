"""Joint byte-level BPE (HuggingFace ``tokenizers``), trained offline on training text.

Ids 0-3 are reserved: ``<pad>`` 0 (also the models' ``pad_id``), ``<bos>`` 1, ``<eos>`` 2,
``<unk>`` 3. Byte-level BPE never produces ``<unk>`` and decodes back to the exact text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from ..errors import CheckpointError

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
    def load(cls, folder: str | Path) -> "BPETokenizer":
        from tokenizers import Tokenizer

        path = Path(folder) / FILE_NAME
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise CheckpointError(f"{path} is not a readable tokenizer: {str(exc).splitlines()[0]}") from None
        for i, special in enumerate(SPECIALS):
            if tok.token_to_id(special) != i:
                raise CheckpointError(f"{path}: special token {special} does not have id {i}")
        return cls(tok)

    def save(self, folder: str | Path) -> Path:
        from ..checkpoint import atomic_write_bytes

        path = Path(folder) / FILE_NAME
        atomic_write_bytes(path, self._tok.to_str().encode("utf-8"))
        return path

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([i for i in ids if i > UNK], skip_special_tokens=True).strip()
