"""Translation models as CTranslate2 Transformer models.

A looped model is first unrolled (:func:`loopformer.models.unroll.unroll`): every loop
application becomes a layer with its level's norms, and RingFormer's level signals are
folded into that layer's projections, so CTranslate2 runs an ordinary post-norm
Transformer of ``loops x core`` layers. The mapping is exact: positions are written as
the model's own sinusoid table, LayerNorm epsilon is the model's, the activation is
GELU (erf) and no embedding scaling is applied. The source side must end with
``<eos>`` (as loopformer's tokenizer gives it); ``<bos>`` starts the target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.unroll import unroll


def _np(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def check_expressible(model: nn.Module) -> None:
    cfg = model.config
    if cfg.task != "seq2seq":
        raise ConfigError("CTranslate2 export takes translation (encoder-decoder) checkpoints")
    if cfg.norm_style != "post" or cfg.final_norm or cfg.positional != "sinusoidal" or cfg.tie_embeddings \
            or cfg.bias or cfg.one_wide_ffn or cfg.parallel_block:
        raise ConfigError("CTranslate2 export covers post-norm models with sinusoidal positions, no final norm, "
                          "bias-free layers and untied embeddings (the translation presets)")


def build_spec(model: nn.Module, vocab: list[str], target_vocab: list[str]):
    """The CTranslate2 ``TransformerSpec`` of a translation model (looped or not)."""
    from ctranslate2.specs import common_spec, transformer_spec

    check_expressible(model)
    flat = unroll(model)  # one layer per application, each with its own norms
    cfg = flat.config
    eps = {m.eps for m in flat.modules() if isinstance(m, nn.LayerNorm)}
    if len(eps) > 1:
        raise ConfigError(f"CTranslate2 has one LayerNorm epsilon per model; this one uses {sorted(eps)}")
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.n_layers, cfg.n_dec_layers or cfg.n_layers), cfg.n_heads, pre_norm=False,
        activation=common_spec.Activation.GELU)
    spec.config.layer_norm_epsilon = eps.pop()
    spec.config.bos_token, spec.config.eos_token, spec.config.unk_token = "<bos>", "<eos>", "<unk>"
    spec.config.decoder_start_token = "<bos>"
    _inputs(spec.encoder, flat.src_input)
    _inputs(spec.decoder, flat.tgt_input)
    for layer_spec, layer in zip(spec.encoder.layer, flat.encoder.prelude):
        _layer(layer_spec, layer)
    for layer_spec, layer in zip(spec.decoder.layer, flat.decoder.prelude):
        _layer(layer_spec, layer)
    _linear(spec.decoder.projection, flat.output)
    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(target_vocab)
    return spec


def _inputs(spec, text_input) -> None:
    spec.scale_embeddings = False
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings  # encoder: a list
    embeddings.weight = _np(text_input.embed.weight)
    spec.position_encodings.encodings = _np(text_input.positions.table)


def _layer(spec, layer) -> None:
    norms = list(layer.norms)
    _linear(spec.self_attention.linear[0], layer.self_attn.qkv_proj)
    _linear(spec.self_attention.linear[1], layer.self_attn.out_proj)
    _norm(spec.self_attention.layer_norm, norms[0])
    if layer.cross_attn is not None:
        _linear(spec.attention.linear[0], layer.cross_attn.q_proj)
        _linear(spec.attention.linear[1], layer.cross_attn.kv_proj)
        _linear(spec.attention.linear[2], layer.cross_attn.out_proj)
        _norm(spec.attention.layer_norm, norms[1])
    _linear(spec.ffn.linear_0, layer.ffn.up)
    _linear(spec.ffn.linear_1, layer.ffn.down)
    _norm(spec.ffn.layer_norm, norms[-1])


def _linear(spec, linear: nn.Linear) -> None:
    spec.weight = _np(linear.weight)
    if linear.bias is not None:
        spec.bias = _np(linear.bias)


def _norm(spec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _np(norm.weight), _np(norm.bias)


def export_ctranslate2(model: nn.Module, task, out: str | Path, quantization: str | None = None) -> Path:
    """Write the CTranslate2 model folder of a translation model and its task."""
    spec = build_spec(model, vocabulary(task.tok), vocabulary(task.tgt_tok))
    spec.validate()
    spec.optimize(quantization=quantization)
    Path(out).mkdir(parents=True, exist_ok=True)
    spec.save(str(out))
    return Path(out)


def vocabulary(tok) -> list[str]:
    """Token strings by id (CTranslate2 reads and writes tokens, not ids)."""
    backend = tok.backend
    return [backend.id_to_token(i) for i in range(backend.get_vocab_size())]
