#!/usr/bin/env bash
# Fresh clone -> ./.venv (scripts/setup.sh, skipped when it is already there) -> the test suite.
# Data-dependent tests read the offline mirror named by LOOPFORMER_DATA_MIRROR (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOPFORMER_DATA_MIRROR="${LOOPFORMER_DATA_MIRROR:-$(cd .. && pwd)/shared/data}"
[ -x .venv/bin/loopformer ] || ./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
