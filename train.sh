#!/usr/bin/env bash
# Train with torchrun: ./train.sh options/train/x.yml [--set key=value ...]
# One process per GPU (all visible GPUs), or 1 process on CPU; NGPU=<n> overrides.
# The options are validated before torchrun starts, so a mistake in them is one line and no run folder.
set -euo pipefail
usage() {
  cat <<USAGE
usage: $0 OPTION_FILE.yml [--set key=value ...] [train.py flags]

Trains with torchrun, one process per visible GPU (1 on CPU); NGPU=<n> sets the number of processes,
MASTER_PORT the rendezvous port. Flags after the option file go to basicsr/train.py (see its --help).
Errors are one line 'error: ...' (exit status 2: a mistake in the options or data, 1: the run failed);
BASICSR_DEBUG=1 adds the traceback.
USAGE
}
if [ $# -lt 1 ]; then
  usage >&2
  exit 2
fi
case "$1" in
  -h|--help) usage; exit 0 ;;
esac
OPT="$1"; shift
PYTHON="${PYTHON:-python}"
HERE="$(cd "$(dirname "$0")" && pwd)"
"$PYTHON" "$HERE/basicsr/train.py" -opt "$OPT" "$@" --check-only || exit $?
if [ -z "${NGPU:-}" ]; then
  NGPU=$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')
fi
PORT="${MASTER_PORT:-$(( 29500 + RANDOM % 1000 ))}"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m basicsr.utils.launch --nproc_per_node="$NGPU" --master_port="$PORT" \
  "$HERE/basicsr/train.py" -opt "$OPT" "$@"
