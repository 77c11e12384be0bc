#!/usr/bin/env bash
# Creates the separate RecBole 1.2.1 virtualenv used by the parity benchmark.
# Separate because RecBole 1.2.1 needs numpy<2 / pandas<2.3 / scipy<1.12, which the
# bench environment does not pin. Idempotent: does nothing when the venv already works.
# Note: the recipe "setuptools<70" conflicts with torch 2.13 (needs setuptools>=77); we
# pin setuptools>=77,<81 (pkg_resources is still there) instead.
set -euo pipefail
VENV="${RECBOLE_VENV:-.bench_cache/recbole-venv}"
PY="${PYTHON:-python3.11}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import recbole" 2>/dev/null; then
  echo "recbole venv ready: $VENV"; exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0 recbole==1.2.1 "numpy<2" "pandas<2.3" "scipy<1.12" "setuptools>=77,<81"  # torch 2.13 needs >=77; the <70 pin of the brief conflicts
"$VENV/bin/python" -c "import recbole, torch; print('recbole', recbole.__version__, 'torch', torch.__version__)"
