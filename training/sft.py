"""Supervised fine-tuning of an Edit Flow model on instruction data (alpaca rows or chat `messages` rows).

Each row becomes x1 = BOS + chat_template(conversation), truncated to --max_length; the prompt (everything up
to the generation prompt of the last assistant turn) stays fixed, only the answer is edited.

    python training/sft.py \
        --model_name_or_path .models/editflow/ModernBERT-large \
        --dataset_args "tatsu-lab/alpaca" --max_length 512 --num_train_epochs 10 --learning_rate 3e-4 \
        --per_device_train_batch_size 64 --per_device_eval_batch_size 64 \
        --x0_sampler "masks[length:64]" --output_dir .models/editflow/ModernBERT-large/alpaca

Also under `accelerate launch --config_file training/accelerate_configs/zero2.yaml` or `torchrun`. Every
transformers TrainingArguments flag works, plus --scheduler_cls, --scheduler_kwargs, --max_w, --time_epsilon,
--tie_break, --drop_incomplete_rows and --overwrite_output_dir. Bad flags and data are refused before any step;
an --output_dir holding an earlier run needs --resume_from_checkpoint (True: its newest complete checkpoint; auto:
that, or a fresh start when there is none, for jobs that may be requeued) or
--overwrite_output_dir. The model lands in <output_dir>/checkpoint-final (pushed there from with --push_to_hub).
"""

import sys

from editflow_hf.training.cli import train_from_cli

if __name__ == "__main__":
    sys.exit(train_from_cli("sft"))
