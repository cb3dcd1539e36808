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
        placement: str = "after",
    ) -> None:
        super().__init__()
        self.placement = placement  # "before": the caller passes the projection weight
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
        """(..., d) -> (..., n_kinds, d): the signals alone (for inspection and tests)."""
        n = len(self.qkv_kinds)
        zeros = x.new_zeros(*x.shape[:-1], n * self.dim)
        return self._add(zeros, level, x).transpose(0, 1).reshape(*x.shape[:-1], n, self.dim)

    def _add(self, proj: Tensor, level: int, x: Tensor) -> Tensor:
        """``proj`` (..., n*d) laid out by kind, plus the signals: returned as (n, M, d).

        The up-projection and the addition happen in one ``baddbmm``; the down-projection
        of all kinds is one matmul."""
        n = len(self.qkv_kinds)
        base = proj.reshape(-1, n, self.dim).transpose(0, 1)  # (n, M, d) view
        if self.mode == "static":
            return base + self.qkv_static[level].to(proj.dtype)[:, None, :]
        down = self.qkv_down[level].reshape(n * self.rank, self.dim)
        codes = nn.functional.linear(x, down.to(x.dtype)).reshape(-1, n, self.rank).transpose(0, 1)
        return torch.baddbmm(base, codes, self.qkv_up[level].to(codes.dtype))

    def ffn(self, level: int, x: Tensor) -> Tensor:
        """The FFN signal s_F(x) alone (for inspection and tests)."""
        return self.add_ffn(torch.zeros_like(x), level, x)

    def add_ffn(self, base: Tensor, level: int, x: Tensor) -> Tensor:
        """``base + s_F(x)``, the up-projection fused with the addition (``addmm``)."""
        if self.mode == "static":
            return base + self.ffn_static[level].to(base.dtype)
        codes = nn.functional.linear(x, self.ffn_down[level].to(x.dtype))
        flat = torch.addmm(base.reshape(-1, self.dim), codes.reshape(-1, self.rank), self.ffn_up[level].to(codes.dtype))
        return flat.view(base.shape)

    def split_qkv(self, proj: Tensor, level: int, x: Tensor, weight: Tensor | None = None) -> tuple[Tensor, ...]:
        """Add the signals to a fused projection laid out as ``self.layout`` and split it
        into one (..., d) tensor per slot of the layout.

        With ``weight`` (the fused projection's weight, placement "before") the signals
        enter before the projection: ``W (x + s) = W x + W s``, so ``W s`` is added."""
        lead = proj.shape[:-1]
        if self.covers_layout and weight is None:
            out = self._add(proj, level, x)
            return tuple(o.view(*lead, self.dim) for o in out.unbind(0))
        shaped = proj.reshape(*lead, len(self.layout), self.dim)
        sig = self.qkv(level, x)
        if weight is not None:
            w = weight.view(len(self.layout), self.dim, self.dim)[self.qkv_slots]  # (kinds, out, in)
            sig = torch.einsum("...ni,noi->...no", sig, w.to(sig.dtype))
        shaped = shaped.index_add(-2, self.qkv_slots, sig.to(shaped.dtype))
        return tuple(shaped.unbind(-2))
