"""Batching by token count with length bucketing, deterministic per (seed, epoch).

Sentences of similar length go together (little padding) and every batch holds at most
``max_tokens`` padded tokens on its longer side. The plan of an epoch is a pure function
of (lengths, seed, epoch), so a resumed run can rebuild it and skip to its position.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def token_batches(
    src_lens: Sequence[int],
    tgt_lens: Sequence[int] | None,
    max_tokens: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> list[list[int]]:
    """Index lists, each a batch whose padded size (rows x longest side) <= ``max_tokens``."""
    src = np.asarray(src_lens, dtype=np.int64)
    tgt = np.asarray(tgt_lens, dtype=np.int64) if tgt_lens is not None else src
    longest = np.maximum(src, tgt)
    rng = np.random.default_rng([seed, epoch])
    noise = rng.random(len(src)) if shuffle else np.zeros(len(src))
    order = np.lexsort((noise, tgt, longest))  # sort by length, random among equals
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        w = max(width, int(longest[i]))
        if current and w * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, w = [], int(longest[i])
        current.append(int(i))
        width = w
    if current:
        batches.append(current)
    if shuffle:
        perm = rng.permutation(len(batches))
        batches = [batches[j] for j in perm]
    return batches


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> torch.Tensor:
    width = max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), max(width, 1)), pad_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        if len(s):
            out[row, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out
