#!/bin/bash
# bench_pgd on one GPU: salm_jax's PGD round against the PyTorch loop on the same card.
#
# The round of configs/salm.py's ',full' variant (class-wise δ, 20 steps of
# 0.8/255, masks re-chosen at every step, top-k projection at the end) on the
# full-width ResNet-18 (gray and RGB) and the small CNN, at batch 128 (the CPU
# suite's size) and 1024 (enough images to fill a GPU). JSON to
# $OUT/b<batch>/pgd.json. Run from the repo root on the GPU machine:
#   OUT=<folder> bash benchmarks/gpu_pgd.sh [seconds per batch size, default 100]
set -u
LIMIT=${1:-100}
: "${OUT:?set OUT}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
for b in 128 1024; do
  timeout "$LIMIT" python3 -m benchmarks.bench_pgd --cases=resnet18:64:1,resnet18:64:3,small_cnn:16:1 \
    --variant=full --batch=$b --repeats=3 --torch_device=cuda --torch_threads="$(nproc)" --matmul_n=8192 \
    --results_dir="$OUT/b$b"
done
