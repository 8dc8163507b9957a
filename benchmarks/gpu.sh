#!/usr/bin/env bash
# Every GPU figure in one call (for the device machine; ~5 minutes on an H100/H200):
#   the training step (ModernBERT-large config, bf16, batch 64 x 128, x0 = masks[length:64]) and
#   sampling throughput (tau 0.01, 64 masks, batch 1 and 64). JSON lines go to $OUT (or ./gpu-results).
# The device image has torch/transformers/accelerate but not rapidfuzz: prepare wheels here first with
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl rapidfuzz==3.14.6
# and carry `.whl` with the run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 benchmarks/train_step.py --device cuda 2>&1 | tee "$OUT/train_step.log"
python3 benchmarks/sample.py --device cuda 2>&1 | tee "$OUT/sample.log"
