"""The translation page's depth reading: computed from the run records, honest about noise."""

from reports import translation


def _runs(name: str, values: list[float]) -> list[dict]:
    return [{"name": name, "seed": i, "test2016": v} for i, v in enumerate(values)]


def _records(ring6: list[float]) -> list[dict]:
    return (_runs("ringformer", [36.0, 36.2]) + _runs("looped", [36.0, 36.2]) + _runs("vanilla-6x6", [37.0, 37.2])
            + _runs("looped-6x6", [36.0, 36.2]) + _runs("ringformer-6x6", ring6))


def test_a_margin_far_beyond_the_seed_noise_is_called_growth():
    text = translation.depth_reading(_records([38.0, 38.2]))
    assert "grows by +2.00" in text and "does not measurably" not in text
    assert "RingFormer minus vanilla is +1.00" in text


def test_a_margin_within_the_seed_noise_is_not_called_growth():
    text = translation.depth_reading(_records([36.1, 36.3]))
    assert "does not measurably grow" in text


def test_missing_runs_are_named_and_nothing_is_concluded():
    records = _runs("ringformer", [36.0, 36.2]) + _runs("looped", [36.0, 36.4]) + _runs("ringformer-6x6", [37.0])
    text = translation.depth_reading(records)
    assert "Runs still missing for two seeds of vanilla-6x6, looped-6x6, ringformer-6x6" in text
    assert "ringformer-6x6 (1 seed)" in text
    assert "grow" not in text.split("Measured:")[-1]
