#!/usr/bin/env bash
# Run salm_jax on every worker of an existing Cloud TPU VM pod slice.
#
# Usage (from the repo root, with gcloud logged in and the TPU already created):
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_pod.sh [extra flags for protect/evaluate]
#   TPU_NAME=my-v4-32 ZONE=us-central2-b CONFIG=configs/salm.py:breastmnist \
#     WORKDIR=runs/breast OUTPUT_BUCKET=gs://my-bucket/salm launch/tpu_pod.sh \
#     --config.noise.mask_ratio=0.2
#   DRY_RUN=1 TPU_NAME=x ZONE=y launch/tpu_pod.sh   # print the gcloud commands only
#
# What it does, in order (STEPS="install protect evaluate report" by default):
#   install  - packs the committed repo (git archive HEAD), copies it to all workers and
#              runs `pip install -e . "jax[tpu]"` in a venv on each;
#   protect  - `python -m launch.protect` on all workers at once, SALM_DISTRIBUTED=1 so
#              each process calls jax.distributed.initialize() (launch/distributed.py);
#   evaluate - `python -m launch.evaluate` the same way;
#   report   - `python -m launch.report` on worker 0 only (no multi-host work);
#   then, if OUTPUT_BUCKET is set, worker 0 copies WORKDIR there with gsutil rsync.
#
# WORKDIR is a path on each worker's disk (relative to the unpacked repo, or absolute,
# e.g. a shared Filestore / gcsfuse mount). salm_jax writes files with os-level atomic
# renames, so a gs:// URL cannot be the workdir itself: use OUTPUT_BUCKET to publish.
# The script creates nothing in the cloud: it only uses an existing TPU (`tpu-vm ssh/scp`).
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME to the name of an existing TPU VM}"
: "${ZONE:?set ZONE to the TPU VM zone, e.g. us-central2-b}"
PROJECT="${PROJECT:-}"
CONFIG="${CONFIG:-configs/salm.py:synthetic}"
WORKDIR="${WORKDIR:-runs/tpu_pod}"
STEPS="${STEPS:-install protect evaluate report}"
REMOTE_DIR="${REMOTE_DIR:-salm_jax}"          # relative to the workers' home folder
VENV="${VENV:-\$HOME/salm_venv}"                # expanded on the workers
OUTPUT_BUCKET="${OUTPUT_BUCKET:-}"
DRY_RUN="${DRY_RUN:-0}"
EXTRA_FLAGS=("$@")

GCLOUD=(gcloud compute tpus tpu-vm)
LOCATION=(--zone="$ZONE")
if [[ -n "$PROJECT" ]]; then
  LOCATION+=(--project="$PROJECT")
fi

run() {  # Runs a command, or prints it (shell-quoted) under DRY_RUN=1.
  if [[ "$DRY_RUN" == "1" ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

on_workers() {  # on_workers <worker: all|0> <remote bash command>
  run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOCATION[@]}" --worker="$1" --command="$2"
}

quoted_flags() {  # The user's extra flags, quoted for the remote shell.
  local out="" f
  for f in "${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"}"; do
    out+=" $(printf '%q' "$f")"
  done
  printf '%s' "$out"
}

entry_point() {  # entry_point <module> <SALM_DISTRIBUTED value>: the remote command line.
  printf 'set -e; source %s/bin/activate; cd ~/%s; SALM_DISTRIBUTED=%s python -m %s --config=%q --workdir=%q --noprogress%s' \
    "$VENV" "$REMOTE_DIR" "$2" "$1" "$CONFIG" "$WORKDIR" "$(quoted_flags)"
}

install() {
  local archive="${TMPDIR:-/tmp}/salm_jax-$$.tar.gz"
  run git archive --format=tar.gz -o "$archive" HEAD
  run "${GCLOUD[@]}" scp "$archive" "$TPU_NAME:salm_jax.tar.gz" "${LOCATION[@]}" --worker=all
  on_workers all "set -e; mkdir -p ~/$REMOTE_DIR; tar -xzf ~/salm_jax.tar.gz -C ~/$REMOTE_DIR; \
python3 -m venv $VENV; source $VENV/bin/activate; pip install -q --upgrade pip; \
pip install -q -e ~/$REMOTE_DIR 'jax[tpu]'"
}

for step in $STEPS; do
  case "$step" in
    install) install ;;
    protect) on_workers all "$(entry_point launch.protect 1)" ;;
    evaluate) on_workers all "$(entry_point launch.evaluate 1)" ;;
    report) on_workers 0 "$(entry_point launch.report 0)" ;;
    *) echo "tpu_pod.sh: unknown step '$step' in STEPS (install protect evaluate report)" >&2
       exit 2 ;;
  esac
done

if [[ -n "$OUTPUT_BUCKET" ]]; then
  on_workers 0 "cd ~/$REMOTE_DIR && gsutil -m rsync -r $(printf '%q' "$WORKDIR") $(printf '%q' "$OUTPUT_BUCKET")"
fi
