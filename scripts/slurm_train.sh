#!/usr/bin/env bash
#SBATCH --job-name=basicsr
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=%x_%j.out
# Multi-node training under SLURM: sbatch [--nodes=N ...] scripts/slurm_train.sh OPTION_FILE.yml [train.sh flags]
# srun starts one ./train.sh (one torchrun) per node; they meet in a c10d rendezvous on the first node.
set -euo pipefail
usage() {
  cat <<USAGE
usage: sbatch [sbatch options] scripts/slurm_train.sh OPTION_FILE.yml [--max-restarts N] [--set key=value ...]

Submit from the repository root (or set BASICSR_ROOT). srun runs ./train.sh once per node of the allocation;
each torchrun starts one process per visible GPU (NGPU overrides) and joins the c10d rendezvous
RDZV_ENDPOINT=<first node>:RDZV_PORT (default 29500) with RDZV_ID=SLURM_JOB_ID, NNODES=SLURM_JOB_NUM_NODES.
--max-restarts N restarts the whole group from the newest checkpoint when a worker dies. The experiments folder
must be on a filesystem every node mounts. Edit the #SBATCH lines (nodes, GPUs, time) or override them on the
sbatch command line.
USAGE
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  '') usage >&2; exit 2 ;;
esac
if [ -z "${SLURM_JOB_ID:-}" ] || [ -z "${SLURM_JOB_NODELIST:-}" ]; then
  echo "error: no SLURM allocation (SLURM_JOB_ID/SLURM_JOB_NODELIST unset): submit with sbatch, or run ./train.sh" >&2
  exit 2
fi
ROOT="${BASICSR_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
if [ ! -x "$ROOT/train.sh" ]; then
  echo "error: $ROOT/train.sh not found: submit from the repository root or set BASICSR_ROOT" >&2
  exit 2
fi
HEAD_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export NNODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}"
export RDZV_ENDPOINT="$HEAD_NODE:${RDZV_PORT:-29500}"
export RDZV_ID="$SLURM_JOB_ID"
export RDZV_BACKEND=c10d
cd "$ROOT"
exec srun --nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 "$ROOT/train.sh" "$@"
