"""The file names of a model folder, and the training arguments a run records beside its checkpoint-final."""

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PIPELINE_TASK = "editflow-generation"
# What a training run records beside its checkpoint-final (and the model card shows): the arguments that decide
# what the model learned, in the card's order.
TRAINING_ARGS_FILE = "training_args.json"
RECORDED_TRAINING_ARGS = (
    "model_name_or_path", "dataset_args", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "max_length", "x0_sampler", "scheduler_cls", "scheduler_kwargs", "max_w",
    "time_epsilon", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "insert_eos", "group_texts",
    "text_field", "bf16", "seed", "path", "lambda_prop", "time_conditioning", "prefix_conditioning", "prefix_drop_prob",
)  # fmt: skip
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
