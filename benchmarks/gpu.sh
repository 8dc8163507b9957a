#!/usr/bin/env bash
# Every GPU figure in one call (for the device machine; ~10 minutes on an H100/H200):
#   the training step (ModernBERT-large config, bf16, batch 64 x 128, x0 = masks[length:64]),
#   sampling (tau 0.01, 64 masks; batch 1 s/seq and batch 64 seq/s, eager and compiled: torch.compile with CUDA
#   graphs over bucketed widths, its compilation reported apart as compile_s; alone:
#   python3 benchmarks/sample.py --device cuda --modes compiled), and a few pt.py steps under
#   ddp/fsdp/fsdp2/zero2/zero3.yaml (each checkpoint-final checked complete: FSDP and ZeRO-3 gather the full
#   state dict at the final save).
#   JSON lines go to $OUT (or ./gpu-results).
# The device image has torch/transformers/accelerate but not rapidfuzz: prepare wheels here first with
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl rapidfuzz==3.14.6
# and carry `.whl` with the run. For the zero2/zero3 runs also put DeepSpeed there (an sdist, 2 MB, builds without CUDA;
# its ops compile just in time) and the wheels of its requirements the image may lack:
#   python3 -m pip download --no-deps -d .whl deepspeed==0.19.8
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl hjson py-cpuinfo ninja msgpack einops
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
if compgen -G ".whl/deepspeed-*.tar.gz" >/dev/null; then
    DS_BUILD_OPS=0 python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/deepspeed-*.tar.gz \
        && export PYTHONPATH=/tmp/site || echo "deepspeed did not install: the zero2/zero3 runs are skipped"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 benchmarks/train_step.py --device cuda 2>&1 | tee "$OUT/train_step.log"
python3 benchmarks/sample.py --device cuda 2>&1 | tee "$OUT/sample.log"

# Scale-out smoke: a few pt.py steps of a tiny Qwen3 Edit Flow model under each accelerate config (one process),
# then check that checkpoint-final is a complete standalone folder. zero2/zero3 need deepspeed on the machine.
python3 benchmarks/scaleout_smoke.py prepare "$OUT/scaleout" 2>&1 | tail -1
python3 benchmarks/scaleout_smoke.py bidirectional "$OUT/scaleout/model" 2>&1 | tail -1 | tee "$OUT/bidirectional.log"
for config in ddp fsdp fsdp2 zero2 zero3; do
    if [[ "$config" == zero* ]] && ! python3 -c "import deepspeed" 2>/dev/null; then
        echo "{\"config\": \"$config\", \"skipped\": \"deepspeed is not installed\"}" | tee "$OUT/scaleout_$config.log"
        continue
    fi
    accelerate launch --config_file "training/accelerate_configs/$config.yaml" --num_processes 1 training/pt.py \
        --model_name_or_path "$OUT/scaleout/model" --dataset_args "$OUT/scaleout/text.txt" --max_length 64 \
        --max_steps 10 --logging_steps 2 --per_device_train_batch_size 8 --x0_sampler "masks[length:16]" \
        --eval_split_size 0 --save_strategy no --report_to none --output_dir "$OUT/scaleout/$config" \
        > "$OUT/scaleout_$config.log" 2>&1
    python3 benchmarks/scaleout_smoke.py check "$OUT/scaleout/$config/checkpoint-final" 2>&1 | tail -1 | tee -a "$OUT/scaleout_$config.log"
done
