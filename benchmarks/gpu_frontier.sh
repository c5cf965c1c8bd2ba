#!/bin/bash
# The paper-sized rows of docs/RESULTS.md on one GPU: every finished row is kept.
#
# BreastMNIST: clean, SALM (the default), its random control and EM, seeds
# 0-2 (one process per seed, side by side on the one GPU), each protected copy
# tested on the whole zoo at full width with MedMNIST's 100-epoch recipe
# (`benchmarks/frontier.py --size=full`). PneumoniaMNIST: clean and SALM on
# ResNet-18 and the small CNN (8.6x the images).
#
# Run from the repo root on the GPU machine:
#   OUT=<folder for the JSON> DATA=<folder of the MedMNIST npz files> \
#     bash benchmarks/gpu_frontier.sh [seconds per process, default 540]
# BREAST, PNEUMONIA (variants) and ZOO, PNEUMONIA_ZOO (victims) override the lists.
# Missing Python packages (ml_collections, dm-pix on the device tool's image)
# are installed from ./.whl when that folder exists. Rows go to
# $ROWS/<dataset>_full_s<seed>.json (default /tmp/frontier_rows, which outlives
# $OUT between two calls on the same machine) and are resumed from there; at
# the end they and the logs ($OUT/logs.tgz) are copied to $OUT.
# Report: python -m benchmarks.frontier_report --json=...; the page: benchmarks/results_page.py
set -u
LIMIT=${1:-540}
: "${OUT:?set OUT}" "${DATA:?set DATA}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=/tmp/salm_jax_cache
ROWS=${ROWS:-/tmp/frontier_rows}
mkdir -p /tmp/logs "$ROWS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, \
'optax', optax.__version__, jax.devices())" || exit 1

ZOO=${ZOO:-small_cnn,resnet18,vgg16,vit_small,resnet50,densenet121}
BREAST=${BREAST:-clean,salm,random_salm,em}
PNEUMONIA=${PNEUMONIA-clean,salm}   # empty: no PneumoniaMNIST rows
PNEUMONIA_ZOO=${PNEUMONIA_ZOO:-resnet18,small_cnn}
run() {  # dataset seeds variants archs
  timeout "$LIMIT" python3 -m benchmarks.frontier --size=full --dataset="$1" --seeds="$2" \
    --variants="$3" --archs="$4" --data_dir="$DATA" --workdir=/tmp/frontier \
    --json_out="$ROWS/${1}_full_s${2//,/}.json" > "/tmp/logs/${1}_s${2//,/}.log" 2>&1
  echo "$1 seeds $2: exit $? after ${SECONDS} s"
}
for s in 0 1 2; do
  run breastmnist "$s" "$BREAST" "$ZOO" &
  [ -n "$PNEUMONIA" ] && run pneumoniamnist "$s" "$PNEUMONIA" "$PNEUMONIA_ZOO" &
done
wait
grep -h -E "AUC|Error|error" /tmp/logs/*.log | tail -n 150
cp "$ROWS"/*.json "$OUT"/
tar czf "$OUT/logs.tgz" -C /tmp logs
