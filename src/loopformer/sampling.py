"""Sampling from causal LMs with their KV cache (every model, SpiralFormer included).

The prompt is run once through the cache, then one token per step; the context never
exceeds the model's ``max_len`` (generation stops there rather than sliding a window, so
every token is conditioned on the whole text it follows).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .device import module_device
from .packing import packs_linears


@packs_linears
@torch.no_grad()
def sample(
    model, prompt: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
    generator: torch.Generator | None = None, padding_mask: Tensor | None = None,
) -> Tensor:
    """Continue each row of ``prompt`` (B, P) by up to ``max_new_tokens``; returns (B, P + n).

    ``temperature = 0`` is greedy. Prompts of different lengths are left-padded with
    ``padding_mask`` (B, P), True = padding (rotary positions make a padded row continue
    exactly as it would alone; a SpiralFormer refuses padding)."""
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError("prompt must be a (batch, length >= 1) tensor of token ids")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    limit = model.config.max_len
    if prompt.shape[1] > limit:
        raise ValueError(f"prompt of {prompt.shape[1]} tokens exceeds the model's context of {limit}")
    was_training = model.training
    model.eval()
    prompt = prompt.to(module_device(model))
    try:
        cache = model.new_cache()
        pad = padding_mask.to(prompt.device) if padding_mask is not None else None
        logits = model(prompt, padding_mask=pad, cache=cache)[:, -1]
        out = [prompt]
        for step in range(min(max_new_tokens, limit - prompt.shape[1])):
            nxt = _pick(logits.float(), temperature, top_k, generator)
            out.append(nxt)
            if step + 1 < max_new_tokens and cache.length < limit:
                logits = model(nxt, cache=cache)[:, -1]
        return torch.cat(out, dim=1)
    finally:
        model.train(was_training)


def _pick(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if generator is not None and generator.device != probs.device:  # a CPU generator drives GPU sampling
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)
