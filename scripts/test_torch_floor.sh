#!/usr/bin/env bash
# Run the test suite against the oldest supported torch (the floor stated in requirements.txt and README):
#   bash scripts/test_torch_floor.sh            # torch 2.3.1, fresh venv in a temporary folder
#   TORCH=2.4.1 bash scripts/test_torch_floor.sh -m 'not slow'   # another version / pytest arguments
# torch < 2.4 wheels on PyPI are CUDA builds (a few GB) and need numpy < 2; they run on the CPU.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  echo "usage: [TORCH=2.3.1] [FLOOR_VENV=DIR] bash scripts/test_torch_floor.sh [PYTEST_ARGS ...]"
  echo "Makes a fresh venv with torch \$TORCH (default 2.3.1) and numpy < 2, installs the project, runs the suite."
  exit 0
fi
cd "$(dirname "$0")/.."
TORCH="${TORCH:-2.3.1}"
VENV="${FLOOR_VENV:-$(mktemp -d)/venv}"
python3 -m venv "$VENV"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==$TORCH" 'numpy<2'
python -m pip install --quiet 'numpy<2' -e '.[test]'
python -c 'import torch, numpy, basicsr; print("torch", torch.__version__, "numpy", numpy.__version__)'
python -m pytest -q tests "$@"
