"""Edit Flow model: an encoder that predicts, at every position of x_t, three edit rates and two
token distributions (Havasi et al. 2025, "Flow Matching with Edit Operations", arXiv 2506.09018).

At position i of x_t the model outputs
    sub_rate[i], del_rate[i]  - rates of substituting / deleting token i (0 at BOS and padding),
    ins_rate[i]               - rate of inserting a token in the gap right after token i,
    sub_logits[i], ins_logits[i] - distributions of the substituted / inserted token.
Rates are non-negative (softplus) and per unit of the scheduler weight w(t): the actual CTMC rate is
w(t) * rate, so a time-independent network serves every t. With `config.time_conditioning` the network also
reads t (the paper's models do): a learned embedding of t is added to the encoder's last hidden states before the
heads (the encoder itself never reads t).
"""

import math

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import ModelOutput

from .compiling_editflow import CompiledEditRates
from .configuration_editflow import EditFlowConfig
from .generation_editflow import (
    HUB_DOWNLOAD_KWARGS,
    EditFlowDecode,
    EditFlowGenerateOutput,
    EditFlowGenerationConfig,
    generate_inputs,
)


@dataclass
class EditFlowOutput(ModelOutput):
    r"""
    Output of [`EditFlowForEditing`].

    Args:
        sub_rate (`torch.FloatTensor` of shape `(batch_size, sequence_length)`):
            Substitution rate per position (float32; 0 at BOS and padding).
        del_rate (`torch.FloatTensor` of shape `(batch_size, sequence_length)`):
            Deletion rate per position (float32; 0 at BOS and padding).
        ins_rate (`torch.FloatTensor` of shape `(batch_size, sequence_length)`):
            Rate of an insertion in the gap after each position (float32; 0 at padding).
        sub_logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)` or `(num_rows, vocab_size)`):
            Logits of the substituted token; only the rows selected by `logits_at` / `sub_logits_at` when given.
        ins_logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)` or `(num_rows, vocab_size)`):
            Logits of the inserted token; only the rows selected by `logits_at` / `ins_logits_at` when given.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            The heads' input: the encoder's last hidden states, plus the time embedding of `t` at every position
            for a time-conditioned model (`config.time_conditioning`).
    """

    sub_rate: torch.FloatTensor | None = None
    del_rate: torch.FloatTensor | None = None
    ins_rate: torch.FloatTensor | None = None
    sub_logits: torch.FloatTensor | None = None
    ins_logits: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


class EditFlowTokenHead(nn.Module):
    """A token distribution per position. `config.head_type == "mlm"`: dense -> activation -> LayerNorm ->
    vocabulary projection, the shape of BERT, RoBERTa, DistilBERT and ModernBERT masked-LM heads, so a converted
    checkpoint starts as the source MLM head. `"linear"`: the vocabulary projection alone, the shape of a
    decoder's LM head (its backbone ends with the final norm), so a converted decoder starts as the source LM."""

    def __init__(self, config: EditFlowConfig):
        super().__init__()
        hidden_size = config.hidden_size
        if config.head_type == "mlm":
            self.dense = nn.Linear(hidden_size, hidden_size, bias=config.head_dense_bias)
            self.act = ACT2FN[config.head_activation]
            self.norm = nn.LayerNorm(hidden_size, eps=config.head_norm_eps, bias=config.head_norm_bias)
        self.decoder = nn.Linear(hidden_size, config.vocab_size, bias=config.head_decoder_bias)

    def transform(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The input of the vocabulary projection (`decoder`): dense -> activation -> LayerNorm, or the states."""
        if hasattr(self, "dense"):
            hidden_states = self.norm(self.act(self.dense(hidden_states)))
        return hidden_states

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))

    def project_rows(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`self(hidden_states)` for a few rows `[m, H]` (the fired positions of a sampling step).

        On CPU the vocabulary projection x W^T + b is computed as addmm(b, x, W^T) from a row-major copy of W^T: for
        the few rows of a step, torch's CPU `linear` runs 1.4-2.8x slower (one row: 0.13 vs 0.07 ms at 30522 x 32,
        4.8 vs 1.7 ms at MiniLM's 30522 x 384, 14 vs 10 ms at ModernBERT-large's 50368 x 1024). The head keeps the
        copy (the decoder's size again; never saved, copied or pickled) and makes it again only after the weight
        changes (training, loading, `.half()`). The logits equal `linear`'s to float rounding (another summation
        order). Elsewhere (GPU, more than 16 rows, a decoder that is not a plain `nn.Linear`), `self(hidden_states)`."""
        decoder = self.decoder
        if hidden_states.device.type != "cpu" or not isinstance(decoder, nn.Linear) or hidden_states.shape[0] > 16:
            return self(hidden_states)  # many rows (a batch): measured up to 16, beyond that `linear` stays
        weight = decoder.weight
        state = (id(weight), weight._version, weight.data_ptr(), weight.dtype)  # changed by training, `.data =`...
        cached = self.__dict__.get("_transposed_decoder")
        if cached is None or cached[0] != state:
            with torch.no_grad():
                cached = self._transposed_decoder = (state, weight.detach().t().contiguous())
        x = self.transform(hidden_states)
        return x @ cached[1] if decoder.bias is None else torch.addmm(decoder.bias, x, cached[1])

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_transposed_decoder", None)  # derived from the weight: a copy or an unpickled head makes its own
        return state


class EditFlowRateHead(nn.Linear):
    """Linear map to the three rates (sub, del, ins) of each position, made non-negative by a softplus."""

    def __init__(self, config: EditFlowConfig):
        super().__init__(config.hidden_size, 3)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.softplus(super().forward(hidden_states).float())


class EditFlowTimeEmbedding(nn.Module):
    """A learned embedding of the flow time, added to the encoder's last hidden state at every position before the
    rate and token heads (`config.time_conditioning`):

        e(t) = W2 silu(W1 phi(t) + b1) + b2,  phi(t) = [cos(1000 t f_k), sin(1000 t f_k)]_k,
        f_k = 10000^(-k / (d/2)), k = 0 .. d/2 - 1,  d = `config.time_embedding_dim`

    (the sinusoidal timestep features of diffusion models, on t in [0, 1] scaled by 1000). W2 and b2 start at zero
    (`_init_weights`), so a model given time conditioning computes exactly what it computed without it until
    training moves them. The encoder never reads t: added to its input embeddings (the same vector at every
    position, through BERT's embedding LayerNorm) the embedding grew to twice a token embedding's norm in training
    and the encoder's states collapsed to one vector; after the encoder it can shift the heads' input but never hide
    the tokens from the encoder.
    """

    def __init__(self, config):
        super().__init__()
        self.dim = config.time_embedding_dim
        self.hidden = nn.Linear(self.dim, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)
        self.output.zero_init = True  # read by `_init_weights`

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        angles = 1000.0 * t.float()[:, None] * freqs[None, :]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).to(self.hidden.weight.dtype)
        return self.output(F.silu(self.hidden(features)))


def make_bidirectional(backbone: nn.Module) -> None:
    """Switch a causal (decoder) backbone to full attention, in place. transformers' `create_causal_mask` builds a
    bidirectional padding mask when `config.is_causal` is False (eager and sdpa read the mask); sdpa without a mask
    and flash attention read each attention module's `is_causal` instead. No KV cache: every pass sees the whole
    sequence. Whether it worked is checked by the converter (a later token must change earlier hidden states)."""
    backbone.config.is_causal = False
    backbone.config.use_cache = False
    for module in backbone.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


class EditFlowPreTrainedModel(PreTrainedModel):
    config: EditFlowConfig
    config_class = EditFlowConfig
    base_model_prefix = "editflow"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # `model.generation_config` is an EditFlowGenerationConfig: built by PreTrainedModel.__init__ (can_generate), read
    # from generation_config.json by from_pretrained (adjust_generation_fn) and written by save_pretrained.
    generation_config_class = EditFlowGenerationConfig

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **kwargs):
        """from_pretrained's hook: `model.generation_config` = the checkpoint's generation_config.json as an
        [`EditFlowGenerationConfig`] (the `generation_config=` argument of from_pretrained wins; defaults when the
        checkpoint has no file). A file with a bad value is refused in one line naming it."""
        if generation_config is not None:
            self.generation_config = EditFlowGenerationConfig.from_generation_config(generation_config)
            return
        if pretrained_model_name_or_path is None:
            return
        hub_kwargs = {key: kwargs[key] for key in HUB_DOWNLOAD_KWARGS if kwargs.get(key) is not None}
        try:
            self.generation_config = EditFlowGenerationConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        except OSError as err:
            if "valid JSON" in str(err):  # a file that is there but unreadable is not "no file": never silently ignored
                raise ValueError(
                    f"generation_config.json of {pretrained_model_name_or_path} is not valid JSON; fix it, or delete "
                    "it to sample with the defaults."
                ) from None
            # no generation_config.json: the defaults built in __init__ stay
        except TypeError:  # a JSON list or string where the settings object belongs
            raise ValueError(
                f"generation_config.json of {pretrained_model_name_or_path} is not an object of settings "
                '({"tau": ..., ...}); fix it, or delete it to sample with the defaults.'
            ) from None
        except ValueError as err:
            raise ValueError(f"generation_config.json of {pretrained_model_name_or_path}: {err}") from None

    def _init_weights(self, module):
        # The encoder is a PreTrainedModel that initialises itself with its own scheme; this covers the heads.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear) and getattr(module, "zero_init", False):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                bias = self.config.rate_head_bias_init if isinstance(module, EditFlowRateHead) else 0.0
                init.constant_(module.bias, bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)


class EditFlowForEditing(EditFlowPreTrainedModel):
    """An encoder with a rate head (sub, del, ins per position) and two token heads (sub, ins)."""

    def __init__(self, config: EditFlowConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config)
        if config.bidirectional:
            make_bidirectional(self.encoder)
        # A pooler (BERT, RoBERTa) is never used here: drop it so that DDP sees no unused parameters.
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None
        self.time_embedding = EditFlowTimeEmbedding(config) if config.time_conditioning else None
        self.rate_head = EditFlowRateHead(config)
        self.sub_head = EditFlowTokenHead(config)
        self.ins_head = EditFlowTokenHead(config)
        self.post_init()

    def enable_time_conditioning(self) -> None:
        """Make the model read t (`config.time_conditioning = True`): adds a zero-initialised time embedding, so the
        outputs are unchanged until training moves it. A no-op on a model that reads t already."""
        if self.time_embedding is not None:
            return
        self.config.time_conditioning = True
        reference = self.get_input_embeddings().weight
        self.time_embedding = EditFlowTimeEmbedding(self.config).to(device=reference.device, dtype=reference.dtype)
        for layer in (self.time_embedding.hidden, self.time_embedding.output):
            self._init_weights(layer)

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """Resize the encoder's input embeddings (as `PreTrainedModel.resize_token_embeddings`) and the vocabulary
        projections of both token heads to match; `config.vocab_size` follows."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        vocab_size = embeddings.weight.shape[0]
        for head in (self.sub_head, self.ins_head):
            if head.decoder.out_features != vocab_size:
                head.decoder = self._get_resized_lm_head(head.decoder, vocab_size, mean_resizing=mean_resizing)
        return embeddings

    def encode(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
        """The encoder's last hidden states of x_t. The encoder never reads t: a time-conditioned model adds its time
        embedding after the encoder ([`condition_on_time`]), so the pretrained encoder's inputs stay as they were."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)[0]

    def condition_on_time(self, hidden: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        """The heads' input: the encoder's last hidden states `hidden` plus, for a time-conditioned model, the
        embedding of `t` (`[batch]` or one value for all rows) at every position; `hidden` itself otherwise."""
        if self.time_embedding is None:
            return hidden
        if t is None:
            raise ValueError("This model is time-conditioned (config.time_conditioning): pass the flow time `t` of each row.")
        t = torch.as_tensor(t, device=hidden.device).reshape(-1).expand(hidden.shape[0])
        return hidden + self.time_embedding(t)[:, None, :].to(hidden.dtype)

    def head_columns(self, columns: torch.Tensor, head: nn.Module) -> torch.Tensor:
        """The columns whose hidden states `head` reads for edits at `columns`: the same ones, or with
        `config.sub_head_shift` column i - 1 for the substitution head (a converted decoder's LM head predicts the
        token after the position it reads); column 0 (BOS, never substituted) keeps its own. The one home of the
        shift: the forward and the sampler both ask here."""
        if head is self.sub_head and self.config.sub_head_shift:
            return (columns - 1).clamp_min(0)
        return columns

    def sub_head_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """The hidden states the substitution head reads at each position ([`head_columns`])."""
        if not self.config.sub_head_shift:
            return hidden
        return hidden[:, self.head_columns(torch.arange(hidden.shape[1], device=hidden.device), self.sub_head)]

    def edit_rates(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        t: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.FloatTensor, torch.FloatTensor]:
        r"""The encoder and the rate head without the token heads: what a sampling step needs from the model
        (the token heads then run on the few positions where an edit fired). Returns `(rates, hidden)`:
        `rates` `(batch_size, sequence_length, 3)` float32 (sub, del, ins; sub and del are 0 at BOS, all three
        0 at padding) and the heads' input `(batch_size, sequence_length, hidden_size)` (the encoder's last
        hidden states, plus the time embedding of `t` for a time-conditioned model). Arguments as in `forward`
        (`attention_mask` required); tensors in and out only, so it can be `torch.compile`d."""
        hidden = self.condition_on_time(self.encode(input_ids, attention_mask, **kwargs), t)
        rates = self.rate_head(hidden)
        valid = attention_mask.to(rates.dtype)
        editable = valid.clone()
        editable[:, 0] = 0.0  # BOS is never substituted or deleted
        return rates * torch.stack([editable, editable, valid], dim=-1), hidden

    def compiled_edit_rates(self) -> CompiledEditRates:
        """[`edit_rates`] under torch.compile (the sampler's `compile=True`), made once for this model and device and
        shared by every sampler, as transformers' `get_compiled_call`: its graphs stay with the model, outside its
        state_dict, and are not pickled or copied with it (a copy compiles its own)."""
        compiled = self.__dict__.get("_compiled_edit_rates")
        on_cuda = next(self.parameters()).device.type == "cuda"
        if compiled is None or compiled.on_cuda != on_cuda:  # new, or the model moved
            compiled = self._compiled_edit_rates = CompiledEditRates(self)
        return compiled

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_compiled_edit_rates", None)  # compiled graphs do not travel, as torch's own `Module.compile`
        return state

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        logits_at: torch.BoolTensor | None = None,
        sub_logits_at: torch.BoolTensor | None = None,
        ins_logits_at: torch.BoolTensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EditFlowOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                x_t, each row starting with BOS, right-padded.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
                1 for tokens, 0 for padding.
            t (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, 1)`, *optional*):
                Flow time of each row. Required by a time-conditioned model (`config.time_conditioning`: the heads
                read it, the encoder does not); the default model is time-independent (its rates are per unit of the
                scheduler weight w(t)) and ignores it.
            logits_at (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Rows at which to compute both heads' token logits. Then `sub_logits` / `ins_logits` are
                `(N, vocab_size)` for the N true rows in row-major order and the vocabulary projection runs on
                those rows only. `None`: logits at every position, `(batch_size, sequence_length, vocab_size)`.
                With `config.sub_head_shift` the substitution logits at position i come from the hidden state of
                i - 1 ([`sub_head_input`]).
            sub_logits_at, ins_logits_at (`torch.BoolTensor`, *optional*):
                The same, for one head only (override `logits_at` for that head).
            kwargs:
                Passed to the encoder (e.g. `position_ids`, `output_hidden_states`).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if t is not None:
            t = torch.as_tensor(t, device=input_ids.device).reshape(-1)
            if t.numel() not in (1, input_ids.shape[0]):
                raise ValueError(f"`t` must have shape [batch] or [batch, 1]; got {t.numel()} values for {input_ids.shape[0]} rows.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)

        rates, hidden = self.edit_rates(input_ids, attention_mask, t, **kwargs)
        sub_rate, del_rate, ins_rate = rates.unbind(dim=-1)

        sub_at = sub_logits_at if sub_logits_at is not None else logits_at
        ins_at = ins_logits_at if ins_logits_at is not None else logits_at
        sub_hidden = self.sub_head_input(hidden)
        sub_logits = self.sub_head(sub_hidden if sub_at is None else sub_hidden[sub_at])
        ins_logits = self.ins_head(hidden if ins_at is None else hidden[ins_at])

        output = EditFlowOutput(
            sub_rate=sub_rate,
            del_rate=del_rate,
            ins_rate=ins_rate,
            sub_logits=sub_logits,
            ins_logits=ins_logits,
            last_hidden_state=hidden,
        )
        return output if return_dict else output.to_tuple()

    def generate(
        self,
        input_ids: torch.LongTensor | list[list[int]] | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: EditFlowGenerationConfig | None = None,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> torch.LongTensor | EditFlowGenerateOutput:
        r"""
        Generate by tau-leaping: every step inserts, substitutes and deletes tokens anywhere the prompt leaves open.

            inputs = tokenizer(["To be or not", "Once upon a time"], return_tensors="pt", padding=True)
            sequences = model.generate(**inputs, tau=0.02, mask_length=32, seed=0)
            out = model.generate(**inputs, return_dict_in_generate=True, output_history=True)
            out.history[0].steps[-1].tokens                     # the decode of row 0, step by step

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)` or a list of token id lists, *optional*):
                The prompts. A leading BOS and a trailing EOS (what `tokenizer(text)` adds) are dropped, padding is
                dropped by `attention_mask` (left or right). A prompt holding mask tokens is infilled; None: one
                unconditional row (BOS + masks).
            attention_mask (`torch.Tensor`, *optional*):
                1 for prompt tokens, 0 for padding.
            generation_config ([`EditFlowGenerationConfig`] or `GenerationConfig`, *optional*):
                Defaults to `model.generation_config` (the checkpoint's generation_config.json).
            generator (`torch.Generator`, *optional*):
                Source of the run's seed when `seed` is None (else torch's global generator). Every row draws from
                its own generator keyed by the seed and its index, so a row's output does not depend on the batch.
            kwargs:
                Overrides of `generation_config` fields (`tau`, `mask_length`, `temperature`, `top_p`, `top_k`,
                `do_sample`, `max_length`, `max_new_tokens`, `num_return_sequences`, `edit_prompt`, `strength`,
                `edit_rule`, `infill`, `seed`, `output_history`, `return_dict_in_generate`, ...) and `progress_bar` (a
                tqdm bar over the steps). As in transformers' `generate()`, `inputs` may name the prompts and the
                tokenizer's other outputs (`token_type_ids` of one segment, ...) may be passed: x_t is re-encoded
                whole at every step, so they are not read. Left-to-right decoding hooks (`logits_processor`,
                `stopping_criteria`, `streamer`, ...) and unknown settings are refused in one line naming the fix.

        Returns:
            `torch.LongTensor` of shape `(batch_size * num_return_sequences, length)`: every row BOS + prompt + what
            was generated (input-major), right-padded with the pad token and capped at `max_length`. With
            `return_dict_in_generate=True`, an [`EditFlowGenerateOutput`] (`sequences`, `lengths`, and `history`,
            one `DecodeTrace` per row, with `output_history=True`).
        """
        decode = self.prepare_decode(input_ids, attention_mask, generation_config, generator, **kwargs)
        output = decode.run()
        return output if decode.generation_config.return_dict_in_generate else output.sequences

    def prepare_decode(
        self, input_ids=None, attention_mask=None, generation_config=None, generator=None, progress_bar=False,
        row_offset=0, **kwargs,
    ) -> EditFlowDecode:  # fmt: skip
        """The tau-leaping run `generate()` makes (arguments as there), not started: iterate it for the steps (the
        pipeline's `iter_steps` and the Space do) or `run()` it. Every setting and size is checked first.
        `row_offset`: the index of the first row in the whole request (the pipeline's later batches), which keys
        its random draws."""
        input_ids, settings = generate_inputs(input_ids, kwargs)
        base = EditFlowGenerationConfig.from_generation_config(generation_config or self.generation_config)
        config = base.updated(max_positions=self.config.max_sequence_length, **settings)
        return EditFlowDecode(self, EditFlowDecode.prompts_of(input_ids, attention_mask, self.config), config,
                              generator=generator, progress_bar=progress_bar, row_offset=row_offset)  # fmt: skip

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as a complete Hub repo: weights, config with `auto_map` and `custom_pipelines`, and the remote
        code, including the generation pipeline (which the model itself does not import)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            from .pipeline_editflow import EditFlowGenerationPipeline

            custom_object_save(EditFlowGenerationPipeline, save_directory)


# save_pretrained writes `auto_map` for the classes registered for an Auto class: checkpoints then load anywhere.
EditFlowForEditing.register_for_auto_class("AutoModel")

__all__ = ["EditFlowGenerateOutput", "make_bidirectional", "EditFlowOutput", "EditFlowTimeEmbedding", "EditFlowTokenHead", "EditFlowRateHead", "EditFlowPreTrainedModel", "EditFlowForEditing"]
