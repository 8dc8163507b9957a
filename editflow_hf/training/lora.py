"""LoRA adapters for training (`--lora True`, peft): `apply_lora(model, model_args)`.

With LoRA the adapters go on the backbone's Linear layers (and on token heads cloned from a pretrained head, so
that the substitution and insertion heads can part ways); the heads that start fresh (the rate head, and token
heads that are not copies of a pretrained head) are trained fully (`modules_to_save`), and so are the embedding
rows of special tokens the converter added (`trainable_token_indices`). checkpoint-final is the merged model
(loads like any other, without peft; see `checkpoint_io.save_final_checkpoint`); the adapter is kept in
checkpoint-final/adapter.
"""

import logging

from torch import nn

from ..errors import EditFlowError
from ..modeling.modeling_editflow import EditFlowForEditing

logger = logging.getLogger(__name__)

PRETRAINED_HEAD_INITS = ("mlm_head", "lm_head")


def fully_trained_modules(model: EditFlowForEditing, extra: str | None = None) -> list[str]:
    """The heads that start fresh (the rate head; token heads that are not pretrained copies) plus `extra`."""
    names = ["rate_head"]
    if getattr(model.config, "time_conditioning", False):
        names.append("time_embedding")
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


__all__ = ["apply_lora", "fully_trained_modules", "lora_target_modules"]
