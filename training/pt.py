"""Pretrain an Edit Flow model on raw text: documents are tokenized and cut into blocks BOS + (max_length - 1) tokens.

    python training/pt.py \
        --model_name_or_path .models/editflow/ModernBERT-large \
        --dataset_args "Trelis/tiny-shakespeare" --text_field "Text" --insert_eos False \
        --max_length 128 --num_train_epochs 10 --learning_rate 3e-4 \
        --per_device_train_batch_size 64 --per_device_eval_batch_size 64 \
        --x0_sampler "masks[length:64]" --output_dir .models/editflow/ModernBERT-large/tiny-shakespeare

Also under `accelerate launch --config_file training/accelerate_configs/ddp.yaml` or `torchrun`. Every
transformers TrainingArguments flag works, plus --scheduler_cls, --scheduler_kwargs, --max_w, --time_epsilon,
--tie_break, --drop_incomplete_rows and --overwrite_output_dir. Bad flags and data are refused before any step;
an --output_dir holding an earlier run needs --resume_from_checkpoint (True: its newest complete checkpoint; auto:
that, or a fresh start when there is none, for jobs that may be requeued) or
--overwrite_output_dir. The model lands in <output_dir>/checkpoint-final (pushed there from with --push_to_hub).
"""

import sys

from editflow_hf.training.cli import train_from_cli

if __name__ == "__main__":
    sys.exit(train_from_cli("pt"))
