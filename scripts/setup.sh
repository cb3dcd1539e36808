#!/usr/bin/env bash
# Fresh clone -> working install in ./.venv with CPU PyTorch (never the multi-GB CUDA build).
# Uses a local torch wheel when pip already knows one (find-links), else PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
"$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
if "$PIP" install --quiet --dry-run --no-index --no-deps torch==2.13.0 >/dev/null 2>&1; then
  "$PIP" install --quiet torch==2.13.0
else
  "$PIP" install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
"$PIP" install --quiet -e ".[dev,hf,eval,deploy]"  # the extras' tests run too
"$VENV/bin/python" -c "import torch, loopformer; print('loopformer', loopformer.__version__, 'with torch', torch.__version__)"
