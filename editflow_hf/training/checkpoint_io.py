"""The model in and out of training: `load_model_for_training` (`--dtype`, `--attn_implementation`,
`--load_in_4bit`, `--lora`) and `save_final_checkpoint` (<output_dir>/checkpoint-final as a complete standalone
Edit Flow folder, also under FSDP, DeepSpeed ZeRO and LoRA).

    model = load_model_for_training(model_path, model_args)      # EditFlowForEditing, or a PeftModel with --lora
    ...trainer.train()...
    save_final_checkpoint(trainer, final_dir, model_path, model_args)
"""

from pathlib import Path

import torch

from ..checkpoints.folder_checks import check_checkpoint
from ..errors import EditFlowError
from ..modeling.modeling_editflow import EditFlowForEditing
from .lora import apply_lora
from .trainer import RECIPE_CONFIG_FIELDS

ADAPTER_DIR = "adapter"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def _dtype(name: str):
    if name not in DTYPES:
        raise EditFlowError(f"--dtype must be one of {', '.join(DTYPES)}; got {name!r}.")
    return DTYPES[name]


def _quantization_config(model_args):
    """bitsandbytes 4-bit NF4 for the backbone (heads kept in full precision), or one line saying what is missing."""
    if not model_args.load_in_4bit:
        return None
    if not model_args.lora:
        raise EditFlowError("--load_in_4bit True trains only adapters: add --lora True.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise EditFlowError("--load_in_4bit True needs bitsandbytes: pip install bitsandbytes (and a CUDA GPU).") from None
    if not torch.cuda.is_available():
        raise EditFlowError("--load_in_4bit True needs a CUDA GPU (bitsandbytes 4-bit); drop it to train in --dtype.")
    from transformers import BitsAndBytesConfig

    compute_dtype = _dtype(model_args.dtype)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16 if compute_dtype in ("auto", torch.float32) else compute_dtype,
        llm_int8_skip_modules=["rate_head", "sub_head", "ins_head"],
    )


def load_model_for_training(model_path: str, model_args, time_conditioning: bool = False):
    """`EditFlowForEditing.from_pretrained` with `--dtype`, `--attn_implementation` and `--load_in_4bit`, made to
    read t when `time_conditioning` (`--time_conditioning True`); wrapped with LoRA adapters when `--lora True`."""
    kwargs = {"dtype": _dtype(model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization = _quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    model = EditFlowForEditing.from_pretrained(model_path, **kwargs)
    if time_conditioning:
        model.enable_time_conditioning()
    return apply_lora(model, model_args) if model_args.lora else model


def check_final_save_possible(trainer) -> None:
    """Fail before training where checkpoint-final could not be written as a standalone folder: DeepSpeed ZeRO-3
    keeps each weight in pieces and gathers them for saving only when asked to."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        return
    zero = plugin.deepspeed_config.get("zero_optimization", {})
    if not zero.get("stage3_gather_16bit_weights_on_model_save", False):
        raise EditFlowError(
            "DeepSpeed ZeRO-3 would save checkpoint-final as shards that transformers cannot load: set "
            "`zero3_save_16bit_model: true` under deepspeed_config in the accelerate config (or use zero2.yaml / fsdp.yaml)."
        )


def _gather_full_state_dict_for_saving(trainer) -> None:
    """Under FSDP the Trainer writes a loadable folder only with a full state dict: switch to it for the final save
    (a sharded state dict suits intermediate checkpoints, not the model users load)."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        plugin.set_state_dict_type("FULL_STATE_DICT")


def save_final_checkpoint(trainer, final_dir: Path, model_path: str, model_args) -> None:
    """Save <output_dir>/checkpoint-final as a complete standalone Edit Flow folder (weights, config with auto_map,
    remote code, tokenizer), checked before returning. Under FSDP the full state dict is gathered. With LoRA: the
    adapter in checkpoint-final/adapter, and the merged model (base reloaded unquantised in --dtype, adapter merged)
    in checkpoint-final, so that it loads without peft."""
    _gather_full_state_dict_for_saving(trainer)
    if not model_args.lora:
        trainer.save_model(str(final_dir))
    else:
        _save_merged(trainer, Path(final_dir), model_path, model_args)
    if trainer.is_world_process_zero():
        check_checkpoint(final_dir)


def _save_merged(trainer, final_dir: Path, model_path: str, model_args) -> None:
    adapter_dir = final_dir / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    if not trainer.is_world_process_zero():
        return
    from peft import PeftModel

    trained_config = trainer.accelerator.unwrap_model(trainer.model).get_base_model().config
    base = EditFlowForEditing.from_pretrained(model_path, dtype=_dtype(model_args.dtype))
    if trained_config.time_conditioning:
        base.enable_time_conditioning()  # its trained weights come with the adapter (modules_to_save)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    # The trainer wrote the training recipe into the config; the reloaded base still has the converter's.
    for name in RECIPE_CONFIG_FIELDS:
        setattr(merged.config, name, getattr(trained_config, name))
    merged.save_pretrained(final_dir)
    trainer.processing_class.save_pretrained(final_dir)


__all__ = ["ADAPTER_DIR", "load_model_for_training", "check_final_save_possible", "save_final_checkpoint"]
