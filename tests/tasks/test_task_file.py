import pytest

from loopformer.errors import CheckpointError
from loopformer.tasks.language import LanguageConfig, load_language_config
from loopformer.tasks.task_file import TASK_FILE
from loopformer.tasks.translation import TranslationConfig, load_task_config
from loopformer.tasks.vision import load_vision_config


def test_reads_known_keys_and_ignores_others(tmp_path):
    (tmp_path / TASK_FILE).write_text('{"task": "language", "context": 64, "from_the_future": 1}')
    assert load_language_config(tmp_path) == LanguageConfig(context=64)


def test_missing_file_is_an_error_except_for_old_translation_checkpoints(tmp_path):
    assert load_task_config(tmp_path) == TranslationConfig()
    with pytest.raises(CheckpointError, match="not a vision checkpoint"):
        load_vision_config(tmp_path)


@pytest.mark.parametrize("text, message", [
    ('{"task": "lang', "is corrupt"),
    ("[1, 2]", "does not describe"),
    ('{"task": "vision", "context": 64}', "does not describe a language-model run"),
    ('{"task": "language", "context": "long"}', "context"),
])
def test_bad_files_give_one_checkpoint_error(tmp_path, text, message):
    (tmp_path / TASK_FILE).write_text(text)
    with pytest.raises(CheckpointError, match=message) as info:
        load_language_config(tmp_path)
    assert "\n" not in str(info.value)


def test_a_translation_file_holding_a_list_is_an_error(tmp_path):
    (tmp_path / TASK_FILE).write_text("[]")
    with pytest.raises(CheckpointError, match="does not describe a translation run"):
        load_task_config(tmp_path)


def test_task_name_of_each_kind_of_file(tmp_path):
    from loopformer.tasks.task_file import task_name

    assert task_name(tmp_path, missing="translation") == "translation"
    with pytest.raises(CheckpointError, match="has no task.json"):
        task_name(tmp_path)
    (tmp_path / TASK_FILE).write_text('{"bpe_vocab_size": 8000}')  # written before the "task" key
    assert task_name(tmp_path) == "translation"
    for text, message in [('{"task": "audio"}', "names no known task"), ("[1]", "names no known task"),
                          ('{"task": ', "is corrupt")]:
        (tmp_path / TASK_FILE).write_text(text)
        with pytest.raises(CheckpointError, match=message) as info:
            task_name(tmp_path, missing="translation")
        assert "\n" not in str(info.value)
    (tmp_path / TASK_FILE).unlink()
    (tmp_path / TASK_FILE).mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        task_name(tmp_path)
