"""CKA estimator properties, and attention distances on hand-built maps."""

import math

import pytest
import torch

from loopformer.analysis.attention import mean_attention_distance, patch_distances, token_attention_distance
from loopformer.analysis.cka import MinibatchCKA, cka, hsic_unbiased


@pytest.fixture
def reps():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 24, generator=g, dtype=torch.float64)
    y = x @ torch.randn(24, 16, generator=g, dtype=torch.float64) + 0.5 * torch.randn(400, 16, generator=g,
                                                                                        dtype=torch.float64)
    return x, y


def test_cka_of_a_representation_with_itself_is_one(reps):
    x, _ = reps
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_maps_and_isotropic_scaling(reps):
    x, y = reps
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))
    base = cka(x, y)
    assert cka(x, y @ q) == pytest.approx(base, abs=1e-10)
    assert cka(3.7 * x, y) == pytest.approx(base, abs=1e-10)


def test_not_invariant_to_arbitrary_linear_maps(reps):
    x, y = reps
    a = torch.diag(torch.logspace(-2, 2, 16, dtype=torch.float64))
    assert abs(cka(x, y @ a) - cka(x, y)) > 0.01


def test_hsic_unbiased_matches_the_formula_written_out(reps):
    x, y = reps
    x, y = x[:30], y[:30]
    n = 30
    k, l_ = x @ x.T, y @ y.T
    k.fill_diagonal_(0)
    l_.fill_diagonal_(0)
    one = torch.ones(n, 1, dtype=torch.float64)
    expected = (torch.trace(k @ l_) + (one.T @ k @ one) * (one.T @ l_ @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * (one.T @ k @ l_ @ one)) / (n * (n - 3))
    assert hsic_unbiased(x, y) == pytest.approx(float(expected), rel=1e-10)


def test_minibatch_estimate_converges_to_the_full_batch_value(reps):
    x, y = reps
    full = cka(x, y)
    errors = []
    for epochs in (1, 20):
        m = MinibatchCKA(1, 1)
        g = torch.Generator().manual_seed(1)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g)
            for chunk in order.split(50):
                m.update([x[chunk]], [y[chunk]])
        errors.append(abs(float(m.result()[0, 0]) - full))
    assert errors[1] < 0.01
    assert m.batches == 20 * 8


def test_all_minibatches_count_not_only_the_last(reps):
    x, y = reps
    m = MinibatchCKA(1, 1)
    m.update([x[:200]], [y[:200]])
    m.update([x[200:]], [-x[200:, :16] * 0 + torch.randn(200, 16, dtype=torch.float64)])
    assert 0.2 < float(m.result()[0, 0]) < cka(x[:200], y[:200])


def test_padding_rows_are_excluded_by_the_caller_mask(reps):
    from loopformer.analysis.compare import token_rows

    x, y = reps
    states = x[:60].reshape(3, 20, 24).clone()
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 15:] = False
    polluted = states.clone()
    polluted[1, 15:] = 1e6
    assert torch.equal(token_rows(polluted, mask), token_rows(states, mask))
    assert token_rows(states, mask).shape == (55, 24)


def test_mad_of_hand_built_maps():
    grid, patch = 3, 4
    p = grid * grid
    # every patch attends fully to patch 0 (top-left): distance = patch * |(r, c) - (0, 0)|
    w = torch.zeros(1, 2, 1 + p, 1 + p)
    w[:, 0, 1:, 1] = 1.0
    # head 1 attends to itself: distance 0
    w[:, 1, 1:, 1:] = torch.eye(p)
    mad = mean_attention_distance(w, grid, patch)
    expected = sum(patch * math.hypot(r, c) for r in range(grid) for c in range(grid)) / p
    assert mad[0].item() == pytest.approx(expected)
    assert mad[1].item() == 0.0
    assert patch_distances(2, 7)[0, 3].item() == pytest.approx(7 * math.sqrt(2))


def test_token_distance_of_hand_built_maps():
    t = 5
    w = torch.zeros(1, 1, t, t)
    w[0, 0, :, 0] = 1.0  # everyone attends to the first token
    assert token_attention_distance(w)[0].item() == pytest.approx(sum(range(t)) / t)
    assert token_attention_distance(w, unit=4.0)[0].item() == pytest.approx(4 * sum(range(t)) / t)
    mask = torch.tensor([[True, True, False, False, False]])
    assert token_attention_distance(w, mask)[0].item() == pytest.approx(0.5)
    # one query at position 9 of 10 keys (incremental decoding layout)
    q = torch.zeros(1, 1, 1, 10)
    q[..., 3] = 1.0
    assert token_attention_distance(q)[0].item() == 6.0


def test_cka_memory_grows_with_features_not_with_the_square_of_the_rows():
    # 20,000 rows: one n x n float64 Gram matrix would be 3.2 GB
    import subprocess
    import sys

    # VmHWM is this process's own peak (getrusage's ru_maxrss would count the pytest parent)
    code = ("import torch\n"
            "from loopformer.analysis.cka import cka\n"
            "g = torch.Generator().manual_seed(3)\n"
            "x, y = torch.randn(20000, 16, generator=g), torch.randn(20000, 16, generator=g)\n"
            "print(cka(x, y), open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    value, peak_kib = out.stdout.split()
    assert abs(float(value)) < 0.05 and int(peak_kib) < 800_000
