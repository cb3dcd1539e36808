"""Real processes: SIGKILL mid-run then --resume equals an uninterrupted run; SIGINT saves."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from loopformer.checkpoint import load_model

TEXT = "It was the best of times, it was the worst of times, it was the age of wisdom. " * 50
ARGS = ["d_model=32", "n_heads=2", "d_ff=64", "context=16", "batch_size=4", "eval_windows=2", "progress=false",
        "log_every=1", "eval_every=4", "dropout=0.1"]


def launch(corpus: Path, out: Path, steps: int, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "loopformer.cli", "train", "language", "--model", "ringformer", "--preset",
           "lm-char", "--out", str(out), f"dataset={corpus}", f"max_steps={steps}"] + ARGS
    if resume:
        cmd.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(out: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    log = out / "metrics.jsonl"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()[-2000:]}")
        if log.is_file():
            steps = [json.loads(x)["step"] for x in log.read_text().splitlines() if x.strip()]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError("run did not reach the step in time")


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    full = launch(corpus, tmp_path / "full", 20)
    assert full.wait(timeout=300) == 0, full.stderr.read()[-2000:]
    killed = launch(corpus, tmp_path / "killed", 20)
    wait_for_step(tmp_path / "killed", 10, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    saved = json.loads((tmp_path / "killed" / "last" / "trainer_state.json").read_text())["step"]
    assert 0 < saved < 20
    again = launch(corpus, tmp_path / "killed", 20, resume=True)
    assert again.wait(timeout=300) == 0, again.stderr.read()[-2000:]
    a = load_model(tmp_path / "full" / "last").state_dict()
    b = load_model(tmp_path / "killed" / "last").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigint_writes_a_loadable_checkpoint(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    run = launch(corpus, tmp_path / "run", 100_000)
    wait_for_step(tmp_path / "run", 6, run)
    run.send_signal(signal.SIGINT)
    code = run.wait(timeout=120)
    err = run.stderr.read()
    assert code == 2 and "interrupted at step" in err and "--resume" in err
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert state["step"] >= 6
    assert load_model(tmp_path / "run" / "last") is not None
