#!/usr/bin/env bash
# Creates the separate virtualenv of the `implicit` row (benchmarks/implicit_bpr/run.py).
# Benchmark-only: implicit is never a dependency of bench. Separate so its compiled
# extension and its NumPy/SciPy pins cannot touch the bench environment. The driver it
# runs needs only numpy, scipy and implicit (factors go back to bench as .npy files, and
# bench's own scorer evaluates them). Idempotent: does nothing when the venv already works.
set -euo pipefail
VENV="${IMPLICIT_VENV:-.bench_cache/implicit-venv}"
PY="${PYTHON:-python3.11}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import implicit, numpy" 2>/dev/null; then
  echo "implicit venv ready: $VENV"; exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q "implicit==0.7.3" "numpy>=2" scipy threadpoolctl
"$VENV/bin/python" -c "import implicit, numpy, scipy; print('implicit', implicit.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
