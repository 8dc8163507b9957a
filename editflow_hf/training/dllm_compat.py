"""dLLM's training flags that this project accepts for compatibility but implements one way only: the value that
matches this project's behaviour is accepted, the other is refused in one line naming the equivalent.

The full list of dLLM's and the seed's flags and what each does here is in docs/dllm-flags.md."""

# flag -> (accepted value, message for any other value)
SUPPORTED_VALUES = {
    "truncation": ("right", "--truncation filter is not supported: rows longer than --max_length are cut at the right "
                   "(--truncation right); raise --max_length to keep more."),
    "drop_tail": (False, "--drop_tail True is not supported: the last, shorter block of the token stream is kept "
                  "(Edit Flows train on any length); use --drop_tail False or omit it."),
    "mask_prompt_loss": (True, "--mask_prompt_loss False is not supported: sft keeps the prompt fixed; to train on the "
                         "prompt too, run pt.py on the formatted conversations."),
    "load_preprocessed_data": (False, "--load_preprocessed_data True is not needed: pass the saved-to-disk dataset "
                               "folder (datasets' save_to_disk) to --dataset_args; it is loaded as is."),
    "normalize_per_position": (True, "--normalize_per_position False is not supported: each sequence's loss is divided "
                               "by len(x1) (dLLM's default)."),
}  # fmt: skip


def check_dllm_values(arguments) -> None:
    """Raise ValueError (one line) for a dLLM flag set to the value this project does not implement."""
    for name, (accepted, message) in SUPPORTED_VALUES.items():
        value = getattr(arguments, name, accepted)
        if value != accepted:
            raise ValueError(message)


__all__ = ["SUPPORTED_VALUES", "check_dllm_values"]
