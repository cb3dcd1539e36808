"""The run directory: never trained into without --resume once it holds a result, resumed
only from a resumable last/, and locked while a run writes it."""

import fcntl
import os
import shutil

import pytest

from loopformer.errors import ConfigError
from loopformer.tasks.language_run import train_language

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 20
TINY = ["d_model=32", "n_heads=2", "d_ff=64", "context=64", "batch_size=2", "eval_windows=2", "progress=false",
        "eval_every=100", "max_steps=2"]


def train(out, *extra, resume=False):
    return train_language("looped", "lm-char", TINY + list(extra), out=str(out), resume=resume, text=TEXT)


def lock_is_free(out) -> bool:
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def tree(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"")
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    train(out)
    return out


def test_a_finished_run_without_last_is_not_replaced(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    shutil.rmtree(run / "last")  # e.g. deleted to save space: best/ and results.json remain
    before = tree(run)
    with pytest.raises(ConfigError, match="already holds results of a run .*best.*choose another --out"):
        train(run, "max_steps=3")
    with pytest.raises(ConfigError, match="cannot resume: .* holds best, .* but no resumable last/"):
        train(run, "max_steps=3", resume=True)
    assert tree(run) == before


@pytest.mark.parametrize("leftover", ["results.json", "metrics.jsonl", "best.old", "step-00000004"])
def test_any_result_refuses_a_new_run(tmp_path, leftover):
    run = tmp_path / "run"
    run.mkdir()
    (run / leftover).write_text("{}")
    with pytest.raises(ConfigError, match=f"already holds results of a run \\({leftover}\\)"):
        train(run)
    assert sorted(p.name for p in run.iterdir()) == sorted([leftover, ".lock"])


def test_resume_needs_a_resumable_last(tmp_path):
    with pytest.raises(ConfigError, match="cannot resume: .* has no resumable last/"):
        train(tmp_path / "empty", resume=True)


def test_a_locked_directory_is_refused_and_left_alone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        with pytest.raises(ConfigError, match=f"^another run \\(pid 4242\\) is writing {run}$"):
            train(run)
        assert [p.name for p in run.iterdir()] == [".lock"]
        assert (run / ".lock").read_text() == "4242\n"
    finally:
        os.close(fd)
    train(run)  # free again: the run goes ahead
    assert (run / "last").is_dir()


def test_the_lock_is_released_however_the_run_ends(finished, tmp_path):
    assert lock_is_free(finished)  # after a run that finished
    with pytest.raises(ConfigError):
        train(finished, "context=32", resume=True)  # refused after taking the lock
    assert lock_is_free(finished)
    run = tmp_path / "run"
    with pytest.raises(ConfigError):
        train(run, "train_fraction=0.001")  # fails inside the run, with the lock held
    assert lock_is_free(run)
