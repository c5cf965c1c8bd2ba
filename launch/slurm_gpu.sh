#!/bin/bash
# Protect, evaluate and report on a SLURM GPU cluster: one process per node, all its GPUs.
#
# Usage (from the repo root, after `pip install -e . "jax[cuda12]"` in a venv on the cluster):
#   sbatch launch/slurm_gpu.sh
#   sbatch --nodes=4 --gpus-per-node=8 --time=12:00:00 \
#     --export=ALL,CONFIG=configs/salm.py:breastmnist,WORKDIR=/shared/runs/breast,VENV=$HOME/salm_venv \
#     launch/slurm_gpu.sh --config.noise.mask_ratio=0.2
#   DRY_RUN=1 bash launch/slurm_gpu.sh   # print the commands, run nothing
#
# Arguments after the script name are passed to protect and evaluate (config overrides).
# WORKDIR must be on a filesystem every node sees: all processes read the same data and
# the entry points write the workdir. JAX joins the processes with
# jax.distributed.initialize(), called by launch/distributed.py when SLURM_NTASKS > 1;
# it finds the coordinator from the SLURM variables and gives each process all of its
# node's GPUs (one task per node, below).
#
#SBATCH --job-name=salm_jax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=salm_jax-%j.out
set -euo pipefail

CONFIG="${CONFIG:-configs/salm.py:synthetic}"
WORKDIR="${WORKDIR:-runs/slurm-${SLURM_JOB_ID:-local}}"
VENV="${VENV:-}"
DRY_RUN="${DRY_RUN:-0}"
FLAGS=(--config="$CONFIG" --workdir="$WORKDIR" --noprogress "$@")

run() {  # Runs a command, or prints it (shell-quoted) under DRY_RUN=1.
  if [[ "$DRY_RUN" == "1" ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

cd "${SLURM_SUBMIT_DIR:-.}"
if [[ -n "$VENV" ]]; then
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
fi
export PYTHONUNBUFFERED=1
# One process drives several GPUs: let XLA take most of each GPU's memory up front.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"

run srun --kill-on-bad-exit=1 python -m launch.protect "${FLAGS[@]}"
run srun --kill-on-bad-exit=1 python -m launch.evaluate "${FLAGS[@]}"
# The report is one process's work: run it on the batch host, outside the distributed job.
run env SALM_DISTRIBUTED=0 python -m launch.report --config="$CONFIG" --workdir="$WORKDIR"
echo "Report: $WORKDIR/report/index.html"
