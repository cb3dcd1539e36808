"""``python -m reports <command> [options]``: the one entry point of the results pages.

Commands are the modules of this package that have a command line: the pages (each
rebuilds its page; the table pages first train whatever run is missing) and the
measurements whose JSONs the pages read. ``python -m reports <command> --help`` shows a
command's options."""

from __future__ import annotations

import importlib
import sys

PAGES = {
    "translation": "Multi30k De→En table (docs/results/translation.md)",
    "vision": "Fashion-MNIST table, --recipe plain or augment (vision.md, vision_augment.md)",
    "language": "Tiny Shakespeare table (language.md)",
    "ablations": "RingFormer ablations, rank sweep and representation probe (ablations.md)",
    "speed": "the speed targets, measured with loopformer bench (speed.md)",
    "analysis": "CKA and attention-distance figures from the tables' checkpoints (analysis/)",
    "your_data": "the same recipes from plain files and from the registry (your_data.md)",
    "test_time_depth": "loops at inference, random-depth training, early exit (test_time_depth.md)",
    "interop": "CTranslate2 and lm-eval against loopformer's own figures (interop.md)",
}
TOOLS = {
    "parallel_tables": "run many table runs side by side (one process each), with a deadline",
    "signal_overhead": "cost of RingFormer's level signals in a training step",
    "activation_memory": "activation memory with and without activation checkpointing",
    "decode_profile": "where a cached greedy decoding step spends its time",
    "matmul_shapes": "matmul throughput at decoding and training shapes",
    "packing_bleu": "whether packed weights change translations",
    "bf16_loss_curve": "bf16 autocast against fp32 training curves",
    "your_data_text": "prepare text throughput and LM memory on a 57.7M-character corpus (your_data/)",
    "your_data_images": "Fashion-MNIST as an image folder against the registry (your_data/)",
}


def usage() -> str:
    """The commands, for a call without one (or with an unknown one)."""
    lines = ["usage: python -m reports <command> [options]", "", "pages:"]
    lines += [f"  {name:<18} {what}" for name, what in PAGES.items()]
    lines += ["", "measurements:"] + [f"  {name:<18} {what}" for name, what in TOOLS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``reports.<command>.main`` with the remaining arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in PAGES and argv[0] not in TOOLS:
        print(f"unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(f"reports.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
