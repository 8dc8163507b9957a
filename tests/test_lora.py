"""LoRA (--lora, peft), --load_in_4bit, --dtype and --attn_implementation in the training scripts."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from transformers import HfArgumentParser

from conftest import REPO_ROOT, run_without_editflow_hf
from editflow_hf import EditFlowForEditing
from editflow_hf.errors import EditFlowError
from editflow_hf.training.args import ModelArguments
from editflow_hf.training.checkpoint_io import load_model_for_training
from editflow_hf.training.lora import apply_lora, fully_trained_modules, lora_target_modules


def model_args(*flags: str) -> ModelArguments:
    (parsed,) = HfArgumentParser(ModelArguments).parse_args_into_dataclasses(args=["--model_name_or_path", "x", *flags])
    return parsed


def run_pt(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    flags = ["--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no", "--use_cpu", "True"]
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "pt.py"), *map(str, args), *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_pt_with_lora_trains_and_saves_a_merged_standalone_checkpoint(tiny_editflow_dir, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text("\n\n".join(f"to be or not to be, that is the question number {i}" for i in range(200)))
    out = tmp_path / "run"
    proc = run_pt(
        "--model_name_or_path", tiny_editflow_dir, "--dataset_args", data, "--max_length", "24", "--max_steps", "8",
        "--logging_steps", "4", "--learning_rate", "1e-2", "--per_device_train_batch_size", "4",
        "--x0_sampler", "masks[length:8]", "--eval_split_size", "0", "--output_dir", out,
        "--lora", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
        "--scheduler_cls", "CubicKappaScheduler", "--scheduler_kwargs", '{"a": 0.5, "b": 2}',
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    final = out / "checkpoint-final"
    config = json.loads((final / "config.json").read_text())
    assert (config["scheduler"], config["scheduler_kwargs"]) == ("CubicKappaScheduler", {"a": 0.5, "b": 2})
    # the whole recipe, as a full fine-tune records it (the converter left None for the coupling and tie-break)
    assert config["x0_sampler"] == "masks[length:8]" and config["tie_break"] is not None
    from editflow_hf.training.trainer import RECIPE_CONFIG_FIELDS

    assert {"x0_sampler", "tie_break", "scheduler", "scheduler_kwargs"} <= set(RECIPE_CONFIG_FIELDS)
    assert json.loads((final / "adapter" / "adapter_config.json").read_text())["r"] == 4
    with safe_open(final / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and not any("lora" in key or "base_layer" in key or "modules_to_save" in key for key in keys)

    start = EditFlowForEditing.from_pretrained(tiny_editflow_dir).state_dict()
    trained = EditFlowForEditing.from_pretrained(final).state_dict()
    assert start.keys() == trained.keys()
    changed = {name for name in start if not torch.equal(start[name], trained[name])}
    # Adapters merged into the backbone's attention and MLP weights and the cloned heads; the fresh rate head fully trained.
    assert "rate_head.bias" in changed and "sub_head.decoder.weight" in changed
    assert any(name.startswith("encoder.layers.") and name.endswith(".weight") for name in changed)
    # LayerNorms are neither adapted nor fully trained.
    assert not any("norm" in name for name in changed), sorted(changed)

    proc = run_without_editflow_hf(
        f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(final)!r}, trust_remote_code=True)
        out = model(torch.tensor([[model.config.bos_token_id, model.config.mask_token_id, 1037]]))
        assert out.ins_rate.shape == (1, 3)
        print("merged loads")
        """
    )
    assert "merged loads" in proc.stdout


def test_fresh_heads_are_fully_trained_and_pretrained_copies_adapted(tiny_editflow_dir, minilm_editflow_dir):
    mlm = EditFlowForEditing.from_pretrained(tiny_editflow_dir)
    assert mlm.config.token_head_init == "mlm_head"
    assert fully_trained_modules(mlm) == ["rate_head"]
    targets = lora_target_modules(mlm, "all-linear", ["rate_head"])
    assert "sub_head.decoder" in targets and "ins_head.dense" in targets and "rate_head" not in targets
    assert any(name.startswith("encoder.layers.0.") for name in targets)
    assert lora_target_modules(mlm, "Wqkv, Wo", ["rate_head"]) == ["Wqkv", "Wo"]

    headless = EditFlowForEditing.from_pretrained(minilm_editflow_dir)
    assert headless.config.token_head_init == "input_embeddings"
    assert fully_trained_modules(headless, "encoder.embeddings.LayerNorm") == [
        "rate_head", "sub_head", "ins_head", "encoder.embeddings.LayerNorm"
    ]  # fmt: skip
    peft_model = apply_lora(headless, model_args("--lora", "True", "--r", "2"))
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert any("sub_head" in name and "modules_to_save" in name for name in trainable)
    assert any("lora_A" in name for name in trainable)
    assert not any("encoder.encoder.layer.0.attention.self.query.base_layer" in name for name in trainable)


def test_load_in_4bit_without_bitsandbytes_or_gpu_is_one_line(tiny_editflow_dir, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text("to be or not to be\n")
    proc = run_pt(
        "--model_name_or_path", tiny_editflow_dir, "--dataset_args", data, "--max_steps", "1",
        "--output_dir", tmp_path / "run", "--lora", "True", "--load_in_4bit", "True",
    )  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "load_in_4bit" in line]
    assert len(lines) == 1 and ("bitsandbytes" in lines[0] or "CUDA" in lines[0]), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_dtype_and_attn_implementation_reach_from_pretrained(tiny_editflow_dir):
    model = load_model_for_training(str(tiny_editflow_dir), model_args("--dtype", "bfloat16", "--attn_implementation", "eager"))
    assert model.dtype == torch.bfloat16 and model.rate_head.weight.dtype == torch.bfloat16
    assert model.encoder.config._attn_implementation == "eager"
    default = load_model_for_training(str(tiny_editflow_dir), model_args())
    assert default.dtype == torch.float32
    with pytest.raises(EditFlowError, match="--dtype must be one of"):
        load_model_for_training(str(tiny_editflow_dir), model_args("--dtype", "fp8"))
    with pytest.raises(EditFlowError, match="--lora True"):
        load_model_for_training(str(tiny_editflow_dir), SimpleNamespace(**{**vars(model_args()), "load_in_4bit": True}))


def test_added_special_tokens_rows_are_trained_under_lora(tmp_path):
    from editflow_hf.conversion import convert
    from tiny_decoders import build_tiny_causal_lm

    folder = convert(str(build_tiny_causal_lm("qwen3", tmp_path / "source")), tmp_path / "editflow")
    model = EditFlowForEditing.from_pretrained(folder)
    assert model.config.token_head_init == "lm_head" and fully_trained_modules(model) == ["rate_head"]
    peft_model = apply_lora(model, model_args("--lora", "True", "--r", "2"))
    config = peft_model.peft_config["default"]
    added_ids = {model.config.mask_token_id, model.config.bos_token_id, model.config.pad_token_id}
    assert config.trainable_token_indices == {"encoder.embed_tokens": sorted(added_ids)}
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert any("trainable_tokens" in name for name in trainable)
    assert not any(name.endswith("embed_tokens.weight") for name in trainable)  # the rest of the embeddings stay frozen
