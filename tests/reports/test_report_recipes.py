"""The tables' training recipes live in configs/tables/; the models they train must get
exactly the settings the recipes gave when they were lists in the table scripts (the
records on the pages were trained with those), and a run passes its recipe file to the
library the way ``loopformer train --config`` does."""

import pytest

from loopformer.tasks import language_run, translation_run, vision_run
from loopformer.tasks.settings import read_settings
from reports import ablations, language, runner, training, translation, vision

# the recipes as the table scripts held them before they moved to configs/tables/
OLD_TRANSLATION = ["lr=1e-3", "warmup_steps=150", "schedule=inverse_sqrt", "label_smoothing=0.1",
                   "batch_tokens=2048", "grad_clip=1.0", "eval_every=400", "val_bleu_sentences=300", "progress=false"]
_OLD_VISION = ["lr=1.5e-3", "warmup_steps=200", "schedule=cosine", "weight_decay=0.05", "beta2=0.999",
               "label_smoothing=0.1", "grad_clip=1.0", "batch_size=256", "eval_every=500", "progress=false"]
OLD_VISION = {"plain": _OLD_VISION + ["crop_padding=0", "hflip=false"],
              "augment": _OLD_VISION + ["crop_padding=2", "hflip=true"]}
OLD_LANGUAGE = ["lr=2e-3", "min_lr_ratio=0.1", "warmup_steps=100", "schedule=cosine", "beta2=0.99",
                "weight_decay=0.1", "grad_clip=1.0", "label_smoothing=0", "dropout=0", "context=256", "batch_size=8",
                "eval_every=400", "progress=false"]


def _resolved(settings, pairs, config=None, defaults=None):
    return read_settings(pairs, str(config) if config else None, settings, defaults=defaults)


def test_the_translation_recipe_read_from_configs_equals_the_old_list():
    assert _resolved(translation_run.SETTINGS, [], translation.RECIPE.file) == \
        _resolved(translation_run.SETTINGS, OLD_TRANSLATION)


@pytest.mark.parametrize("name", ["plain", "augment"])
def test_the_vision_recipes_read_from_configs_equal_the_old_lists(name):
    assert _resolved(vision_run.SETTINGS, [], vision.recipe(name).file) == \
        _resolved(vision_run.SETTINGS, OLD_VISION[name])


def test_the_language_recipe_read_from_configs_equals_the_old_list():
    defaults = language_run.DEFAULTS
    assert _resolved(language_run.SETTINGS, [], language.RECIPE.file, defaults) == \
        _resolved(language_run.SETTINGS, OLD_LANGUAGE, defaults=defaults)


@pytest.mark.parametrize("spec, name, settings, old", [
    (translation.SPEC, "vanilla-6x6", translation_run.SETTINGS, OLD_TRANSLATION + ["n_layers=6"]),
    (translation.SPEC, "vanilla", translation_run.SETTINGS, OLD_TRANSLATION),
    (ablations.SPEC, "no-attn", translation_run.SETTINGS,
     OLD_TRANSLATION + ["signal_q=false", "signal_k=false", "signal_v=false"]),
    (ablations.SPEC, "vit-static", vision_run.SETTINGS, OLD_VISION["plain"] + [
        "signal_mode=static", "attn_residual_dropout=true", "level_norm_eps=1e-6", "ffn_xavier_init=false"]),
])
def test_a_row_resolves_to_the_settings_the_old_script_gave_it(spec, name, settings, old):
    """The old scripts passed recipe + row overrides + device + seed + budget as one list."""
    row = spec.rows[name]
    steps = row.steps or spec.default_steps
    tail = ["device=cpu", "seed=1", f"max_steps={steps}"]
    new = _resolved(settings, training.run_settings(row, 1, steps, "cpu"), row.recipe.file)
    assert new == _resolved(settings, old + tail)
    assert new["train"]["max_steps"] == (4300 if name.startswith("vit-") else 2400)


def test_a_translation_run_passes_the_recipe_file_and_resumes_an_interrupted_run(tmp_path, monkeypatch):
    """What the library receives for one row, and the record written from its result."""
    calls = []

    def fake_train(family, preset, pairs, config_file=None, out=None, resume=False):
        calls.append((family, preset, pairs, config_file, out, resume))
        train = {"step": 7, "train_seconds": 2.0, "tokens_seen": 10, "best_score": 1.5}
        test = {"bleu": 2.5, "signature": "sig", "beam": 4}
        return {"train": train, "parameters": {"non_embedding": 3, "total": 4}, "test2016": test, "test2017": test}

    monkeypatch.setattr(translation_run, "train_translation", fake_train)
    run_dir = tmp_path / "run"
    (run_dir / "last").mkdir(parents=True)
    (run_dir / "last" / "config.json").write_text("{}")  # an interrupted run's checkpoint
    row = translation.SPEC.rows["vanilla-matched"]
    record = training.train_row(row, "vanilla-matched", 0, 7, "cpu", run_dir, tmp_path / "records")
    family, preset, pairs, config_file, out, resume = calls[0]
    assert (family, preset, config_file, out, resume) == ("vanilla", "mt-small", str(translation.RECIPE.file),
                                                          str(run_dir), True)
    assert pairs == ["n_layers=1", "device=cpu", "seed=0", "max_steps=7"]
    assert list(record)[:4] == ["device", "threads", "concurrent_runs", "name"]
    assert record["overrides"] == ["n_layers=1"] and record["tokens_per_s"] == 5.0
    assert (tmp_path / "records" / "vanilla-matched-s0.json").is_file()


def test_the_run_loop_skips_finished_runs_and_rewrites_the_page_after_each(tmp_path, monkeypatch):
    spec = translation.SPEC.__class__(
        name="t", rows={"a": translation.ROWS["vanilla"], "b": translation.ROWS["looped"]},
        results=tmp_path / "records", page="t.md", runs=tmp_path / "runs", default_steps=5,
        render=lambda spec, steps, seeds, out: f"{steps} {seeds} {sorted(p.name for p in spec.results.glob('*'))}")
    spec.results.mkdir()
    (spec.results / "a-s0.json").write_text("{}")
    (spec.results / "b-s3.json").write_text("{}")  # a partial third seed: the page counts it
    done, pages = [], []

    def fake_run_one(spec_, name, seed, steps, device):
        done.append((name, seed, steps, device))
        spec_.record_path(name, seed).write_text("{}")
        pages.append((tmp_path / "t.md").read_text() if (tmp_path / "t.md").exists() else None)

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    ap = runner.table_parser(spec, None)
    runner.run_table(spec, ap.parse_args(["--device", "cpu", "--steps", "9"]), ap, out=tmp_path)
    assert done == [("b", 0, 9, "cpu"), ("a", 1, 9, "cpu"), ("b", 1, 9, "cpu")]
    assert pages[1] is not None and "b-s0.json" in pages[1]  # rewritten after the first run
    assert (tmp_path / "t.md").read_text().startswith("9 [0, 1, 3]")
