#!/usr/bin/env bash
# Proves the GPU path in one command; the logic is tools/gpu_check.py, the how-to tools/README.md.
# Usage: bash tools/gpu_check.sh OUT_DIR [--dry_run] [--wheels DIR] [--budget_s 600]
# $PYTHON picks the interpreter (default python3, else python): the one TensorFlow is for.
set -euo pipefail
python="${PYTHON:-$(command -v python3 || command -v python || true)}"
if [[ -z "$python" ]]; then
  echo "gpu_check: error: no python3 or python on PATH (set \$PYTHON)" >&2
  exit 2
fi
exec "$python" "$(dirname "$0")/gpu_check.py" "$@"
