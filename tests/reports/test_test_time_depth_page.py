"""The test-time depth page: rebuilt from the committed records it is the committed page,
and its verdicts and exit summaries follow the figures of synthetic records."""

import json

from reports import test_time_depth_measure
from reports import test_time_depth_page as page
from reports.paths import RESULTS


def test_the_committed_page_is_rebuilt_from_the_committed_records(tmp_path):
    (tmp_path / "test_time_depth").mkdir()
    written = page.write_page(RESULTS / "test_time_depth", tmp_path)
    assert written.read_text() == (RESULTS / "test_time_depth.md").read_text()


def _record(arch, mode, seed, losses, exits=()):
    sweep = {str(k): v for k, v in zip((1, 2, 3, 4, 5, 6, 8, 9, 12), losses)}
    return {"part": "lm", "arch": arch, "mode": mode, "seed": seed, "trained_loops": 3, "steps": 10,
            "sweep": sweep, "rules": {"6": {r: sweep["6"] for r in test_time_depth_measure.RULES}},
            "exits": list(exits)}


def test_verdicts_judge_2x_and_4x_against_seed_noise(tmp_path):
    flat = [2.0, 1.8, 1.6, 1.6, 1.6, 1.6, 1.6, 1.6, 1.6]
    worse = [2.0, 1.8, 1.6, 1.7, 1.8, 1.9, 2.1, 2.2, 2.4]
    recs = [_record("looped", "random", s, [v + 0.01 * s for v in flat]) for s in (0, 1)]
    recs += [_record("looped", "fixed", s, [v + 0.01 * s for v in worse]) for s in (0, 1)]
    text = page.verdicts(recs, "lm")
    assert "looped, random training (2 seeds): worse by +0.000 at 2×, +0.000 at 4× → no worse" in text
    assert "looped, fixed training (2 seeds): worse by +0.300 at 2×, +0.800 at 4× → degrades beyond noise" in text


def test_the_exit_summary_picks_the_fewest_loops_within_the_target():
    exits = [
        {"loops": 3, "criterion": None, "threshold": 0.0, "val_loss": 1.600, "mean_loops": 3.0,
         "gen_tokens_per_s_b1": 100.0},
        {"loops": 3, "criterion": "kl", "threshold": 0.01, "val_loss": 1.605, "mean_loops": 2.0,
         "gen_tokens_per_s_b1": 140.0},
        {"loops": 3, "criterion": "kl", "threshold": 0.1, "val_loss": 1.700, "mean_loops": 1.2,
         "gen_tokens_per_s_b1": 200.0},
    ]
    table = page.exit_table([_record("looped", "fixed", 0, [1.6] * 9, exits)], "lm")
    assert "| kl:0.01 | 2.00 | 33% | 1.605 | 140 |" in table
    assert json.dumps(exits)  # records stay plain JSON
