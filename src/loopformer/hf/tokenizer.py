"""A ``PreTrainedTokenizerFast`` that encodes exactly as the run's own tokenizer.

Byte-level BPE runs are wrapped as they are; a translation source also gets the EOS that
loopformer appends to every source sentence (a template post-processor), and its target
side decodes without specials. Character runs become a word-level vocabulary over single
characters: every character is its own token, joined back without spaces. A character
vocabulary has no padding symbol, so padding uses id 0 (masked out by
``attention_mask``, never read); a character outside the vocabulary, which loopformer
refuses, becomes id 0 here.
"""

from __future__ import annotations

import copy

from ..data.text import CharTokenizer
from ..data.tokenizer import BOS, EOS, PAD, SPECIALS, UNK, BPETokenizer


def hf_tokenizer(tok, kind: str):
    """The HF tokenizer of a loopformer tokenizer for task model ``kind``
    (``decoder`` pads on the left, for batched generation; ``seq2seq`` on the right)."""
    from transformers import PreTrainedTokenizerFast

    side = "left" if kind == "decoder" else "right"
    if isinstance(tok, CharTokenizer):
        return PreTrainedTokenizerFast(tokenizer_object=_char_backend(tok.chars), pad_token=tok.chars[0],
                                       padding_side=side)
    if not isinstance(tok, BPETokenizer):
        raise TypeError(f"no Hugging Face tokenizer for {type(tok).__name__}")
    backend = copy.deepcopy(tok.backend)
    if kind == "seq2seq":
        from tokenizers.processors import TemplateProcessing

        backend.post_processor = TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", EOS)])
    names = dict(zip(("pad_token", "bos_token", "eos_token", "unk_token"), (SPECIALS[i] for i in (PAD, BOS, EOS, UNK))))
    return PreTrainedTokenizerFast(tokenizer_object=backend, padding_side=side, **names)


def _char_backend(chars: list[str]):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token=chars[0]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return backend
