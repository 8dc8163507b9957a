"""Every flag of the seed's commands and of dLLM's Edit Flow README / scripts either works here or is refused in
one line naming the equivalent (the list is docs/dllm-flags.md)."""

import shlex

import pytest
from transformers import HfArgumentParser

from editflow_hf.apps import chat
from editflow_hf.apps.sample import add_sample_arguments
from editflow_hf.errors import EditFlowError
from editflow_hf.sampling_flags import build_parser, check_common_args
from editflow_hf.training.args import DataArguments, EditFlowTrainingArguments, ModelArguments

SEED_PT = """--model_name_or_path .models/editflow/ModernBERT-large --dataset_args Trelis/tiny-shakespeare --text_field Text
    --insert_eos False --max_length 128 --num_train_epochs 10 --learning_rate 3e-4 --per_device_train_batch_size 64
    --per_device_eval_batch_size 64 --x0_sampler masks[length:64] --output_dir OUT"""
SEED_SFT = """--model_name_or_path .models/editflow/ModernBERT-large --dataset_args tatsu-lab/alpaca --max_length 512
    --num_train_epochs 10 --learning_rate 3e-4 --per_device_train_batch_size 64 --per_device_eval_batch_size 64
    --x0_sampler masks[length:64] --output_dir OUT"""
DLLM_STREAMING = """--model_name_or_path M --dataset_args dylanebert/openwebtext --text_field text --streaming True
    --max_length 512 --max_steps 20000 --learning_rate 1e-4 --per_device_train_batch_size 16
    --per_device_eval_batch_size 16 --eval_strategy no --x0_sampler masks[length:64] --output_dir OUT"""
# dLLM's ModelArguments / DataArguments / EditFlow training arguments, each with a value dLLM users pass.
DLLM_TRAINING_FLAGS = {
    "--dtype bfloat16": ("model", "dtype", "bfloat16"),
    "--attn_implementation sdpa": ("model", "attn_implementation", "sdpa"),
    "--load_in_4bit False": ("model", "load_in_4bit", False),
    "--lora True": ("model", "lora", True),
    "--target_modules all-linear": ("model", "target_modules", "all-linear"),
    "--r 16": ("model", "lora_r", 16),
    "--lora_r 8": ("model", "lora_r", 8),
    "--lora_alpha 32": ("model", "lora_alpha", 32),
    "--lora_dropout 0.1": ("model", "lora_dropout", 0.1),
    "--bias none": ("model", "bias", "none"),
    "--modules_to_save encoder.norm": ("model", "modules_to_save", "encoder.norm"),
    "--num_proc 8": ("data", "num_proc", 8),
    "--disable_caching True": ("data", "disable_caching", True),
    "--truncation right": ("data", "truncation", "right"),
    "--drop_tail False": ("data", "drop_tail", False),
    "--streaming True --max_steps 10": ("data", "streaming", True),
    "--insert_eos True": ("data", "insert_eos", True),
    "--mask_prompt_loss True": ("data", "mask_prompt_loss", True),
    "--load_preprocessed_data False": ("data", "load_preprocessed_data", False),
    "--time_epsilon 0.001": ("training", "time_epsilon", 0.001),
    "--normalize_per_position True": ("training", "normalize_per_position", True),
    "--max_w 20": ("training", "max_w", 20.0),
    "--scheduler_cls LinearKappaScheduler": ("training", "scheduler_cls", "LinearKappaScheduler"),
    "--scheduler_cls CubicKappaScheduler": ("training", "scheduler_cls", "CubicKappaScheduler"),
    "--scheduler_cls CosineKappaScheduler": ("training", "scheduler_cls", "CosineKappaScheduler"),
    "--x0_sampler masks[length:128]": ("training", "x0_sampler", "masks[length:128]"),
    "--eval_steps 0.1 --save_steps 0.1 --save_only_model True": ("training", "save_only_model", True),
    "--lr_scheduler_type cosine --warmup_ratio 0.1": ("training", "warmup_steps", 0.1),
}
DLLM_TRAINING_REFUSED = {
    "--truncation filter": "--truncation right",
    "--drop_tail True": "--drop_tail False",
    "--mask_prompt_loss False": "run pt.py",
    "--load_preprocessed_data True": "--dataset_args",
    "--normalize_per_position False": "len(x1)",
}


def parse_training(flags: str):
    parser = HfArgumentParser((ModelArguments, DataArguments, EditFlowTrainingArguments))
    model, data, training = parser.parse_args_into_dataclasses(args=shlex.split(flags))
    return {"model": model, "data": data, "training": training}


@pytest.mark.parametrize("command", [SEED_PT, SEED_SFT, DLLM_STREAMING], ids=["seed-pt", "seed-sft", "dllm-streaming"])
def test_seed_and_dllm_training_commands_parse(command):
    parsed = parse_training(command + " --use_cpu True")
    assert parsed["training"].x0_sampler == "masks[length:64]" and parsed["training"].output_dir == "OUT"


@pytest.mark.parametrize("flags", list(DLLM_TRAINING_FLAGS))
def test_dllm_training_flag_works(flags):
    group, name, expected = DLLM_TRAINING_FLAGS[flags]
    parsed = parse_training(f"--model_name_or_path M --dataset_args D --output_dir OUT --use_cpu True {flags}")
    assert getattr(parsed[group], name) == expected


@pytest.mark.parametrize("flags", list(DLLM_TRAINING_REFUSED))
def test_dllm_training_flag_refused_with_equivalent(flags):
    with pytest.raises(ValueError) as err:
        parse_training(f"--model_name_or_path M --dataset_args D --output_dir OUT --use_cpu True {flags}")
    message = str(err.value)
    assert "\n" not in message and DLLM_TRAINING_REFUSED[flags] in message


def parse_sample(flags: str):
    parser = build_parser()
    add_sample_arguments(parser)
    return parser.parse_args(shlex.split(f"--model_name_or_path . {flags}"))


@pytest.mark.parametrize(
    "flags, name, expected",
    [
        ("--tau 0.01 --mask_length 64 --seed 42 --make_gif", "make_gif", True),  # the seed's sampling command
        ('--prompt "Could you please write a poem for me?" --make_gif', "prompt", "Could you please write a poem for me?"),
        ("--make_gif True", "make_gif", True),
        ("--make_gif False", "make_gif", False),
        ("--temperature 0.0", "temperature", 0.0),
        ("--edit_prompt True", "edit_prompt", True),
        ("--edit_prompt", "edit_prompt", True),
        ("--visualize True", "show_trace", True),
        ("--visualize False", "show_trace", False),
        ("--time_independent True", "time_independent", True),
        ("--chat_template False", "chat_template", False),
        ("--chat_template True", "chat_template", True),
        ("--compile", "compile", True),
        ("", "compile", False),
    ],
)
def test_sampling_flags_work(flags, name, expected):
    args = parse_sample(flags)
    assert getattr(args, name) == expected
    check_common_args(args)


@pytest.mark.parametrize(
    "flags, equivalent", [("--time_epsilon 1e-3", "--tau"), ("--time_independent False", "w(t)")]
)
def test_dllm_sampling_flags_refused_with_equivalent(flags, equivalent):
    with pytest.raises(EditFlowError, match=equivalent.replace("(", r"\(").replace(")", r"\)")):
        check_common_args(parse_sample(flags))


def test_chat_template_false_is_plain_and_visualize_refused(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(chat, "run", lambda args: seen.setdefault("chat_template", args.chat_template) and 0 or 0)
    assert chat.main(["--model_name_or_path", ".", "--chat_template", "False"]) == 0 and seen["chat_template"] is False
    assert chat.main(["--model_name_or_path", ".", "--visualize", "True"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "editflow-sample --show_trace" in err[0]
