"""Run by tests/train/test_ddp.py under torchrun: a few steps of a tiny LM on in-memory text."""

import sys

from loopformer.tasks.language_run import train_language
from loopformer.train.distributed import teardown

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
# no attention biases: the key bias has an exactly-zero gradient, which Adam would turn
# from rounding noise into full-size steps that differ between 1 and 2 processes
ARGS = ["d_model=32", "n_heads=2", "d_ff=64", "dropout=0", "bias=false", "context=16", "batch_size=4", "eval_windows=2",
        "progress=false", "log_every=1", "eval_every=100", "max_steps=3", "lr=3e-3", "warmup_steps=0"]

if __name__ == "__main__":
    try:
        train_language(sys.argv[2], "lm-char", ARGS, out=sys.argv[1], text=TEXT)
    finally:
        teardown()
