"""Turn a pretrained encoder or decoder LM into an Edit Flow checkpoint (`convert`; the command is
`editflow-convert`).

With a masked-LM head, the backbone is copied and the MLM prediction head is cloned into both token heads
(substitution and insertion), so the new model starts as the source MLM; the rate head starts fresh.
A headless encoder (e.g. a sentence-transformers BertModel) gets token heads whose vocabulary projection starts
from its input embeddings (as tied MLM heads do). A causal LM is switched to bidirectional attention (checked: a
later token must change an earlier position's hidden state, else it is refused), gets a mask token and a BOS when
its tokenizer has none (embeddings resized), and its LM head is cloned into both token heads; as the LM head predicts
the token after the position it reads, the substitution head reads position i - 1 for the token at i
(`config.sub_head_shift`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from .causal_lm import load_causal_lm
from .checkpoints.gate import check_model_folder, loading_errors
from .checkpoints.saving import atomic_folder, check_output_folder, tensor_bytes
from .errors import EditFlowError

# torch, transformers and the model classes are imported in the functions that use them (`_heavy`), so that
# `editflow-convert --help` starts without torch.

logger = logging.getLogger(__name__)


def _heavy() -> None:
    """Import torch, transformers and the model classes into this module's namespace (once)."""
    global torch, AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
    global MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES
    global EditFlowConfig, EditFlowGenerationConfig, EditFlowForEditing, get_scheduler, reserved_token_ids
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    from .modeling.configuration_editflow import EditFlowConfig
    from .modeling.generation_editflow import EditFlowGenerationConfig, reserved_token_ids
    from .modeling.modeling_editflow import EditFlowForEditing
    from .modeling.scheduling_editflow import get_scheduler
    from .registration import register

    register()  # an Edit Flow checkpoint given as the source is recognised (and refused) by its config

# Special tokens given to a decoder tokenizer that lacks them (the mask token is dLLM's for Llama/Qwen models).
ADDED_MASK_TOKEN = "<|mask|>"
ADDED_BOS_TOKEN = "<|bos|>"
ADDED_PAD_TOKEN = "<|pad|>"

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


def _is_causal_lm(config) -> bool:
    """Whether `config` describes a decoder LM (its checkpoint is a *ForCausalLM), which attends causally."""
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures)
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


@dataclass
class _Source:
    """What the Edit Flow model is built from: the backbone, and the pretrained token head to clone (an MLM head's
    (dense, norm, decoder, activation), a decoder's LM head, or the input embeddings of a headless encoder)."""

    backbone: torch.nn.Module
    head_type: str
    mlm_head: tuple | None = None
    projection: torch.nn.Module | None = None
    causal: bool = False


@contextlib.contextmanager
def _quiet_load_report():
    """Silence transformers' warnings (its MISSING/UNEXPECTED load report, tied-weight notes) and progress bars while
    the source loads (`_check_loaded` reports a bad load in one line), e.g. the masked-LM load of an encoder that may be headless: missing head weights are expected and handled here."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a refused load must end in one line, not a "Loading weights: 0it" bar above it
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _ignorable(key: str) -> bool:
    """Weights a backbone may leave unused without harm: a pooler (the MLM classes have none), position-id buffers."""
    return key.startswith("pooler.") or ".pooler." in key or key.endswith("position_ids")


def _check_loaded(model_name_or_path: str, model, info: dict, missing_allowed=lambda key: False) -> None:
    """Refuse a source whose weights do not load into its own architecture (the config of one model beside the
    weights of another): every backbone weight missing would be random, every weight of the file unused."""
    missing = [key for key in info.get("missing_keys", ()) if not missing_allowed(key) and not _ignorable(key)]
    unexpected = [key for key in info.get("unexpected_keys", ()) if not _ignorable(key)]
    if not missing and not unexpected:
        return
    parts = [f"{len(missing)} of its {model.config.model_type} weights are missing from the file (e.g. {missing[0]})"] if missing else []
    if unexpected:
        parts.append(f"{len(unexpected)} weights of the file are not in that architecture (e.g. {unexpected[0]})")
    raise EditFlowError(
        f"source model {model_name_or_path}: its weights do not load into its own architecture: {' and '.join(parts)}; "
        "config.json and the weights are of different models: restore the folder from the original model."
    )


def _load_encoder(model_name_or_path: str, trust_remote_code: bool, config) -> _Source:
    """An encoder with its MLM head, or headless (a checkpoint whose MLM head weights are missing is headless)."""
    try:
        with _quiet_load_report():
            mlm, info = AutoModelForMaskedLM.from_pretrained(
                model_name_or_path, output_loading_info=True, trust_remote_code=trust_remote_code
            )
    except ValueError:
        mlm, info = None, None
    if mlm is not None:
        prefix = mlm.base_model_prefix
        head_missing = [k for k in info["missing_keys"] if not k.startswith(prefix + ".")]
        _check_loaded(model_name_or_path, mlm, info, missing_allowed=lambda key: not key.startswith(prefix + "."))
        parts = _mlm_head_parts(mlm)
        if not head_missing and parts is not None:
            return _Source(mlm.base_model, "mlm", mlm_head=parts)
        if parts is None:
            logger.warning("Unknown masked-LM head layout for %s: the token heads start from the input embeddings.", config.model_type)
        else:
            logger.info("%s has no masked-LM head weights: the token heads start from its input embeddings.", model_name_or_path)
    with _quiet_load_report():
        encoder, info = AutoModel.from_pretrained(model_name_or_path, output_loading_info=True, trust_remote_code=trust_remote_code)
    _check_loaded(model_name_or_path, encoder, info)
    return _Source(encoder, "mlm", projection=encoder.get_input_embeddings())


def _load_causal_lm(model_name_or_path: str, trust_remote_code: bool, vocab_needed: int, lm=None) -> _Source:
    """A decoder LM (`lm` when already loaded, e.g. from a GGUF file), its embeddings (and LM head) resized to the
    tokenizer when tokens were added."""
    if lm is None:
        with _quiet_load_report():
            lm, info = AutoModelForCausalLM.from_pretrained(model_name_or_path, output_loading_info=True, trust_remote_code=trust_remote_code)
        _check_loaded(model_name_or_path, lm, info)
    old_size = lm.get_input_embeddings().num_embeddings
    if vocab_needed > old_size:
        lm.resize_token_embeddings(vocab_needed, mean_resizing=False)
        _start_new_rows_at_the_mean(lm, old_size)
    lm_head = lm.get_output_embeddings()
    if lm_head is None:
        raise EditFlowError(f"{model_name_or_path}: the causal LM has no output embeddings (LM head) to start the token heads from.")
    return _Source(lm.base_model, "linear", projection=lm_head, causal=True)


def _start_new_rows_at_the_mean(lm, old_size: int) -> None:
    """The embedding rows of the added tokens (mask, BOS, pad) set to the mean of the old rows, in the input
    embeddings and an untied LM head: the same on every machine. (transformers' `mean_resizing` draws them from a
    normal around that mean with the global generator, so one conversion command gave different models.)"""
    with torch.no_grad():
        for embedding in {id(m): m for m in (lm.get_input_embeddings(), lm.get_output_embeddings()) if m is not None}.values():
            weight = embedding.weight
            weight[old_size:] = weight[:old_size].mean(dim=0, dtype=torch.float32).to(weight.dtype)


def _check_bidirectional(model: EditFlowForEditing, name: str) -> None:
    """Refuse a backbone in which a position does not see the tokens after it (an Edit Flow position must, to
    decide an insertion or a substitution): change the last token of a short input and compare the first ones."""
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, 6), generator=generator)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % vocab
    was_training = model.training
    model.eval()
    with torch.no_grad():
        before = model.encoder(input_ids=ids, attention_mask=torch.ones_like(ids))[0]
        after = model.encoder(input_ids=changed, attention_mask=torch.ones_like(ids))[0]
    model.train(was_training)
    if torch.allclose(before[0, :-1], after[0, :-1]):
        raise EditFlowError(
            f"{name}: the {model.config.encoder_config.model_type} backbone still attends causally after conversion "
            "(a later token does not change earlier positions), so it cannot be an Edit Flow backbone; use a Llama, "
            "Qwen2 or Qwen3 family model or an encoder."
        )


def prepare_tokenizer(tokenizer, *, add_missing: bool = False) -> dict:
    """Give the tokenizer what Edit Flows need: a mask token, a BOS ([CLS] where there is no BOS), an EOS ([SEP]
    where there is none), a pad token (the EOS for an encoder), and a chat template where it has none.

    An encoder's tokenizer without a mask token is refused (its MLM never learnt one). With `add_missing` (decoder
    LMs, which have neither mask nor BOS as a rule, and often no pad or their EOS as pad) the missing mask / BOS /
    pad tokens are added as new special tokens; the caller resizes the embeddings. Returns the added tokens, e.g. `{"mask_token": "<|mask|>"}`."""
    added = {}
    if tokenizer.mask_token is None:
        if not add_missing:
            raise EditFlowError(
                f"The tokenizer {type(tokenizer).__name__} has no mask token: Edit Flows start from mask tokens. "
                "Use an encoder tokenizer with one (BERT, RoBERTa, ModernBERT) or add one first "
                "(tokenizer.add_special_tokens({'mask_token': '[MASK]'}) and resize the embeddings)."
            )
        added["mask_token"] = ADDED_MASK_TOKEN
    if tokenizer.bos_token is None:
        if tokenizer.cls_token is not None:
            tokenizer.bos_token = tokenizer.cls_token
        elif add_missing:
            added["bos_token"] = ADDED_BOS_TOKEN
        else:
            raise EditFlowError("The tokenizer has neither a BOS nor a CLS token to start sequences with; add a bos_token.")
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token
    pad_is_eos = tokenizer.pad_token is not None and tokenizer.pad_token_id == tokenizer.eos_token_id
    if tokenizer.pad_token is None or (add_missing and pad_is_eos):
        if add_missing:
            # Its own token, not the EOS (SmolLM2 pads with its EOS): generation suppresses the pad id, and the
            # EOS must stay available.
            added["pad_token"] = ADDED_PAD_TOKEN
        else:
            tokenizer.pad_token = tokenizer.eos_token
    if added:
        tokenizer.add_special_tokens(added)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return added


HEADLESS_HEAD_INITS = ("embeddings", "random")


def _copy_linear(target: torch.nn.Module, source: torch.nn.Module) -> None:
    """Copy a Linear/LayerNorm/Embedding's weight (and bias, zero where the source has none) into `target`."""
    target.weight.copy_(source.weight)
    if getattr(target, "bias", None) is not None:
        bias = getattr(source, "bias", None)
        if bias is None:
            target.bias.zero_()
        else:
            target.bias.copy_(bias)


# The seed of everything a conversion draws (the fresh rate head, a random token head): one command, one model.
CONVERSION_SEED = 0


def _seeded(convert_fn):
    """Run `convert_fn` with torch's CPU generator seeded by CONVERSION_SEED, and give the caller's generator back
    as it was."""

    @functools.wraps(convert_fn)
    def seeded(*args, **kwargs):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(CONVERSION_SEED)
            return convert_fn(*args, **kwargs)

    return seeded


def _check_request(model_name_or_path, output_dir, *, scheduler: str, headless_head_init: str, overwrite: bool) -> str:
    """Everything `convert` checks before it reads the source: the head init, the scheduler (its canonical name is
    returned), an output folder that is not the source and may be written."""
    if headless_head_init not in HEADLESS_HEAD_INITS:
        raise EditFlowError(f"headless_head_init must be one of {', '.join(HEADLESS_HEAD_INITS)}; got {headless_head_init!r}.")
    scheduler = get_scheduler(scheduler).name  # a bad name fails here, not at the first sampling
    source_path = Path(model_name_or_path).expanduser()
    if source_path.exists() and Path(output_dir).expanduser().resolve() == source_path.resolve():
        raise EditFlowError(f"--output_dir {output_dir} is the source model's folder: converting would replace it; choose another --output_dir.")
    check_output_folder(output_dir, overwrite=overwrite)
    return scheduler


def _read_source(model_name_or_path: str, *, trust_remote_code: bool, gguf_file: str | None) -> tuple[_Source, object, dict]:
    """The source model (`_Source`), its tokenizer and the special tokens added to it (`prepare_tokenizer`), from a
    folder or Hub id, or from a GGUF file inside the folder."""
    gguf_lm = None
    if gguf_file:
        # A GGUF file holds a decoder LM (llama.cpp's format) and its tokenizer: read both once (slow to parse).
        with loading_errors(Path(model_name_or_path) / gguf_file, what="source model"):
            gguf_lm, tokenizer = load_causal_lm(model_name_or_path, gguf_file=gguf_file)
        source_config, causal = gguf_lm.config, True
    else:
        check_model_folder(model_name_or_path, what="source model")
        with loading_errors(model_name_or_path, what="source model"):
            source_config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        causal = _is_causal_lm(source_config)
        with loading_errors(model_name_or_path, what="source model"):
            tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    if source_config.model_type == EditFlowConfig.model_type:
        raise EditFlowError(f"{model_name_or_path} is already an Edit Flow checkpoint; train or sample it directly.")
    added_tokens = prepare_tokenizer(tokenizer, add_missing=causal)
    with loading_errors(model_name_or_path, what="source model"):
        if causal:
            source = _load_causal_lm(model_name_or_path, trust_remote_code, len(tokenizer), lm=gguf_lm)
        else:
            source = _load_encoder(model_name_or_path, trust_remote_code, source_config)
    return source, tokenizer, added_tokens


def _head_options(source: _Source) -> dict:
    """The token heads' config fields for `source`: how they start (its MLM head, its LM head, its input embeddings,
    or at random) and the MLM head's layout."""
    if source.mlm_head is not None:
        token_head_init = "mlm_head"
    elif source.projection is None:
        token_head_init = "random"
    else:
        token_head_init = "lm_head" if source.causal else "input_embeddings"
    # A decoder's LM head reads position i to predict token i + 1: the substitution head reads i - 1 (Dream's shift).
    head_options = dict(head_type=source.head_type, token_head_init=token_head_init, sub_head_shift=token_head_init == "lm_head")
    if source.mlm_head is not None:
        dense, norm, decoder, activation = source.mlm_head
        head_options.update(
            head_activation=activation,
            head_dense_bias=dense.bias is not None,
            head_norm_bias=norm.bias is not None,
            head_norm_eps=norm.eps,
            head_decoder_bias=decoder.bias is not None,
        )
    elif source.causal:
        head_options.update(head_decoder_bias=source.projection.bias is not None)
    return head_options


def _build_model(source: _Source, tokenizer, added_tokens: dict, scheduler: str, model_name_or_path: str) -> "EditFlowForEditing":
    """The Edit Flow model of `source`: its backbone's weights, token heads started from its head or embeddings."""
    config = EditFlowConfig(
        encoder_config=source.backbone.config.to_dict(),
        bidirectional=source.causal,
        added_special_tokens=added_tokens or None,
        mask_token_id=tokenizer.mask_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        scheduler=scheduler,
        **_head_options(source),
    )
    if len(tokenizer) > config.vocab_size:
        raise EditFlowError(f"The tokenizer has {len(tokenizer)} tokens but the encoder only {config.vocab_size} embeddings.")
    model = EditFlowForEditing(config)

    missing, unexpected = model.encoder.load_state_dict(source.backbone.state_dict(), strict=False)
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise EditFlowError(f"Encoder weights do not match the rebuilt encoder (missing {missing}, unexpected {unexpected}).")
    _check_bidirectional(model, model_name_or_path)
    with torch.no_grad():
        for head in (model.sub_head, model.ins_head):
            if source.mlm_head is not None:
                dense, norm, decoder, _ = source.mlm_head
                for target, part in ((head.dense, dense), (head.norm, norm), (head.decoder, decoder)):
                    _copy_linear(target, part)
            elif source.projection is not None:
                # A decoder's LM head, or the input embeddings of a headless encoder (as a tied MLM head starts).
                _copy_linear(head.decoder, source.projection)
    return model


@_seeded
def convert(
    model_name_or_path: str,
    output_dir: str | Path,
    *,
    scheduler: str = "linear",
    trust_remote_code: bool = False,
    headless_head_init: str = "embeddings",
    overwrite: bool = False,
    gguf_file: str | None = None,
) -> Path:
    """Convert `model_name_or_path` (local folder or Hub id of an encoder or a decoder LM) into an Edit Flow
    checkpoint folder at `output_dir` (weights in safetensors, config with `auto_map`, remote code, tokenizer,
    generation_config.json with the default sampling settings and raw-text prompts).
    `headless_head_init`: the vocabulary projection of a headless encoder's token heads starts from its input
    embeddings (`"embeddings"`) or at random (`"random"`). Returns the folder.

    `gguf_file`: read the decoder from this GGUF file inside the folder `model_name_or_path` (dequantised, as
    transformers' `from_pretrained(folder, gguf_file=...)` reads it; needs `pip install 'editflow-hf[real]'`).

    A non-empty `output_dir` is refused unless `overwrite`; the folder is written beside it and renamed into
    place, so a failed conversion (a full disk...) leaves `output_dir` as it was."""
    _heavy()
    scheduler = _check_request(model_name_or_path, output_dir, scheduler=scheduler, headless_head_init=headless_head_init, overwrite=overwrite)
    source, tokenizer, added_tokens = _read_source(model_name_or_path, trust_remote_code=trust_remote_code, gguf_file=gguf_file)
    if headless_head_init == "random":
        source.projection = None
    model = _build_model(source, tokenizer, added_tokens, scheduler, model_name_or_path)

    output_dir = Path(output_dir)
    needed = tensor_bytes(model.state_dict()) + (16 << 20)  # the weights, and room for tokenizer and code files
    with atomic_folder(output_dir, overwrite=overwrite, needed=needed) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # default sampling settings, raw-text prompts; the tokenizer's special and reserved entries never written
        EditFlowGenerationConfig(suppress_tokens=reserved_token_ids(tokenizer)).save_pretrained(staging)
    return output_dir
