#!/usr/bin/env bash
# Quick-start command (2): set up .venv and run the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --with-fid-weights
exec .venv/bin/python -m pytest -q "$@"
