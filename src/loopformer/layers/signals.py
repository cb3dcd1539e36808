"""RingFormer's level signals: input-dependent low-rank additive terms per level.

For kind T at level i the signal is ``(x @ down[i].T) @ up[i]``: always the factored
form (2·r·d per token), never the multiplied-out d×d matrix (d² per token). The Q, K
and V codes come out of one matmul against the stacked down-projections. ``up`` starts
at zero, so every signal is exactly zero at initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LevelSignals(nn.Module):
    """Signals of the kinds in ``qkv_kinds`` (a subset of q, k, v) and optionally the FFN.

    ``mode="static"`` replaces the input-dependent term by a learned per-level vector
    (the paper's ablation of input dependence).
    """

    def __init__(
        self,
        n_levels: int,
        dim: int,
        rank: int,
        qkv_kinds: tuple[str, ...] = ("q", "k", "v"),
        ffn: bool = True,
        layout: str = "qkv",
        mode: str = "dynamic",
        init_std: float = 1e-6,
    ) -> None:
        super().__init__()
        self.n_levels = n_levels
        self.dim = dim
        self.rank = rank
        self.qkv_kinds = tuple(qkv_kinds)
        self.layout = layout
        self.mode = mode
        self.has_ffn = ffn
        n = len(self.qkv_kinds)
        # Which of the q/k/v slots each stored kind feeds.
        self.register_buffer(
            "qkv_slots", torch.tensor([layout.index(k) for k in self.qkv_kinds], dtype=torch.long),
            persistent=False,
        )
        if mode == "static":
            self.qkv_static = nn.Parameter(torch.zeros(n_levels, n, dim)) if n else None
            self.ffn_static = nn.Parameter(torch.zeros(n_levels, dim)) if ffn else None
        else:
            if n:
                self.qkv_down = nn.Parameter(torch.randn(n_levels, n, rank, dim) * init_std)
                self.qkv_up = nn.Parameter(torch.zeros(n_levels, n, rank, dim))
            if ffn:
                self.ffn_down = nn.Parameter(torch.randn(n_levels, rank, dim) * init_std)
                self.ffn_up = nn.Parameter(torch.zeros(n_levels, rank, dim))

    @property
    def has_qkv(self) -> bool:
        return bool(self.qkv_kinds)

    @property
    def covers_layout(self) -> bool:
        return "".join(self.qkv_kinds) == self.layout

    def qkv(self, level: int, x: Tensor) -> Tensor:
        """(..., d) -> (..., n_kinds, d): the signals to add to the selected projections."""
        n = len(self.qkv_kinds)
        if self.mode == "static":
            return self.qkv_static[level].to(x.dtype).expand(*x.shape[:-1], n, self.dim)
        down = self.qkv_down[level].reshape(n * self.rank, self.dim)
        codes = nn.functional.linear(x, down.to(x.dtype))  # one matmul for all kinds
        lead = codes.shape[:-1]
        codes = codes.reshape(-1, n, self.rank).transpose(0, 1)  # (n, M, r)
        out = torch.bmm(codes, self.qkv_up[level].to(codes.dtype))  # (n, M, d)
        return out.transpose(0, 1).reshape(*lead, n, self.dim)

    def ffn(self, level: int, x: Tensor) -> Tensor:
        if self.mode == "static":
            return self.ffn_static[level].to(x.dtype).expand_as(x)
        codes = nn.functional.linear(x, self.ffn_down[level].to(x.dtype))
        return codes @ self.ffn_up[level].to(codes.dtype)

    def add_to(self, proj: Tensor, level: int, x: Tensor) -> Tensor:
        """Add signals computed from ``x`` to a fused projection output laid out as
        ``self.layout`` (e.g. (..., 3d) for "qkv")."""
        sig = self.qkv(level, x)
        if self.covers_layout:
            return proj + sig.reshape(proj.shape)
        qkv = proj
        shaped = qkv.reshape(*qkv.shape[:-1], len(self.layout), self.dim)
        return shaped.index_add(-2, self.qkv_slots, sig).reshape(qkv.shape)
