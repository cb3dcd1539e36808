"""Position-wise feed-forward network with exact (erf) GELU."""

from __future__ import annotations

from torch import Tensor, nn

from .dropout import Dropout


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool, dropout: float, init_std: float | None = None,
                 xavier: bool = False) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.act = nn.GELU()
        self.dropout = Dropout(dropout)
        for lin in (self.up, self.down):
            if xavier:  # the official ViTs' MLP: Xavier-uniform weights, near-zero biases
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.normal_(lin.bias, std=1e-6)
            elif init_std is not None:  # the translation models' FFN
                nn.init.normal_(lin.weight, std=init_std)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.dropout(self.act(self.up(x))))
