"""The numbers a run is given, checked before anything is loaded or allocated: a batch size of 0, negative steps,
a NaN or infinite learning rate... each refused with one line naming the flag, the value and what it must be.

Left to themselves these fail late and in many ways: `--learning_rate nan` raises in the optimizer after the
model and the data are loaded, `--gradient_accumulation_steps 0` divides by zero, `--learning_rate inf` or
`--max_w nan` train to NaN weights and save them with exit status 0, `--max_steps -5` quietly trains for
`--num_train_epochs`. transformers checks a few of these (seed range, warm-up steps, logging steps), the rest here:

    check_numeric_flags(model_args, data_args, training_args)   # first thing after parsing

Every float flag must be finite (`--scheduler_kwargs` values too); the size-like and bounded flags follow
`TRAINING_RULES`. A flag missing from the arguments (another transformers version) is skipped.
"""

from dataclasses import fields, is_dataclass

from ..flags import MAX_LENGTH_RULE, NumberRule, check_finite, seed_rule


def _whole(value) -> bool:
    return float(value).is_integer()


TRAINING_RULES = (
    NumberRule("per_device_train_batch_size", lambda v: v >= 1, "at least 1 (examples per device and step)"),
    NumberRule("per_device_eval_batch_size", lambda v: v >= 1, "at least 1 (examples per device in evaluation)"),
    NumberRule("gradient_accumulation_steps", lambda v: v >= 1, "at least 1 (1 updates at every batch)"),
    NumberRule("eval_accumulation_steps", lambda v: v >= 1, "at least 1, or left unset", optional=True),
    NumberRule("max_steps", lambda v: v == -1 or v >= 1, "a positive number of steps, or -1 (the default) to train for --num_train_epochs"),
    NumberRule("learning_rate", lambda v: v >= 0, "a finite number >= 0, e.g. 5e-5"),
    NumberRule("weight_decay", lambda v: v >= 0, "a finite number >= 0 (0: no decay)"),
    NumberRule("adam_beta1", lambda v: 0 <= v < 1, "in [0, 1), e.g. 0.9"),
    NumberRule("adam_beta2", lambda v: 0 <= v < 1, "in [0, 1), e.g. 0.999"),
    NumberRule("adam_epsilon", lambda v: v > 0, "a finite number > 0, e.g. 1e-8"),
    NumberRule("max_grad_norm", lambda v: v >= 0, "a finite number >= 0 (0 turns clipping off)", optional=True),
    NumberRule("warmup_steps", lambda v: v >= 0, "a number of steps >= 0, or a fraction below 1 of the total"),
    NumberRule("logging_steps", lambda v: v > 0, "positive: every N steps, or a fraction below 1 of the total"),
    NumberRule("save_steps", lambda v: v > 0, "positive: every N steps, or a fraction below 1 of the total (--save_strategy no saves only checkpoint-final)"),
    NumberRule("eval_steps", lambda v: v > 0, "positive: every N steps, or a fraction below 1 of the total", optional=True),
    NumberRule("save_total_limit", lambda v: v >= 1, "a number of checkpoints >= 1, or left unset to keep all", optional=True),
    NumberRule("dataloader_num_workers", lambda v: v >= 0, "a number of worker processes >= 0 (0 loads in the main process)"),
    NumberRule("dataloader_prefetch_factor", lambda v: v >= 1, "at least 1 batch per worker", optional=True),
    NumberRule("torch_empty_cache_steps", lambda v: v >= 1, "at least 1, or left unset", optional=True),
    seed_rule("seed"),
    seed_rule("data_seed", optional=True),
    NumberRule("max_w", lambda v: v > 0, "a finite number > 0 (the clamp of w(t), e.g. 20)"),
    NumberRule("time_epsilon", lambda v: 0 <= v < 1, "in [0, 1)"),
    MAX_LENGTH_RULE,
    NumberRule("num_proc", lambda v: v >= 1, "at least 1 process, or left unset", optional=True),
    NumberRule("eval_split_size", lambda v: v >= 0 and (v < 1 or _whole(v)), "a fraction below 1 or a whole number of rows (0 holds out nothing)"),
)
LORA_RULES = (
    NumberRule("lora_r", lambda v: v >= 1, "at least 1 (the adapters' rank)"),
    NumberRule("lora_alpha", lambda v: v > 0, "a finite number > 0"),
    NumberRule("lora_dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
)
_MISSING = object()


def check_numeric_flags(*argument_sets) -> None:
    """Every number of the parsed argument dataclasses (`ModelArguments`, `DataArguments`,
    `EditFlowTrainingArguments`): finite, and within `TRAINING_RULES` (`LORA_RULES` with `--lora True`).
    EditFlowError (one line) at the first that is not."""
    values = {}
    for arguments in argument_sets:
        if is_dataclass(arguments):
            values.update({f.name: getattr(arguments, f.name, None) for f in fields(arguments)})
    for name in ("scheduler_kwargs", "lr_scheduler_kwargs"):
        check_finite(name, values.get(name))
    for name, value in values.items():
        check_finite(name, value)
    rules = TRAINING_RULES + (LORA_RULES if values.get("lora") else ())
    for rule in rules:
        value = values.get(rule.flag, _MISSING)
        if value is not _MISSING:
            rule.check(value)
    if values.get("max_steps", -1) == -1 and "num_train_epochs" in values:
        NumberRule("num_train_epochs", lambda v: v > 0, "positive (or set --max_steps)").check(values["num_train_epochs"])


__all__ = ["LORA_RULES", "TRAINING_RULES", "check_numeric_flags"]
