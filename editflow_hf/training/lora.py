"""Loading the model for training (`--dtype`, `--attn_implementation`, `--load_in_4bit`), LoRA adapters (`--lora`,
peft) and saving the final checkpoint as a complete standalone folder.

    model = load_model_for_training(model_path, model_args)      # EditFlowForEditing, or a PeftModel with --lora
    ...trainer.train()...
    save_final_checkpoint(trainer, final_dir, model_path, model_args)

With LoRA the adapters go on the backbone's Linear layers (and on token heads cloned from a pretrained head, so
that the substitution and insertion heads can part ways); the heads that start fresh (the rate head, and token
heads that are not copies of a pretrained head) are trained fully (`modules_to_save`), and so are the embedding
rows of special tokens the converter added (`trainable_token_indices`). checkpoint-final is the merged model
(loads like any other, without peft); the adapter is kept in checkpoint-final/adapter.
"""

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import EditFlowError
from ..modeling.modeling_editflow import EditFlowForEditing

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
PRETRAINED_HEAD_INITS = ("mlm_head", "lm_head")


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


def fully_trained_modules(model: EditFlowForEditing, extra: str | None = None) -> list[str]:
    """The heads that start fresh (the rate head; token heads that are not pretrained copies) plus `extra`."""
    names = ["rate_head"]
    if model.config.token_head_init not in PRETRAINED_HEAD_INITS:
        names += ["sub_head", "ins_head"]
    if extra:
        names += [name.strip() for name in extra.split(",") if name.strip() and name.strip() not in names]
    return names


def lora_target_modules(model: nn.Module, spec: str, fully_trained: list[str]) -> list[str]:
    """`all-linear`: every Linear outside the fully trained modules (full names); otherwise the comma-separated names
    (peft matches them as suffixes, e.g. `q_proj,v_proj`)."""
    if spec != "all-linear":
        return [name.strip() for name in spec.split(",") if name.strip()]
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not any(name == s or name.startswith(s + ".") for s in fully_trained)
    ]


def apply_lora(model: EditFlowForEditing, model_args):
    """Wrap `model` in a peft LoRA model as set by `--lora_r --lora_alpha --lora_dropout --target_modules --bias
    --modules_to_save`."""
    try:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    except ImportError:
        raise EditFlowError("--lora True needs peft: pip install 'editflow-hf[lora]' (or pip install peft).") from None
    fully_trained = fully_trained_modules(model, model_args.modules_to_save)
    targets = lora_target_modules(model, model_args.target_modules, fully_trained)
    if not targets:
        raise EditFlowError(f"--target_modules {model_args.target_modules}: no Linear layer to put LoRA adapters on.")
    added = model.config.added_special_tokens or {}
    trainable_tokens = None
    if added:
        # Embedding rows of the added mask/BOS tokens start at the mean embedding: let them learn what they mean.
        embeddings = model.get_input_embeddings()
        name = next(n for n, m in model.named_modules() if m is embeddings)
        ids = sorted({getattr(model.config, f"{kind}_id", None) for kind in added} - {None})
        trainable_tokens = {name: ids} if ids else None
    config = LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        bias=model_args.bias,
        target_modules=targets,
        modules_to_save=fully_trained,
        trainable_token_indices=trainable_tokens,
    )
    if model_args.load_in_4bit:
        model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d of %d parameters trainable (%.2f%%); fully trained: %s", trainable, total, 100 * trainable / total, fully_trained)
    return model


def load_model_for_training(model_path: str, model_args):
    """`EditFlowForEditing.from_pretrained` with `--dtype`, `--attn_implementation` and `--load_in_4bit`; wrapped
    with LoRA adapters when `--lora True`."""
    kwargs = {"dtype": _dtype(model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization = _quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    model = EditFlowForEditing.from_pretrained(model_path, **kwargs)
    return apply_lora(model, model_args) if model_args.lora else model


def save_final_checkpoint(trainer, final_dir: Path, model_path: str, model_args) -> None:
    """Save <output_dir>/checkpoint-final as a complete standalone Edit Flow folder. With LoRA: the adapter in
    checkpoint-final/adapter, and the merged model (base reloaded unquantised in --dtype, adapter merged) in
    checkpoint-final, so that it loads without peft."""
    if not model_args.lora:
        trainer.save_model(str(final_dir))
        return
    adapter_dir = Path(final_dir) / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    if not trainer.is_world_process_zero():
        return
    from peft import PeftModel

    trained_config = trainer.accelerator.unwrap_model(trainer.model).get_base_model().config
    base = EditFlowForEditing.from_pretrained(model_path, dtype=_dtype(model_args.dtype))
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    # The trainer wrote the training schedule into the config; the reloaded base still has the converter's.
    merged.config.scheduler = trained_config.scheduler
    merged.config.scheduler_kwargs = trained_config.scheduler_kwargs
    merged.save_pretrained(final_dir)
    trainer.processing_class.save_pretrained(final_dir)


__all__ = ["load_model_for_training", "save_final_checkpoint", "apply_lora", "fully_trained_modules", "lora_target_modules"]
