"""``transformers`` models around loopformer's task models.

Each wraps the very module loopformer builds from the config (``self.net``), so logits
are loopformer's own; what the wrappers add is the HF calling convention: ``input_ids`` /
``attention_mask`` (1 = token, 0 = padding) / ``labels`` (-100 ignored), outputs as
``ModelOutput``, and ``generate`` on :class:`~loopformer.hf.cache.LoopformerCache`, which
keeps one entry per (level, layer) and follows beam reordering. Left-padded prompts work
because the loopformer cache remembers the padding of every past position.

Test-time depth passes through: ``loops``, ``level_rule`` and ``exit`` on a forward or
as ``generate`` keyword arguments, else the config's.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast, ImageClassifierOutput, \
    Seq2SeqLMOutput

from ..config import ModelConfig
from ..models import build_model
from ..models.depth import ExitRule, run_depth
from .cache import LoopformerCache
from .config import LoopformerConfig


class LoopformerPreTrainedModel(PreTrainedModel):
    config_class = LoopformerConfig
    base_model_prefix = "net"
    supports_gradient_checkpointing = False
    _no_split_modules: list[str] = []

    def __init__(self, config: LoopformerConfig) -> None:
        super().__init__(config)
        self.net = build_model(ModelConfig.from_dict(config.loopformer))
        self._tied_weights_keys = _aliases(self.net, "net.")
        config.tie_word_embeddings = bool(self._tied_weights_keys)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Weights come from a loopformer checkpoint; there is nothing to initialise."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """HF builds the model on the meta device and leaves buffers that are not saved
        (position and rotary tables, signal slot indices) uninitialised: they are
        recomputed here from a model built on the CPU."""
        model = super().from_pretrained(*args, **kwargs)
        with torch.device("cpu"):
            fresh = build_model(ModelConfig.from_dict(model.config.loopformer))
        tables = dict(fresh.named_buffers())
        with torch.no_grad():
            for name, buf in model.net.named_buffers():
                if name in tables and buf.shape == tables[name].shape:
                    buf.copy_(tables[name].to(buf.device))
        return model

    def depth(self, loops: int | None = None, level_rule: str | None = None, exit: str | None = None):
        """A context running every looped stack with these settings (the config's where None)."""
        cfg = self.config
        loops = loops if loops is not None else cfg.loops
        rule = level_rule or cfg.level_rule or "repeat_last"
        exit = exit if exit is not None else cfg.exit
        if loops is None and rule == "repeat_last" and not exit:
            return nullcontext()
        return run_depth(self.net, loops=loops, rule=rule, exit=ExitRule.parse(exit) if exit else None)


class LoopformerForCausalLM(LoopformerPreTrainedModel, GenerationMixin):
    main_input_name = "input_ids"

    def get_input_embeddings(self) -> nn.Module:
        return self.net.input.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.net.output

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # generate's DynamicCache keys by layer only; ours is made in prepare_inputs_for_generation

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, cache: LoopformerCache | None = None,
                labels: Tensor | None = None, use_cache: bool | None = None, loops: int | None = None,
                level_rule: str | None = None, exit: str | None = None, **kwargs) -> CausalLMOutputWithPast:
        if cache is None and use_cache:
            cache = LoopformerCache(self.net.new_cache())
        with self.depth(loops, level_rule, exit):
            logits = self.net(input_ids, padding_mask=_new_padding(attention_mask, input_ids.shape[1]),
                              cache=cache.kv if cache is not None else None)
        loss = None
        if labels is not None:
            loss = _lm_loss(logits, labels)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache)

    def prepare_inputs_for_generation(self, input_ids: Tensor, cache: LoopformerCache | None = None,
                                      attention_mask: Tensor | None = None, use_cache: bool = True, **kwargs) -> dict:
        if use_cache and cache is None:
            cache = LoopformerCache(self.net.new_cache())
        if cache is not None:
            input_ids = input_ids[:, cache.get_seq_length():]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "cache": cache, "use_cache": use_cache,
                **_depth_kwargs(kwargs)}


class LoopformerEncoder(nn.Module):
    """The encoder half, as ``generate`` asks for it (``get_encoder``). Holds the model
    without registering it, so its parameters are counted once."""

    def __init__(self, owner: "LoopformerForSeq2SeqLM") -> None:
        super().__init__()
        self._owner = [owner]

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, loops: int | None = None,
                level_rule: str | None = None, exit: str | None = None, **kwargs) -> BaseModelOutput:
        owner = self._owner[0]
        pad = attention_mask.eq(0) if attention_mask is not None else None
        with owner.depth(loops, level_rule, exit):
            memory, _ = owner.net.encode(input_ids, pad)
        return BaseModelOutput(last_hidden_state=memory)


class LoopformerForSeq2SeqLM(LoopformerPreTrainedModel, GenerationMixin):
    main_input_name = "input_ids"

    def __init__(self, config: LoopformerConfig) -> None:
        super().__init__(config)
        self._encoder = LoopformerEncoder(self)

    def get_encoder(self, modality=None) -> nn.Module:
        return self._encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.net.src_input.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.net.output

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, encoder_outputs=None, cache: LoopformerCache | None = None,
                labels: Tensor | None = None, use_cache: bool | None = None, loops: int | None = None,
                level_rule: str | None = None, exit: str | None = None, **kwargs) -> Seq2SeqLMOutput:
        if encoder_outputs is None:
            encoder_outputs = self._encoder(input_ids, attention_mask, loops, level_rule, exit)
        memory = encoder_outputs[0]
        if attention_mask is None:
            attention_mask = input_ids.ne(self.net.config.pad_id) if input_ids is not None else \
                torch.ones(memory.shape[:2], dtype=torch.long, device=memory.device)
        if decoder_input_ids is None:
            decoder_input_ids = self._shift_right(labels)
        if cache is None and use_cache:
            cache = LoopformerCache(self.net.new_cache())
        with self.depth(loops, level_rule, exit):
            logits = self.net.decode(decoder_input_ids, memory, attention_mask.eq(0),
                                     cache.kv if cache is not None else None)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100) \
            if labels is not None else None
        return Seq2SeqLMOutput(loss=loss, logits=logits, cache=cache, encoder_last_hidden_state=memory)

    def _shift_right(self, labels: Tensor) -> Tensor:
        start = torch.full_like(labels[:, :1], self.config.decoder_start_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted.eq(-100), self.config.pad_token_id)

    def prepare_inputs_for_generation(self, decoder_input_ids: Tensor, cache: LoopformerCache | None = None,
                                      attention_mask: Tensor | None = None, encoder_outputs=None,
                                      use_cache: bool = True, **kwargs) -> dict:
        if use_cache and cache is None:
            cache = LoopformerCache(self.net.new_cache())
        if cache is not None:
            decoder_input_ids = decoder_input_ids[:, cache.get_seq_length():]
        return {"decoder_input_ids": decoder_input_ids, "attention_mask": attention_mask,
                "encoder_outputs": encoder_outputs, "cache": cache, "use_cache": use_cache, **_depth_kwargs(kwargs)}


class LoopformerForImageClassification(LoopformerPreTrainedModel):
    main_input_name = "pixel_values"

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None, loops: int | None = None,
                level_rule: str | None = None, exit: str | None = None, **kwargs) -> ImageClassifierOutput:
        with self.depth(loops, level_rule, exit):
            logits = self.net(pixel_values)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


#: the HF class for each loopformer task model
HF_CLASSES = {"decoder": LoopformerForCausalLM, "seq2seq": LoopformerForSeq2SeqLM,
              "vit": LoopformerForImageClassification}


def _aliases(net: nn.Module, prefix: str) -> dict[str, str]:
    """{alias: first name} of parameters registered under more than one name (tied embeddings)."""
    first: dict[int, str] = {}
    tied = {}
    for name, param in net.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied[prefix + name] = prefix + first[id(param)]
        else:
            first[id(param)] = name
    return tied


def _new_padding(attention_mask: Tensor | None, new: int) -> Tensor | None:
    """Padding (True) of the ``new`` last positions, or None when there is none."""
    if attention_mask is None:
        return None
    pad = attention_mask[:, -new:].eq(0)
    return pad if bool(pad.any()) else None


def _lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """HF convention: ``labels`` are the inputs; position t predicts label t + 1."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)


def _depth_kwargs(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in ("loops", "level_rule", "exit") if kwargs.get(k) is not None}
