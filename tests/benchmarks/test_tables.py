"""The result pages' noise estimate (benchmarks/tables.py)."""

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import tables  # noqa: E402


def test_pooled_sd_equals_the_sample_sd_of_one_row_and_weights_rows_by_their_seeds():
    assert tables.pooled_sd([[1.0, 2.0, 4.0]]) == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    # rows of one seed carry no noise information; two-seed rows each add one degree of freedom
    pooled = tables.pooled_sd([[1.0, 3.0], [10.0, 10.0], [5.0]])
    assert pooled == pytest.approx(((1 + 1) / 2) ** 0.5)
    assert tables.pooled_sd([[1.0], [2.0]]) is None
