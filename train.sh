#!/usr/bin/env bash
# Train with torchrun: ./train.sh options/train/x.yml [--max-restarts N] [--set key=value ...]
# One process per GPU (all visible GPUs), or 1 process on CPU; NGPU=<n> overrides. Multi-node: see usage below.
# The options are validated before torchrun starts, so a mistake in them is one line and no run folder.
set -euo pipefail
usage() {
  cat <<USAGE
usage: $0 OPTION_FILE.yml [--max-restarts N] [--set key=value ...] [train.py flags]

Trains with torchrun, one process per visible GPU (1 on CPU); NGPU=<n> sets the number of processes per node.
Flags after the option file go to basicsr/train.py (see its --help), except --max-restarts.

  --max-restarts N   (or MAX_RESTARTS=N) torchrun restarts the whole group up to N times when a worker dies;
                     every rank resumes from the newest valid checkpoint (default 0); across nodes it
                     needs the c10d rendezvous.
Environment (torchrun's standard variables):
  one node           MASTER_PORT (default: random in 29500-30499)
  static multi-node  NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (the same on every node but NODE_RANK)
  c10d rendezvous    NNODES (N or MIN:MAX), RDZV_ENDPOINT=host:port, RDZV_ID (a job id shared by the nodes),
                     RDZV_BACKEND (default c10d); node ranks are assigned by the rendezvous
The global batch is batch_size_per_gpu x number of processes (x train.accumulate_grad per step).
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
MAX_RESTARTS="${MAX_RESTARTS:-0}"
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max-restarts|--max_restarts)
      [ $# -ge 2 ] || { echo "error: $1 needs a number" >&2; exit 2; }
      MAX_RESTARTS="$2"; shift 2 ;;
    --max-restarts=*|--max_restarts=*) MAX_RESTARTS="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;  # train.py's --check-only and the workers would each print theirs
    *) ARGS+=("$1"); shift ;;
  esac
done
case "$MAX_RESTARTS" in
  ''|*[!0-9]*) echo "error: --max-restarts / MAX_RESTARTS must be a whole number, got '$MAX_RESTARTS'" >&2; exit 2 ;;
esac
NNODES="${NNODES:-1}"
RUN=(--nnodes="$NNODES" --max_restarts="$MAX_RESTARTS")
if [ -n "${RDZV_ENDPOINT:-}" ]; then
  if [ -z "${RDZV_ID:-}" ]; then
    echo "error: RDZV_ENDPOINT needs RDZV_ID, a job id shared by the nodes of this run (e.g. the SLURM job id)" >&2
    exit 2
  fi
  RUN+=(--rdzv_backend="${RDZV_BACKEND:-c10d}" --rdzv_endpoint="$RDZV_ENDPOINT" --rdzv_id="$RDZV_ID")
elif [ "$NNODES" != 1 ]; then
  for var in NODE_RANK MASTER_ADDR MASTER_PORT; do
    if [ -z "${!var:-}" ]; then
      echo "error: NNODES=$NNODES needs $var (or RDZV_ENDPOINT=host:port for a c10d rendezvous); see $0 --help" >&2
      exit 2
    fi
  done
  if [ "$MAX_RESTARTS" != 0 ]; then
    echo "error: --max-restarts across nodes needs the c10d rendezvous (RDZV_ENDPOINT and RDZV_ID instead of" \
      "NODE_RANK/MASTER_ADDR): a static launch cannot restart the other nodes' workers" >&2
    exit 2
  fi
  RUN+=(--node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT")
elif [ "$MAX_RESTARTS" != 0 ]; then  # restarts on one node: a c10d rendezvous on this machine
  RUN+=(--rdzv_backend=c10d --rdzv_endpoint="127.0.0.1:${MASTER_PORT:-$(( 29500 + RANDOM % 1000 ))}"
        --rdzv_id="${RDZV_ID:-local-$$-$RANDOM}")
else
  RUN+=(--master_port="${MASTER_PORT:-$(( 29500 + RANDOM % 1000 ))}")
fi
PYTHON="${PYTHON:-python}"
HERE="$(cd "$(dirname "$0")" && pwd)"
"$PYTHON" "$HERE/basicsr/train.py" -opt "$OPT" ${ARGS[@]+"${ARGS[@]}"} --check-only || exit $?
if [ -z "${NGPU:-}" ]; then
  NGPU=$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')
fi
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m basicsr.utils.launch "${RUN[@]}" --nproc_per_node="$NGPU" \
  "$HERE/basicsr/train.py" -opt "$OPT" ${ARGS[@]+"${ARGS[@]}"}
