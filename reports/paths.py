"""Where the pages, their records, the recipes and the run directories live.

Everything is relative to the repository root, so the commands work from any working
directory and the run directories stay where earlier runs left them (``runs/...``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"  # the pages and, in sub-folders, their records
RECIPES = ROOT / "configs" / "tables"  # one YAML training recipe per table
RUNS = ROOT / "runs"  # run directories (checkpoints), not committed
