#!/usr/bin/env bash
# The README's test command: install gostore with its test extras (building the compiled
# module from source), then run the whole suite twice: compiled, and pure (GOSTORE_PURE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[test]"
python -c "import gostore; print('gostore', gostore.__version__, 'compiled speed-ups:', gostore.SPEEDUPS)"
echo "== compiled mode"
python -m pytest "$@"
echo "== pure mode (GOSTORE_PURE=1)"
GOSTORE_PURE=1 python -m pytest "$@"
