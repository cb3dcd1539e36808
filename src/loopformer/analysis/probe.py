"""Linear probe: can a linear classifier tell model A's hidden states from model B's?

For each level i, the outputs of A's i-th and B's i-th layer application on the same
inputs are pooled (A labelled 0, B labelled 1), a logistic regression is fitted on the
tokens of half the batches and scored on the other half (held-out sentences). About 50%
means the two representations are linearly indistinguishable at that depth.

Two independently trained networks use unrelated coordinate systems, so a linear probe
usually separates them even when they compute the same function: always read a probe
against a control pair (for instance two seeds of the same model), never alone.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from ..errors import ConfigError
from .compare import key_label


def fit_logistic(x: Tensor, y: Tensor, l2: float = 1e-3, steps: int = 100) -> tuple[Tensor, Tensor]:
    """L2-regularised logistic regression by L-BFGS on standardised inputs; returns (w, b)."""
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def probe_accuracy(a_train: Tensor, b_train: Tensor, a_test: Tensor, b_test: Tensor, l2: float = 1e-3) -> float:
    """Held-out accuracy (%) of a linear classifier separating A's rows from B's."""
    x = torch.cat([a_train, b_train]).double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    y = torch.cat([torch.zeros(len(a_train)), torch.ones(len(b_train))]).double()
    w, b = fit_logistic((x - mean) / std, y, l2)
    xt = (torch.cat([a_test, b_test]).double() - mean) / std
    yt = torch.cat([torch.zeros(len(a_test)), torch.ones(len(b_test))]).double()
    pred = ((xt @ w + b) > 0).double()
    return float((pred == yt).double().mean()) * 100


def probe_pairs(pairs: Iterable[tuple[int, str, list, list]], l2: float = 1e-3) -> dict[str, Any]:
    """Per stack: held-out probe accuracy for each level i (A's i-th vs B's i-th
    application), from the batches of :func:`loopformer.analysis.compare.paired_states`:
    even batches fit the probe, odd ones test it."""
    rows: dict[str, dict[str, Any]] = {}
    for index, stack, xs, ys in pairs:
        n = min(len(xs), len(ys))
        entry = rows.setdefault(stack, {"labels": [(key_label(xs[i][0]), key_label(ys[i][0])) for i in range(n)],
                                        "parts": [([], [], [], []) for _ in range(n)]})
        half = index % 2
        for i in range(n):
            entry["parts"][i][half].append(xs[i][1])
            entry["parts"][i][2 + half].append(ys[i][1])
    out = {stack: _probe_stack(entry, l2) for stack, entry in rows.items()}
    if not out:
        raise ConfigError("no comparable layer outputs were captured")
    return out


def _probe_stack(entry: dict[str, Any], l2: float) -> dict[str, Any]:
    accs, counts = [], []
    for a_tr, a_te, b_tr, b_te in entry["parts"]:
        if not a_te:
            raise ConfigError("the probe needs at least two batches (one to fit, one to test)")
        a_tr, a_te, b_tr, b_te = (torch.cat(p) for p in (a_tr, a_te, b_tr, b_te))
        accs.append(probe_accuracy(a_tr, b_tr, a_te, b_te, l2))
        counts.append([len(a_tr) + len(b_tr), len(a_te) + len(b_te)])
    return {"pairs": [list(p) for p in entry["labels"]], "accuracy": accs, "rows": counts}
