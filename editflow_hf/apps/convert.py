"""Turn a pretrained encoder (ModernBERT, BERT, RoBERTa, DistilBERT, ...) into an Edit Flow checkpoint.

    editflow-convert --model_name_or_path answerdotai/ModernBERT-large --output_dir .models/editflow/ModernBERT-large

With a masked-LM head, the backbone is copied and the MLM prediction head is cloned into both token heads
(substitution and insertion), so the new model starts as the source MLM; the rate head starts fresh.
A headless encoder (e.g. a sentence-transformers BertModel) gets fresh token heads.
"""

import argparse
import logging
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from ..errors import EditFlowError, run_cli
from ..modeling.configuration_editflow import EditFlowConfig
from ..modeling.modeling_editflow import EditFlowForEditing

logger = logging.getLogger(__name__)

# Line-oriented chat format for encoders whose tokenizer ships no chat template.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}{% if eos_token %}{{ eos_token }}{% endif %}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _mlm_head_parts(mlm) -> tuple | None:
    """(dense, layer_norm, decoder, activation name) of a masked-LM head, or None for an unknown layout."""
    config = mlm.config
    if hasattr(mlm, "head") and hasattr(mlm, "decoder") and hasattr(mlm.head, "norm"):  # ModernBERT
        return mlm.head.dense, mlm.head.norm, mlm.decoder, config.classifier_activation
    predictions = getattr(getattr(mlm, "cls", None), "predictions", None)
    if predictions is not None and hasattr(predictions, "transform"):  # BERT and its descendants
        act = config.hidden_act if isinstance(config.hidden_act, str) else "gelu"
        return predictions.transform.dense, predictions.transform.LayerNorm, predictions.decoder, act
    lm_head = getattr(mlm, "lm_head", None)
    if lm_head is not None and hasattr(lm_head, "layer_norm") and hasattr(lm_head, "dense"):  # RoBERTa family
        return lm_head.dense, lm_head.layer_norm, lm_head.decoder, "gelu"
    if hasattr(mlm, "vocab_transform"):  # DistilBERT
        return mlm.vocab_transform, mlm.vocab_layer_norm, mlm.vocab_projector, config.activation
    return None


def _load_source(model_name_or_path: str, trust_remote_code: bool):
    """The source as (encoder, MLM head parts or None). A checkpoint whose MLM head weights are missing is headless."""
    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    if config.model_type == EditFlowConfig.model_type:
        raise EditFlowError(f"{model_name_or_path} is already an Edit Flow checkpoint; train or sample it directly.")
    try:
        mlm, info = AutoModelForMaskedLM.from_pretrained(
            model_name_or_path, output_loading_info=True, trust_remote_code=trust_remote_code
        )
    except ValueError:
        mlm, info = None, None
    if mlm is not None:
        prefix = mlm.base_model_prefix
        head_missing = [k for k in info["missing_keys"] if not k.startswith(prefix + ".")]
        parts = _mlm_head_parts(mlm)
        if not head_missing and parts is not None:
            return mlm.base_model, parts
        if parts is None:
            logger.warning("Unknown masked-LM head layout for %s: the token heads start fresh.", config.model_type)
        else:
            logger.info("%s has no masked-LM head weights: the token heads start fresh.", model_name_or_path)
    encoder = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    return encoder, None


def prepare_tokenizer(tokenizer):
    """Give the tokenizer what Edit Flows need: a mask token (required), a BOS ([CLS] where there is no BOS),
    an EOS ([SEP] where there is none), a pad token, and a chat template where it has none."""
    if tokenizer.mask_token is None:
        raise EditFlowError(
            f"The tokenizer {type(tokenizer).__name__} has no mask token: Edit Flows start from mask tokens. "
            "Use an encoder tokenizer with one (BERT, RoBERTa, ModernBERT) or add one first "
            "(tokenizer.add_special_tokens({'mask_token': '[MASK]'}) and resize the embeddings)."
        )
    if tokenizer.bos_token is None:
        if tokenizer.cls_token is None:
            raise EditFlowError("The tokenizer has neither a BOS nor a CLS token to start sequences with; add a bos_token.")
        tokenizer.bos_token = tokenizer.cls_token
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def convert(
    model_name_or_path: str,
    output_dir: str | Path,
    *,
    scheduler: str = "linear",
    trust_remote_code: bool = False,
) -> Path:
    """Convert `model_name_or_path` (local folder or Hub id of an encoder) into an Edit Flow checkpoint folder
    at `output_dir` (weights in safetensors, config with `auto_map`, remote code, tokenizer). Returns the folder."""
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code))
    encoder, head_parts = _load_source(model_name_or_path, trust_remote_code)
    encoder_config = encoder.config

    head_options = {}
    if head_parts is not None:
        dense, norm, decoder, activation = head_parts
        head_options = dict(
            head_activation=activation,
            head_dense_bias=dense.bias is not None,
            head_norm_bias=norm.bias is not None,
            head_norm_eps=norm.eps,
            head_decoder_bias=decoder.bias is not None,
        )
    config = EditFlowConfig(
        encoder_config=encoder_config.to_dict(),
        mask_token_id=tokenizer.mask_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        scheduler=scheduler,
        **head_options,
    )
    if len(tokenizer) > config.vocab_size:
        raise EditFlowError(f"The tokenizer has {len(tokenizer)} tokens but the encoder only {config.vocab_size} embeddings.")
    model = EditFlowForEditing(config)

    missing, unexpected = model.encoder.load_state_dict(encoder.state_dict(), strict=False)
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise EditFlowError(f"Encoder weights do not match the rebuilt encoder (missing {missing}, unexpected {unexpected}).")
    if head_parts is not None:
        dense, norm, decoder, _ = head_parts
        with torch.no_grad():
            for head in (model.sub_head, model.ins_head):
                for target, source in ((head.dense, dense), (head.norm, norm), (head.decoder, decoder)):
                    target.weight.copy_(source.weight)
                    if target.bias is not None:
                        target.bias.copy_(source.bias)

    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="editflow-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="Local folder or Hub id of the source encoder.")
    parser.add_argument("--output_dir", required=True, help="Where to write the Edit Flow checkpoint.")
    parser.add_argument("--scheduler", default="linear", help="Kappa scheduler recorded in the config (linear, cubic, cosine).")
    parser.add_argument("--trust_remote_code", action="store_true", help="Allow remote code of the source checkpoint.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        out = convert(args.model_name_or_path, args.output_dir, scheduler=args.scheduler, trust_remote_code=args.trust_remote_code)
        print(f"Edit Flow checkpoint written to {out}")
        return 0

    return run_cli(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())
