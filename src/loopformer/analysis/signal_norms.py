"""How large RingFormer's level signals are next to what they are added to.

A level signal only makes a level different if it is not negligible against the shared
projection it is added to (``W_Q x`` for Q, the normalised FFN input for F; with signals
placed before the projections, what is measured is their image ``W_Q s``). This module
measures, per stack, level and kind, the ratio of mean norms ``E||s_T(x)|| / E||base||``
over every position of the inputs given (padding included, so feed
batches of similar lengths). Signals start at exactly zero (``up`` is zero-initialised),
so a ratio near zero after training means the model learned to ignore them.

The measurement wraps the two entry points of each :class:`LevelSignals` on the instance
for the duration of a ``with`` block; the model's code paths are not changed and nothing
is left behind.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from ..layers.signals import LevelSignals


class SignalNorms:
    def __init__(self) -> None:
        self._sums: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def add(self, key: tuple[str, int, str], signal: Tensor, base: Tensor) -> None:
        s = signal.detach().float().reshape(-1, signal.shape[-1]).norm(dim=-1).sum().item()
        b = base.detach().float().reshape(-1, base.shape[-1]).norm(dim=-1).sum().item()
        entry = self._sums[key]
        entry[0] += s
        entry[1] += b

    def table(self) -> list[dict]:
        """One row per (module, level, kind): the ratio of mean norms."""
        rows = []
        for (module, level, kind), (s, b) in sorted(self._sums.items()):
            rows.append({"module": module, "level": level, "kind": kind, "ratio": s / b if b > 0 else float("nan")})
        return rows


@contextmanager
def record_signal_norms(model: torch.nn.Module) -> Iterator[SignalNorms]:
    norms = SignalNorms()
    patched: list[LevelSignals] = []
    for name, mod in model.named_modules():
        if not isinstance(mod, LevelSignals) or mod.mode != "dynamic":
            continue
        split, add_ffn = mod.split_qkv, mod.add_ffn

        def split_qkv(proj, level, x, weight=None, _mod=mod, _orig=split, _name=name):
            out = _orig(proj, level=level, x=x, weight=weight)
            # The signal on its own (added to zeros), not ``out - proj``: a signal below the
            # float resolution of the projection would otherwise read as exactly zero.
            sig = _orig(torch.zeros_like(proj), level=level, x=x, weight=weight)
            base = proj.reshape(*proj.shape[:-1], len(_mod.layout), _mod.dim)
            for kind in _mod.qkv_kinds:  # what the signal adds, in the projection's output space
                slot = _mod.layout.index(kind)
                norms.add((_name, level, kind), sig[slot], base[..., slot, :])
            return out

        def ffn(base, level, x, _mod=mod, _orig=add_ffn, _name=name):
            norms.add((_name, level, "ffn"), _orig(torch.zeros_like(base), level, x), base)
            return _orig(base, level, x)

        mod.split_qkv, mod.add_ffn = split_qkv, ffn
        patched.append(mod)
    try:
        yield norms
    finally:
        for mod in patched:  # drop the instance attributes: the class methods show through again
            del mod.split_qkv
            del mod.add_ffn
