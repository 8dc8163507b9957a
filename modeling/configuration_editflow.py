"""Configuration of an Edit Flow model: an encoder backbone plus rate and token heads."""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

HEAD_TYPES = ("mlm", "linear")


class EditFlowConfig(PreTrainedConfig):
    r"""
    Configuration for [`EditFlowForEditing`]: any Hugging Face encoder (ModernBERT, BERT, RoBERTa,
    DistilBERT, ...) or decoder LM made bidirectional (Llama, Qwen2, Qwen3, ...) turned into an Edit Flow
    model (Havasi et al. 2025, arXiv 2506.09018).

    Args:
        encoder_config (`dict` or `PreTrainedConfig`, *optional*):
            Configuration of the backbone, built with `AutoModel.from_config`. A dict must carry its
            `model_type`. Defaults to a ModernBERT config.
        bidirectional (`bool`, *optional*, defaults to `False`):
            Whether the backbone is a causal (decoder) model switched to full attention: the model then sets
            `is_causal = False` on the backbone's config (transformers' mask functions build a bidirectional
            padding mask) and on its attention modules (the flag sdpa and flash attention read), so that every
            position sees the tokens after it. Encoders attend bidirectionally already and leave it `False`.
        added_special_tokens (`dict`, *optional*):
            Special tokens the converter added to the source tokenizer (e.g. `{"mask_token": "<|mask|>"}`),
            whose embeddings were appended to the source's; recorded for the model card and reproducibility.
        head_type (`str`, *optional*, defaults to `"mlm"`):
            Shape of the two token heads: `"mlm"` is dense -> activation -> LayerNorm -> vocabulary projection
            (the masked-LM heads of BERT, RoBERTa, DistilBERT, ModernBERT); `"linear"` is the vocabulary
            projection alone (the LM head of a decoder, whose backbone ends with its own final norm).
        mask_token_id (`int`, *optional*):
            Id of the mask token that fills x0 (`BOS + N masks`) and the slots to infill.
        bos_token_id (`int`, *optional*):
            Id of the token that starts every sequence and is never edited ([CLS] for BERT-style tokenizers).
        pad_token_id (`int`, *optional*):
            Id used to pad rows of a batch.
        eos_token_id (`int`, *optional*):
            Id of the end-of-text token, if the tokenizer has one ([SEP] for BERT-style tokenizers).
        token_head_init (`str`, *optional*):
            Where the token heads started at conversion: `"mlm_head"` (cloned from the source's masked-LM head),
            `"lm_head"` (a decoder's LM head or tied embeddings), `"input_embeddings"` (a headless encoder: vocabulary
            projection from its input embeddings, transform fresh) or `"random"`. LoRA training fully trains the
            heads that are not pretrained copies.
        sub_head_shift (`bool`, *optional*, defaults to `False`):
            Whether the substitution head at position i reads the last hidden state of position i - 1 instead of i
            (BOS at 0 is never substituted), as Dream and DiffuLLaMA read a converted causal LM: its LM head
            predicts the token after the position it reads, so without the shift a converted decoder starts by
            predicting token i + 1 at a mask at i. The insertion head at i (the token inserted after i) reads i
            either way. `editflow-convert` sets it for decoders whose token heads start from the LM head.
        head_activation (`str`, *optional*, defaults to `"gelu"`):
            Activation of the token heads' transform (`head_type="mlm"`), as in the source MLM head.
        head_dense_bias (`bool`, *optional*, defaults to `True`):
            Whether the token heads' dense transform has a bias.
        head_norm_bias (`bool`, *optional*, defaults to `True`):
            Whether the token heads' LayerNorm has a bias.
        head_norm_eps (`float`, *optional*, defaults to 1e-12):
            Epsilon of the token heads' LayerNorm.
        head_decoder_bias (`bool`, *optional*, defaults to `True`):
            Whether the token heads' vocabulary projection has a bias.
        rate_head_bias_init (`float`, *optional*, defaults to -2.0):
            Initial bias of the rate head, before the softplus: rates start small (softplus(-2) = 0.13)
            so that a fresh model does not fire every edit at once.
        scheduler (`str`, *optional*, defaults to `"linear"`):
            Name of the kappa scheduler the model was trained with (`linear`, `cubic`, `cosine`, `power`, or dLLM's
            `LinearKappaScheduler`, `CubicKappaScheduler`, `CosineKappaScheduler`); the sampler uses the same one.
        scheduler_kwargs (`dict`, *optional*):
            Arguments of the scheduler, e.g. `{"a": 2.0, "b": 0.5}` for `cubic`.
        x0_sampler (`str`, *optional*):
            The x0 coupling the model was trained with (the `--x0_sampler` spec, e.g. `"masks[length:64]"` or
            `"0.5*masks[length:64] + 0.5*corrupt[p:0.2]"`); None when unknown (e.g. freshly converted). A spec
            without `corrupt` means the model only ever turned masks into text: the pipeline warns when such a
            model is asked to edit (`edit_prompt=True`).
        tie_break (`str` or `dict`, *optional*):
            The alignment tie-break the model was trained with, for evaluation: one of `left`, `right`, `spread`,
            `random`, or one per regime (`{"sft": "right", "pt": "left"}`, what training's `auto` resolves to).
        time_conditioning (`bool`, *optional*, defaults to `False`):
            Whether the model reads the flow time t, as the paper's models do: a learned embedding of t
            (`EditFlowTimeEmbedding`, zero-initialised) is added to the encoder's last hidden states before the rate
            and token heads (the encoder itself never reads t), and samplers must pass t and recompute every row at
            every step (no reuse of the rates of unchanged rows).
        time_embedding_dim (`int`, *optional*, defaults to 64):
            Number of sinusoidal features of t fed to the time embedding's MLP.
        path (`str`, *optional*, defaults to `"factorized"`):
            The probability path the model was trained on: `"factorized"` (each column switches independently) or
            `"localized"` (the paper's appendix C.1: edits propagate to neighbouring columns at rate `lambda_prop`).
            Sampling is the same; recorded for reproducibility. (The held-out bound of `editflow-eval` is computed
            on the factorized path for every model: a valid bound for any model, and comparable across models.)
        lambda_prop (`float`, *optional*, defaults to 0.0):
            Propagation rate of the localized path (expected propagations per unit time per side).
        prefix_conditioning (`dict`, *optional*):
            Set when the model was pretrained with random prefixes as prompts (`{"drop_prob": 0.1}`: a prefix of
            fraction c^3, c ~ U[0, 1], dropped for that share of sequences), i.e. it knows both conditional and
            unconditional generation and supports classifier-free guidance (`guidance_scale`).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of fresh heads.
    """

    model_type = "editflow"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="modernbert")}

    encoder_config: dict | PreTrainedConfig | None = None
    bidirectional: bool = False
    added_special_tokens: dict | None = None
    head_type: str = "mlm"
    token_head_init: str | None = None
    sub_head_shift: bool = False
    mask_token_id: int | None = None
    bos_token_id: int | None = None
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    head_activation: str = "gelu"
    head_dense_bias: bool = True
    head_norm_bias: bool = True
    head_norm_eps: float = 1e-12
    head_decoder_bias: bool = True
    rate_head_bias_init: float = -2.0
    scheduler: str = "linear"
    scheduler_kwargs: dict | None = None
    x0_sampler: str | None = None
    tie_break: str | dict | None = None
    time_conditioning: bool = False
    time_embedding_dim: int = 64
    path: str = "factorized"
    lambda_prop: float = 0.0
    prefix_conditioning: dict | None = None
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.scheduler_kwargs is None:
            self.scheduler_kwargs = {}
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {', '.join(HEAD_TYPES)}; got {self.head_type!r}.")
        # Hub pipelines: `pipeline(model=repo, trust_remote_code=True)` finds its class here.
        if not getattr(self, "custom_pipelines", None):
            self.custom_pipelines = {
                "editflow-generation": {
                    "impl": "pipeline_editflow.EditFlowGenerationPipeline",
                    "pt": ["AutoModel"],
                    "tf": [],
                    "type": "text",
                }
            }

    @property
    def max_sequence_length(self) -> int:
        """The longest x_t the model accepts (BOS included): the encoder's positions (see
        [`encoder_max_positions`]), 512 when its config does not say."""
        return encoder_max_positions(self.encoder_config) or 512

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    @property
    def vocab_size(self) -> int:
        """The encoder's vocabulary size (shared by both token heads); setting it sets the encoder's."""
        return self.encoder_config.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        # `resize_token_embeddings` writes the new size here.
        self.encoder_config.vocab_size = value


# save_pretrained writes `auto_map` for the classes registered for an Auto class: checkpoints then load anywhere.
EditFlowConfig.register_for_auto_class()


def encoder_max_positions(encoder_config) -> int | None:
    """The longest sequence an encoder config can embed: its `max_position_embeddings`, less RoBERTa's offset (its
    positions start after the padding index, so `padding_idx + 1` table rows are never a position); None when the
    config does not say. The one position rule of the training checks, the pipeline and `generate()`."""
    positions = getattr(encoder_config, "max_position_embeddings", None)
    if not positions:
        return None
    model_type = str(getattr(encoder_config, "model_type", ""))
    if "roberta" in model_type or model_type == "camembert":
        positions -= (getattr(encoder_config, "pad_token_id", None) or 0) + 1
    return int(positions)


__all__ = ["EditFlowConfig", "encoder_max_positions"]
