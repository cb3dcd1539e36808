"""``python -m loopformer.harness``: lm-eval with the loopformer model type registered."""

from . import main

main()
