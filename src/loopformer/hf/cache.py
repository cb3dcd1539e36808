"""A ``transformers`` cache around loopformer's own (level, layer) cache.

A looped model writes one cache entry per (level, layer) and the cache carries the
padding of every past position; ``generate`` only needs to ask its length and to select
or reorder batch rows (beam search, expansion), so the HF object delegates those to
:class:`loopformer.layers.cache.KVCache` rather than holding per-layer tensors of its own.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

from ..layers.cache import KVCache


class LoopformerCache(Cache):
    def __init__(self, kv: KVCache) -> None:
        super().__init__(layers=[])
        self.kv = kv

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.kv.length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.kv.reorder(beam_idx, fixed=False)  # beams of one sentence share its encoder output

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.kv.reorder(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        batch = self.kv.padding_mask.shape[0] if self.kv.padding_mask is not None else self._batch()
        self.kv.reorder(torch.arange(batch, device=self._device()).repeat_interleave(repeats))

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a loopformer cache cannot be cropped (assisted decoding is not supported)")

    def _first(self) -> torch.Tensor:
        for key in self.kv.keys():
            entry = self.kv.get(key)
            if entry is not None:
                return entry[0]
        raise ValueError("the cache is empty")

    def _batch(self) -> int:
        return self._first().shape[0]

    def _device(self) -> torch.device:
        return self._first().device if len(self.kv) else torch.device("cpu")

    def __repr__(self) -> str:
        return f"LoopformerCache(length={self.kv.length}, entries={len(self.kv)})"
