"""How a looped LM carries the token state from one core iteration to the next.

With ``e(t)`` the core's token-level output at iteration ``t`` and ``h(0)`` the prelude
output:

- ``none``: ``h(t+1) = e(t)`` (a plain loop);
- ``anchor``: ``h(t+1) = e(t) + h(0)``: every iteration is re-anchored to the prelude;
- ``mesh``: a buffer of slots per token (slot 0 = token embeddings, the rest 0); per
  iteration a write router and a read router (``Linear(d, slots)`` + softmax over slots,
  own weights per iteration, reading ``e(t)``) do ``m_b += w_write,b * e(t)`` and
  ``h(t+1) = sum_b w_read,b * m_b``. Routers start at zero, i.e. uniform weights.

All three act on each token separately, so token-by-token decoding can run them on the
new positions only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers.block import SharedInputs


class StateUpdate(nn.Module):
    def begin(self, h0: Tensor, shared: SharedInputs) -> dict:
        return {}

    def update(self, t: int, e: Tensor, memo: dict) -> Tensor:
        return e


class AnchorUpdate(StateUpdate):
    def begin(self, h0: Tensor, shared: SharedInputs) -> dict:
        return {"h0": h0}

    def update(self, t: int, e: Tensor, memo: dict) -> Tensor:
        return e + memo["h0"]


class MeshUpdate(StateUpdate):
    def __init__(self, n_loops: int, dim: int, slots: int) -> None:
        super().__init__()
        self.slots = slots
        self.write = nn.ModuleList(nn.Linear(dim, slots) for _ in range(n_loops))
        self.read = nn.ModuleList(nn.Linear(dim, slots) for _ in range(n_loops))
        for lin in list(self.write) + list(self.read):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def begin(self, h0: Tensor, shared: SharedInputs) -> dict:
        emb = shared.token_embeddings if shared.token_embeddings is not None else h0
        memory = torch.zeros(*h0.shape[:-1], self.slots, h0.shape[-1], dtype=h0.dtype, device=h0.device)
        memory[..., 0, :] = emb
        return {"memory": memory}

    def update(self, t: int, e: Tensor, memo: dict) -> Tensor:
        w_write = self.write[t](e).softmax(-1).to(e.dtype)  # (..., S)
        w_read = self.read[t](e).softmax(-1).to(e.dtype)
        memory = memo["memory"] + w_write.unsqueeze(-1) * e.unsqueeze(-2)
        memo["memory"] = memory
        return torch.einsum("...s,...sd->...d", w_read, memory)


def build_state_update(kind: str, n_loops: int, dim: int, slots: int) -> StateUpdate | None:
    if kind == "anchor":
        return AnchorUpdate()
    if kind == "mesh":
        return MeshUpdate(n_loops, dim, slots)
    return None
