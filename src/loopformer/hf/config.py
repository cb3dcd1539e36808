"""The Hugging Face config of an exported model.

The loopformer model config travels whole (``loopformer``: the same dict a checkpoint's
``config.json`` holds under ``model``), so the HF model is rebuilt by loopformer's own
builder and nothing is re-derived from HF fields. The HF fields ``generate`` and the Auto
classes read (vocabulary size, special ids, ``is_encoder_decoder``) are filled from it.
``loops``, ``level_rule`` and ``exit`` are the test-time depth settings every forward
and ``generate`` call uses unless given one of its own.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class LoopformerConfig(PretrainedConfig):
    model_type = "loopformer"

    def __init__(self, loopformer: dict[str, Any] | None = None, loops: int | None = None,
                 level_rule: str = "repeat_last", exit: str | None = None, **kwargs) -> None:
        self.loopformer = dict(loopformer or {})
        self.loops = loops  # None: the trained count
        self.level_rule = level_rule
        self.exit = exit  # "criterion:threshold[:min_loops]", e.g. "kl:0.01"; None: no early exit
        model = self.loopformer
        if model.get("task") == "seq2seq":
            kwargs.setdefault("is_encoder_decoder", True)
            kwargs.setdefault("vocab_size", model.get("tgt_vocab_size") or model.get("vocab_size"))
        elif model.get("task") == "decoder":
            kwargs.setdefault("vocab_size", model.get("vocab_size"))
        super().__init__(**kwargs)

    @property
    def kind(self) -> str:
        """The loopformer task model: ``decoder`` (causal LM), ``seq2seq`` or ``vit``."""
        return self.loopformer.get("task", "decoder")
