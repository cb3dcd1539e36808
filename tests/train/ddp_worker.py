"""Run by tests/train/test_ddp.py under torchrun: a few steps of a tiny LM on in-memory text.

    ddp_worker.py OUT MODEL [ddp|fsdp] [STEPS] [resume]
"""

import os
import sys

from loopformer.tasks.language_run import train_language
from loopformer.train.distributed import teardown

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
# no attention biases: the key bias has an exactly-zero gradient, which Adam would turn
# from rounding noise into full-size steps that differ between 1 and 2 processes
ARGS = ["d_model=32", "n_heads=2", "d_ff=64", "dropout=0", "bias=false", "context=16", "batch_size=4", "eval_windows=2",
        "progress=false", "log_every=1", "eval_every=100", "lr=3e-3", "warmup_steps=0",
        "schedule=constant"]  # the learning rate must not depend on max_steps: runs stop and resume


def args(steps: int = 3, mode: str = "ddp") -> list[str]:
    extra = os.environ.get("DDP_WORKER_EXTRA", "").split()  # more key=value settings
    return ARGS + [f"max_steps={steps}", f"fsdp={'true' if mode == 'fsdp' else 'false'}"] + extra


if __name__ == "__main__":
    mode = sys.argv[3] if len(sys.argv) > 3 else "ddp"
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    try:
        train_language(sys.argv[2], "lm-char", args(steps, mode), out=sys.argv[1], text=TEXT,
                       resume=len(sys.argv) > 5 and sys.argv[5] == "resume")
    finally:
        teardown()
