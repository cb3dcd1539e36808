"""torchrun with 2 CPU processes (gloo) takes exactly the steps of one process on the whole batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.parametrize("model", ["ringformer", "spiral"])
def test_two_ranks_match_one_process(tmp_path, model):
    from loopformer.checkpoint import load_model

    sys.path.insert(0, str(WORKER.parent))
    try:
        import ddp_worker
    finally:
        sys.path.pop(0)
    single = tmp_path / "single"
    ddp_worker.train_language(model, "lm-char", ddp_worker.ARGS, out=str(single), text=ddp_worker.TEXT)
    multi = tmp_path / "multi"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
         str(multi), model],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_model(single / "last").state_dict()
    b = load_model(multi / "last").state_dict()
    assert a.keys() == b.keys()
    moved = 0
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-5, msg=k)
    # the run really trained: parameters left their initial values
    init = load_model(single / "last")  # same seed -> same init: compare with a fresh model
    from loopformer.registry import create_model

    fresh = create_model(f"{model}-lm-char", **init.config.to_dict()).state_dict()
    moved = sum(not torch.equal(fresh[k], a[k]) for k in a)
    assert moved > len(a) // 2
    rows = (multi / "metrics.jsonl").read_text().splitlines()
    assert sum('"kind": "train"' in r for r in rows) == 3  # rank 0 alone writes the log
