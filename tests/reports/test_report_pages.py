"""Every generated results page, rebuilt from the committed records, equals the committed
page byte for byte: a change to a renderer, a record or the page spec that would rewrite
a page shows up here instead of in the next unrelated page regeneration."""

import pytest

from reports import ablations, language, runner, speed, translation, vision
from reports.paths import RESULTS

TABLES = {
    "translation.md": translation.SPEC,
    "vision.md": vision.SPECS["plain"],
    "vision_augment.md": vision.SPECS["augment"],
    "language.md": language.SPEC,
    "ablations.md": ablations.SPEC,
}


@pytest.mark.parametrize("page", list(TABLES))
def test_a_table_page_rebuilt_from_the_committed_records_is_the_committed_page(page, tmp_path):
    spec = TABLES[page]
    assert spec.page == page
    # what `python -m reports <page> --page-only` does: the default budget and seeds
    written = runner.write_page(spec, spec.default_steps, runner.page_seeds(spec, [0, 1]), tmp_path)
    assert written == tmp_path / page
    assert written.read_bytes() == (RESULTS / page).read_bytes()


def test_the_figures_go_beside_the_page_being_written(tmp_path):
    for spec in (vision.SPECS["plain"], ablations.SPEC):
        runner.write_page(spec, spec.default_steps, runner.page_seeds(spec, [0, 1]), tmp_path)
    assert (tmp_path / "vision" / "confusion-ringformer.png").is_file()
    assert (tmp_path / "ablations" / "rank-sweep.png").is_file()


def test_the_speed_page_rebuilt_from_the_committed_measurements_is_the_committed_page(tmp_path):
    written = speed.write_page(tmp_path)
    assert written.read_bytes() == (RESULTS / "speed.md").read_bytes()


def test_every_record_of_a_table_belongs_to_one_of_its_rows():
    """Row names are the record names: renaming a row would orphan its records."""
    for spec in TABLES.values():
        for path in spec.results.glob("*.json"):
            assert path.stem.rsplit("-s", 1)[0] in spec.rows, path
