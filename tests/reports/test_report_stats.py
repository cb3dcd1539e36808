"""The result pages' noise estimate (reports/stats.py)."""

import statistics

import pytest

from reports import stats


def test_pooled_sd_equals_the_sample_sd_of_one_row_and_weights_rows_by_their_seeds():
    assert stats.pooled_sd([[1.0, 2.0, 4.0]]) == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    # rows of one seed carry no noise information; two-seed rows each add one degree of freedom
    pooled = stats.pooled_sd([[1.0, 3.0], [10.0, 10.0], [5.0]])
    assert pooled == pytest.approx(((1 + 1) / 2) ** 0.5)
    assert stats.pooled_sd([[1.0], [2.0]]) is None


def test_a_lone_run_is_marked_as_one_seed_and_no_run_as_a_dash():
    assert stats.spread([36.0]) == "36.00 (1 seed)"
    assert stats.spread([36.0, 36.5]) == "36.25 ± 0.25"
    assert stats.spread([]) == "–"
