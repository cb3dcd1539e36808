"""Linear CKA with the unbiased HSIC estimator, accumulated over minibatches.

Following Nguyen, Raghu & Kornblith (2021): for each minibatch of ``n`` examples (here:
non-padding token positions), with Gram matrices ``K = X X^T`` and ``L = Y Y^T`` whose
diagonals are zeroed,

    HSIC_1(K, L) = [tr(K L) + 1^T K 1 * 1^T L 1 / ((n-1)(n-2)) - 2/(n-2) * 1^T K L 1] / (n (n-3)),

and CKA = mean HSIC_1(K, L) / sqrt(mean HSIC_1(K, K) * mean HSIC_1(L, L)), the means
running over *all* minibatches (not only the last one).

The Gram matrices are never formed: with linear kernels every term has a feature-space
form (``tr(K L) = ||X^T Y||_F^2`` less the diagonal products, ``K 1 = X (X^T 1)``), so memory
grows with n x features instead of n^2 per layer (an LM minibatch of 16,384 tokens would
need a 2 GB Gram matrix for each layer of both models).
"""

from __future__ import annotations

import torch
from torch import Tensor


class _Gram:
    """What every HSIC term needs of the zero-diagonal Gram matrix ``K = X X^T - diag``:
    the features, the removed diagonal and the row sums, without the n x n matrix."""

    def __init__(self, x: Tensor) -> None:
        self.x = x.double()
        self.diag = (self.x * self.x).sum(1)
        self.rows = self.x @ self.x.sum(0) - self.diag
        self.total = self.rows.sum()


def _hsic(a: _Gram, b: _Gram) -> Tensor:
    n = a.x.shape[0]
    trace = (a.x.T @ b.x).square().sum() - (a.diag * b.diag).sum()  # tr(K L) with zeroed diagonals
    middle = a.total * b.total / ((n - 1) * (n - 2))
    cross = 2.0 * (a.rows @ b.rows) / (n - 2)
    return (trace + middle - cross) / (n * (n - 3))


def hsic_unbiased(x: Tensor, y: Tensor) -> float:
    """HSIC_1 of linear kernels on ``x`` (n, p) and ``y`` (n, q); n must be at least 4."""
    return float(_hsic(_Gram(x), _Gram(y)))


class MinibatchCKA:
    """Accumulates CKA between every representation of model A and every one of model B."""

    def __init__(self, n_a: int, n_b: int) -> None:
        self.xy = torch.zeros(n_a, n_b, dtype=torch.float64)
        self.xx = torch.zeros(n_a, dtype=torch.float64)
        self.yy = torch.zeros(n_b, dtype=torch.float64)
        self.batches = 0

    def update(self, xs: list[Tensor], ys: list[Tensor]) -> None:
        """One minibatch: ``xs[i]`` (n, p_i) and ``ys[j]`` (n, q_j) on the same n examples."""
        n = xs[0].shape[0]
        if n < 4:
            return  # the unbiased estimator needs n >= 4
        if any(t.shape[0] != n for t in list(xs) + list(ys)):
            raise ValueError("every representation of a minibatch must cover the same examples")
        ga, gb = [_Gram(x) for x in xs], [_Gram(y) for y in ys]
        for i, a in enumerate(ga):
            self.xx[i] += _hsic(a, a)
            for j, b in enumerate(gb):
                self.xy[i, j] += _hsic(a, b)
        for j, b in enumerate(gb):
            self.yy[j] += _hsic(b, b)
        self.batches += 1

    def result(self) -> Tensor:
        """(n_a, n_b) CKA matrix."""
        if not self.batches:
            raise ValueError("no minibatch with at least 4 examples was accumulated")
        denom = (self.xx.clamp(min=0)[:, None] * self.yy.clamp(min=0)[None, :]).sqrt()
        return self.xy / denom.clamp(min=1e-30)


def cka(x: Tensor, y: Tensor) -> float:
    """Full-batch unbiased linear CKA of two representations of the same examples."""
    m = MinibatchCKA(1, 1)
    m.update([x], [y])
    return float(m.result()[0, 0])
