"""Position-wise feed-forward network with exact (erf) GELU."""

from __future__ import annotations

from torch import Tensor, nn

from .dropout import Dropout


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool, dropout: float, init_std: float | None = None) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.act = nn.GELU()
        self.dropout = Dropout(dropout)
        if init_std is not None:
            for lin in (self.up, self.down):
                nn.init.normal_(lin.weight, std=init_std)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.dropout(self.act(self.up(x))))
