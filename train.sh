#!/usr/bin/env bash
# Train with torchrun: ./train.sh options/train/x.yml [--set key=value ...]
# One process per GPU (all visible GPUs), or 1 process on CPU; NGPU=<n> overrides.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OPTION_FILE.yml [--set key=value ...]" >&2
  exit 2
fi
OPT="$1"; shift
PYTHON="${PYTHON:-python}"
if [ -z "${NGPU:-}" ]; then
  NGPU=$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')
fi
PORT="${MASTER_PORT:-$(( 29500 + RANDOM % 1000 ))}"
HERE="$(cd "$(dirname "$0")" && pwd)"
exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$NGPU" --master_port="$PORT" \
  "$HERE/basicsr/train.py" -opt "$OPT" "$@"
