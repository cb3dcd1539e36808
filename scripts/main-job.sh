#!/usr/bin/env bash
# Fresh clone -> ./.venv (scripts/setup.sh, skipped when it is already there) -> the main job:
# RingFormer (ringformer-mt-small) trained on Multi30k De->En with configs/mt-small-cpu.yaml,
# then test2016 sacreBLEU of its best checkpoint. The data come from LOOPFORMER_DATA_MIRROR
# when it is set (e.g. ../shared/data), else from their upstream addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/loopformer ] || ./scripts/setup.sh
exec .venv/bin/loopformer train translation --model ringformer --preset mt-small \
    --config configs/mt-small-cpu.yaml --out "${1:-runs/main}"
