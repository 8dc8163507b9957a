"""Generation settings of an Edit Flow model: [`EditFlowGenerationConfig`] (saved as generation_config.json) and
the start rows it builds for a batch of prompts, sizes checked before anything is allocated.

    from transformers import AutoModel
    model = AutoModel.from_pretrained("path/to/checkpoint", trust_remote_code=True)
    model.generation_config                       # an EditFlowGenerationConfig with the checkpoint's defaults
    model.generate(input_ids, tau=0.02, max_length=64)

The one home of every sampling default: the pipeline, editflow-sample / -chat / -eval and the Space read them from
a checkpoint's generation config (`model.generation_config`); nothing else holds a fallback value.
"""

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from transformers.utils import ModelOutput, logging

from .edits_editflow import INFILL_MODES, DecodeTrace, pad_token_id_of, unwritable_token_ids
from .guidance_editflow import TimeSchedule
from .firing_editflow import MAX_TAU_STEPS, MIN_TAU, check_edit_params, check_sampling_params, check_seed
from .sampling_editflow import SamplerStep, TauLeapSampler

logger = logging.get_logger(__name__)

# Absolute caps on size-like settings, checked before anything is allocated (the model's position limit, checked
# where the model is known, is usually far lower): a typo such as mask_length=10**9 is refused in one line
# instead of building a list of a billion masks.
MAX_SEQUENCE_TOKENS = 1 << 20
MAX_RETURN_SEQUENCES = 4096
MAX_BATCH_SIZE = 1 << 16
# The options of from_pretrained that locate a checkpoint's files on the Hub (its generation_config.json, tokenizer).
HUB_DOWNLOAD_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")
# GenerationConfig fields that mean nothing to tau-leaping; a value that would change a left-to-right decode is
# refused rather than silently ignored.
UNSUPPORTED_FIELDS = {"num_beams": 1, "penalty_alpha": None, "assistant_model": None}
# `do_sample=False` (or temperature 0): a deterministic decode that reads. The most likely token at every edit
# collapses a pretrained model's text into punctuation (",,,, i,,,"): while most of x_t is masks, every masked position
# reads nearly the same context and argmax writes the same frequent token everywhere. Instead tokens are drawn at the
# paper's temperature 0.8 and top-p 0.5 from a fixed seed (GREEDY_SEED unless `seed` is given), so a call gives the same
# output every time. `top_k=1` takes the most likely token.
GREEDY_TEMPERATURE = 0.8
GREEDY_TOP_P = 0.5
GREEDY_SEED = 0
# What a tokenizer returns beside `input_ids` and `attention_mask`, which `generate()` takes as transformers' does:
# the start rows are rebuilt from the prompt's tokens and x_t is re-encoded whole at every step (one segment, its own
# positions), so these describe nothing the model reads and are dropped (`token_type_ids` is checked to be one segment).
TOKENIZER_OUTPUTS = ("token_type_ids", "special_tokens_mask", "offset_mapping", "length", "overflow_to_sample_mapping")
# Arguments of transformers' `generate()` that hook into a left-to-right decode, with what to use instead.
LEFT_TO_RIGHT_ARGUMENTS = {
    "logits_processor": "use suppress_tokens, temperature, top_p or top_k",
    "prefix_allowed_tokens_fn": "use suppress_tokens",
    "stopping_criteria": "use max_length or max_new_tokens (every run takes ceil(strength / tau) steps)",
    "streamer": "iterate `model.prepare_decode(...)` (or the pipeline's `iter_steps`) for each step's edits",
    "negative_prompt_ids": "use guidance_scale (its unconditional pass reads x_t without the prompt)",
    "negative_prompt_attention_mask": "use guidance_scale (its unconditional pass reads x_t without the prompt)",
    "inputs_embeds": "pass input_ids",
    "past_key_values": "leave it unset (x_t is re-encoded whole at every step)",
    "position_ids": "leave it unset (x_t is re-encoded whole at every step, with its own positions)",
    "custom_generate": "leave it unset",
    "synced_gpus": "leave it unset",
}


# Vocabulary entries kept for later use, which no pretraining text holds: BERT's [unusedN], Gemma's <unusedN>,
# Llama 3's <|reserved_special_token_N|>, T5's <extra_id_N>.
RESERVED_TOKEN = re.compile(r"\[unused\d+\]|<unused\d+>|<\|reserved_special_token_\d+\|>|<extra_id_\d+>")


def reserved_token_ids(tokenizer) -> list[int]:
    """The vocabulary entries a model should not write by default (the `suppress_tokens` editflow-convert records):
    the special tokens but EOS (unknown, separator, padding, chat markers...) and the reserved entries
    ([`RESERVED_TOKEN`]), which the model never saw in training text."""
    special = {*tokenizer.all_special_ids}
    special |= {index for index, token in tokenizer.added_tokens_decoder.items() if token.special}
    reserved = {index for token, index in tokenizer.get_vocab().items() if RESERVED_TOKEN.fullmatch(token)}
    return sorted((special | reserved) - {tokenizer.eos_token_id})


def generate_inputs(input_ids, kwargs: dict):
    """The prompts of a `generate()` call and its settings alone, as transformers' `generate()` takes them: `inputs`
    (its name for the prompts) is `input_ids`; the tokenizer's other outputs ([`TOKENIZER_OUTPUTS`]) are dropped,
    `token_type_ids` once checked to mark a single segment; a left-to-right decoding argument is refused in one
    line naming what to use. Returns `(input_ids, settings)`."""
    settings = dict(kwargs)
    inputs = settings.pop("inputs", None)
    if inputs is not None:
        if input_ids is not None:
            raise ValueError("Pass the prompts once: `input_ids` or `inputs`, not both.")
        input_ids = inputs
    for name in sorted(set(settings) & set(LEFT_TO_RIGHT_ARGUMENTS)):
        if settings[name] is not None and settings[name] is not False:
            raise ValueError(
                f"`{name}` hooks into next-token decoding, which tau-leaping does not do (every step may edit every "
                f"position): {LEFT_TO_RIGHT_ARGUMENTS[name]}."
            )
        settings.pop(name)
    segments = settings.get("token_type_ids")
    if segments is not None and bool(torch.as_tensor(segments).ne(0).any()):
        raise ValueError(
            "`token_type_ids` marks a second segment (a text pair): an Edit Flow model continues one text per row; "
            "pass one text per row, e.g. tokenizer(texts)."
        )
    for name in TOKENIZER_OUTPUTS:
        settings.pop(name, None)
    return input_ids, settings


def check_size(name: str, value, minimum: int, maximum: int, *, bound: str = "") -> None:
    """ValueError naming the setting for a size that is not an integer in [minimum, maximum] (`bound`: what sets
    the maximum, written after it, e.g. " (the model's 512 positions)")."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"`{name}` must be an integer from {minimum} to {maximum:,}{bound}; got {value!r}.")


def _is_token_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_text(text: str, what: str = "The prompt") -> None:
    """ValueError for text no tokenizer can encode: a lone surrogate (e.g. an undecodable byte of a command line
    or of stdin, which Python keeps as \\udcXX)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{what} is not valid UTF-8 text (character {err.start}: {text[err.start]!r}, a lone surrogate, e.g. an "
            "undecodable byte); pass UTF-8 text."
        ) from None


class EditFlowGenerationConfig(GenerationConfig):
    r"""
    The sampling settings of an Edit Flow model (tau-leaping), saved as `generation_config.json`. Standard
    [`GenerationConfig`] fields keep their transformers meanings; the Edit Flow ones are extra attributes, so a
    stock `GenerationConfig.from_pretrained` reads the file too.

    Args:
        tau (`float`, *optional*, defaults to 0.01):
            Tau-leaping step size in (0, 1], at least 1e-4: `ceil(1 / tau)` model steps from t = 0 to t = 1.
        mask_length (`int`, *optional*, defaults to 64):
            Masks appended after the prompt (x0 = BOS + prompt + masks); a checkpoint records the x0 length it was
            trained with. 0 starts from the prompt alone. Trimmed to fit `max_length` / `max_new_tokens` and the
            model's positions; at most 2**20 - 1.
        temperature (`float`, *optional*, defaults to 1.0), top_p (`float`, *optional*, defaults to 1.0),
        top_k (`int`, *optional*, defaults to 0 = off), do_sample (`bool`, *optional*, defaults to `True`):
            Token sampling of each substitution / insertion, as in `generate()`. `do_sample=False` (or temperature
            0) is the deterministic decode: the same output every call (seed 0 unless `seed` is given), tokens drawn
            at the paper's temperature 0.8 and top-p 0.5, since the most likely token at every edit collapses a
            pretrained model's text into punctuation ([`GREEDY_TEMPERATURE`]; `top_k=1` takes the most likely token).
        suppress_tokens (`list[int]`, *optional*):
            Token ids no substitution or insertion writes (as in `generate()`), beside the mask, BOS and padding
            that are never written. editflow-convert and training record the tokenizer's special tokens but EOS and
            its reserved entries (`[unusedN]`...: [`reserved_token_ids`]); `[]` lets the model write every token.
        temperature_schedule (`float`, `list` or `str`, *optional*):
            The token temperature as a function of the flow time t, replacing `temperature` when set: a pair
            `[at t=0, at t=1]` (linear) or a formula in t such as `"0.8*t + 1.0*(1-t)"` (the paper's code sampler);
            see `guidance_editflow.TimeSchedule`. Ignored when `do_sample` is False.
        guidance_scale (`float`, `list` or `str`, *optional*, defaults to 0 = off):
            w of the paper's naive rate classifier-free guidance: rates lambda_c^(1+w) lambda_u^(-w), token
            distributions Q_c^(1+w) Q_u^(-w), the unconditional pass reading x_t without its prompt; a number or a
            function of t as `temperature_schedule`. Note: the paper's w, so 0 is off (transformers' CFG scale is
            1 + w). Meaningful for models trained with dropped prompts (`--prefix_conditioning`).
        max_length (`int`, *optional*):
            Cap on the whole sequence (BOS + prompt + generated tokens); defaults to the model's positions.
            Insertions stop there and the masks are trimmed to fit, as `generate()` caps its output.
        max_new_tokens (`int`, *optional*):
            Cap on the tokens after the prompt (BOS + prompt + max_new_tokens); wins over `max_length`.
        num_return_sequences (`int`, *optional*, defaults to 1):
            Samples per input (any `do_sample`: the edits are random even with greedy tokens).
        chat_template (`bool`, *optional*, defaults to `False`):
            Prompt format: whether a plain text prompt goes through the tokenizer's chat template as a user
            message (a model fine-tuned on chats) or is sent as raw text (pretrained or freshly converted).
        edit_prompt (`bool`, *optional*, defaults to `False`):
            Let the model edit the prompt too (only BOS is protected).
        strength (`float`, *optional*, defaults to 1.0):
            How much of the path is run, in (0, 1], as diffusers' img2img `strength`: the start rows are placed at
            t0 = 1 - strength and `ceil(strength / tau)` steps take them to t = 1. 1 runs the whole path (what masks
            need); for `edit_prompt` a lower value tells the model the text is already mostly right, so it expects
            fewer edits (a time-conditioned model reads t0) and takes fewer steps.
        edit_rule (`str`, *optional*, defaults to `"sample"`):
            When an edit fires: `"sample"` (tau-leaping: with probability tau * w(t) * rate) or `"threshold"`
            (at every step, where the rate per unit w(t), the model's probability that the position still holds an
            edit, is above 1/2: edits more likely than not, and no small rate integrated over many steps) or
            `"gain"` (for revising text: at every step, the edits whose probability, their most likely token's
            included, beats the probability that the position needs no edit; deterministic, so temperature, top_p
            and top_k do not apply).
        gain_margin (`float`, *optional*, defaults to 0.0):
            With `edit_rule="gain"`, the expected gain (in edits, in [0, 1)) an edit must exceed to fire: a margin
            guards against a model more confident than it is right.
        write_order (`str`, *optional*):
            `"parallel"` (every drawn edit fires) or `"frontier"` (a write whose token head would read a mask's
            state waits until that mask is written, so each run of masks is written from its left end and loses at
            most one mask a step; masks left at t = 1 get a few more steps). None (default): the model's own,
            `"frontier"` for a converted decoder's shifted substitution head (`sub_head_shift`), where parallel writes
            repeated words.
        no_repeat_adjacent (`bool`, *optional*):
            A written token never equals a token beside it (as `no_repeat_ngram_size` bans repeated n-grams in
            `generate()`). None (default): the model's own, on for a shifted substitution head, whose insertion
            head (a decoder's LM head) writes the word that already follows.
        infill (`str`, *optional*, defaults to `"free"`):
            What a mask means: `"free"` lets the Edit Flow grow or shrink the masked spans (insertions and
            deletions anywhere editable); `"fixed"` turns each mask into exactly one token (substitutions only,
            every mask filled by t = 1).
        seed (`int`, *optional*):
            Seed of the run: every row draws from its own generator, keyed by the seed and the row's index in the
            request, so the same seed and inputs give the same outputs whatever the batch size or a row's place.
        compile (`bool`, *optional*, defaults to `False`):
            Run the encoder and rate head under `torch.compile` at bucketed widths (CUDA graphs on a GPU): faster
            steps once compiled; the first call at each new width bucket compiles (seconds to minutes).
        output_history (`bool`, *optional*, defaults to `False`), return_dict_in_generate (`bool`, *optional*):
            `generate()` returns an [`EditFlowGenerateOutput`] with the decode history of every row.
    """

    editflow_defaults = {
        "tau": 0.01,
        "mask_length": 64,
        "chat_template": False,
        "edit_prompt": False,
        "infill": "free",
        "strength": 1.0,
        "edit_rule": "sample",
        "gain_margin": 0.0,
        "write_order": None,
        "no_repeat_adjacent": None,
        "seed": None,
        "compile": False,
        "output_history": False,
        "temperature_schedule": None,
    }

    def __init__(self, **kwargs):
        # Set before GenerationConfig.__init__, which ends by calling validate().
        for key, default in self.editflow_defaults.items():
            setattr(self, key, kwargs.pop(key, default))
        if kwargs.get("do_sample") is None and not kwargs.get("_from_model_config"):
            kwargs["do_sample"] = True  # tau-leaping samples the chain the model was trained for
        super().__init__(**kwargs)

    @classmethod
    def from_generation_config(cls, config: "GenerationConfig | dict | None") -> "EditFlowGenerationConfig":
        """An EditFlowGenerationConfig from any generation config (e.g. a stock `GenerationConfig.from_pretrained`
        of a checkpoint, whose Edit Flow fields are extra attributes) or dict; None gives the defaults."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        values = config if isinstance(config, dict) else config.to_dict()
        values = {k: v for k, v in values.items() if k not in ("transformers_version", "_from_model_config")}
        return cls(**values)

    @classmethod
    def from_model_config(cls, model_config) -> "EditFlowGenerationConfig":
        """The defaults, with the model's special token ids (what `PreTrainedModel.__init__` builds)."""
        get = model_config.get if isinstance(model_config, dict) else lambda key: getattr(model_config, key, None)
        return cls(**{key: get(key) for key in ("bos_token_id", "eos_token_id", "pad_token_id") if get(key) is not None})

    def summary(self) -> dict:
        """The settings a user tunes, as plain values (the model card's table, the Space's controls)."""
        return {
            "tau": self.tau, "mask_length": self.mask_length, "temperature": self.sampling_temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p, "top_k": self.top_k or 0,
            "chat_template": self.chat_template, "infill": self.infill,
        }  # fmt: skip

    def token_rule(self) -> dict:
        """The sampler's token settings (`temperature` or its schedule, `top_p`, `top_k`): with `do_sample` False,
        the deterministic decode's [`GREEDY_TEMPERATURE`] and [`GREEDY_TOP_P`]."""
        top_k = self.top_k or 0
        if self.do_sample is False:
            return dict(temperature=GREEDY_TEMPERATURE, top_p=GREEDY_TOP_P, top_k=top_k)
        schedule = self.temperature_schedule
        temperature = schedule if schedule is not None else self.sampling_temperature
        return dict(temperature=temperature, top_p=1.0 if self.top_p is None else self.top_p, top_k=top_k)

    @property
    def sampling_temperature(self) -> float:
        """The token temperature the sampler uses: 0 (greedy) when `do_sample` is False, else `temperature`."""
        if self.do_sample is False:
            return 0.0
        return 1.0 if self.temperature is None else self.temperature

    def validate(self, strict=False, user_set_attributes=None, *, max_positions: int | None = None):
        """One ValueError naming the setting and the fix for any bad value, before anything is allocated: tau,
        temperature, top_p, top_k, every size (mask_length, max_length, max_new_tokens, num_return_sequences) as an
        integer within its cap (for max_length and max_new_tokens: `max_positions`, the model's longest sequence, when
        given; a mask_length that does not fit is trimmed by `start_layout`), the prompt format and
        infill mode, and Edit-Flow-meaningless beam settings. (GenerationConfig's own checks assume left-to-right
        decoding, e.g. that greedy decoding cannot return several sequences; tau-leaping needs none of them.)"""
        temperature = 1.0 if self.temperature is None else self.temperature
        check_sampling_params(self.tau, temperature, 1.0 if self.top_p is None else self.top_p, self.top_k)
        longest = MAX_SEQUENCE_TOKENS if max_positions is None else int(max_positions)
        where = "" if max_positions is None else f" (the model's {longest} positions)"
        for name, minimum, maximum in (
            ("mask_length", 0, MAX_SEQUENCE_TOKENS - 1),  # within the model's positions it is trimmed, not refused
            ("max_length", 2, longest),
            ("max_new_tokens", 1, longest - 1),
            ("num_return_sequences", 1, MAX_RETURN_SEQUENCES),
        ):
            if getattr(self, name) is not None:
                bound = where if name in ("max_length", "max_new_tokens") else ""
                check_size(name, getattr(self, name), minimum, maximum, bound=bound)
        for name in ("do_sample", "chat_template", "edit_prompt", "compile", "output_history", "no_repeat_adjacent"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False; got {value!r}.")
        check_edit_params(self.strength, self.edit_rule, self.gain_margin, self.infill == "fixed", self.write_order)
        if self.infill not in INFILL_MODES:
            raise ValueError(f"`infill` must be one of {', '.join(map(repr, INFILL_MODES))}; got {self.infill!r}.")
        check_seed(self.seed)
        tokens = self.suppress_tokens
        if tokens is not None and (isinstance(tokens, (str, bytes)) or not all(_is_token_id(t) for t in tokens)):
            raise ValueError(f"`suppress_tokens` must be a list of token ids; got {tokens!r}.")
        for name in ("temperature_schedule", "guidance_scale"):
            if getattr(self, name, None) is not None:
                TimeSchedule(getattr(self, name), name)  # ValueError naming the setting and the accepted forms
        for name, neutral in UNSUPPORTED_FIELDS.items():
            value = getattr(self, name, None)
            if value is not None and value != neutral:
                raise ValueError(f"`{name}` has no meaning for tau-leaping (no left-to-right decode); leave it unset.")

    def updated(self, *, max_positions: int | None = None, **kwargs) -> "EditFlowGenerationConfig":
        """A copy with `kwargs` set (None values are ignored), validated (against `max_positions` when given);
        TypeError naming unknown settings."""
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        unknown = sorted(key for key in kwargs if not hasattr(self, key))
        if unknown:
            raise TypeError(f"Unknown generation setting(s) {unknown} for an Edit Flow model: {self._fix_of(unknown)}")
        copy = self.__class__.from_dict(self.to_dict())
        for key, value in kwargs.items():
            setattr(copy, key, value)
        if kwargs.get("temperature") == 0:
            copy.do_sample = False
        elif kwargs.get("do_sample") is True and copy.temperature == 0:
            copy.temperature = 1.0
        if copy.do_sample is False and copy.seed is None:
            copy.seed = GREEDY_SEED  # the deterministic decode: the same output every call
        copy.validate(max_positions=max_positions)
        return copy

    def _fix_of(self, unknown: list[str]) -> str:
        """The fix named for unknown settings: the closest known ones, else where the known ones are listed."""
        known = [*self.to_dict(), *self.editflow_defaults, "return_dict_in_generate", "progress_bar"]
        close = sorted({match for key in unknown for match in difflib.get_close_matches(key, known, n=2, cutoff=0.75)})
        if close:
            return f"did you mean {', '.join(map(repr, close))}?"
        return "pass fields of EditFlowGenerationConfig (see `model.generation_config`) or the tokenizer's outputs."

    def start_layout(self, prompt_length: int, *, infill: bool, max_positions: int, warn: bool = True) -> tuple[int, int]:
        """`(masks, cap)` of one start row: how many masks follow a prompt of `prompt_length` tokens (BOS not
        counted) and the length its sequence may grow to. Checked with plain integers, so nothing is allocated for
        a row that cannot fit: ValueError (one line, the fix named) when the prompt exceeds the model's positions.

        The cap is the smallest of the model's positions, `max_length` and BOS + prompt + `max_new_tokens`; the
        masks are `mask_length`, trimmed to the cap: max_length caps the output, as in `generate()`, which also
        generates nothing (and warns) when the prompt alone reaches it."""
        self.validate(max_positions=max_positions)
        cap = max_positions if self.max_length is None else min(self.max_length, max_positions)
        if self.max_new_tokens is not None:
            cap = min(cap, 1 + prompt_length + self.max_new_tokens)
        start = 1 + prompt_length
        if start > max_positions:
            raise ValueError(
                f"The prompt has {prompt_length}{' or more' if prompt_length >= max_positions else ''} tokens; with BOS "
                f"that is more than the model's {max_positions} positions: shorten it to at most {max_positions - 1} tokens."
            )
        if warn and start >= cap and not (infill or self.edit_prompt):  # warn=False: a check whose rows come later
            logger.warning(
                "The prompt has %d tokens (+ BOS), which leaves no room under max_length=%d: nothing is generated. "
                "Raise max_length or max_new_tokens.", prompt_length, cap,
            )
        return max(0, min(self.mask_length, cap - start)), cap


@dataclass
class StartRows:
    """The start of a tau-leaping run, one entry per row (what [`start_rows`] builds).

    Attributes:
        sequences: BOS + prompt + masks.
        protected: per token, True where no deletion / substitution may happen.
        open_end: whether insertions may extend the row after a protected last token.
        prompt_lengths: leading tokens kept as the prompt (BOS included; 1 for infill and edit rows).
        max_lengths: the length each row may grow to.
        infill: whether the row's prompt held masks to fill.
    """

    sequences: list[list[int]]
    protected: list[list[bool]]
    open_end: list[bool]
    prompt_lengths: list[int]
    max_lengths: list[int]
    infill: list[bool]


def start_rows(
    prompts: list[list[int]], generation_config: EditFlowGenerationConfig, *, bos_token_id: int, mask_token_id: int,
    max_positions: int,
) -> StartRows:  # fmt: skip
    """The start rows of `prompts` (token ids without BOS), `num_return_sequences` rows per prompt, input-major.

    Modes, per prompt:
        prompt (default): BOS + prompt + masks; the prompt is protected (no deletion, substitution or insertion
            inside it), the gap after its last token open.
        infill (the prompt holds masks): its masks are editable, the other tokens protected, gaps next to an
            editable token open; masks are appended only when `mask_length` > 0 (the end stays open only then).
        edit (`edit_prompt`): nothing but BOS is protected.
    Sizes are checked by [`EditFlowGenerationConfig.start_layout`] before any row is built.
    """
    config = generation_config
    layouts = []
    for prompt in prompts:
        infill = mask_token_id in prompt
        layouts.append((infill, *config.start_layout(len(prompt), infill=infill, max_positions=max_positions)))
    rows = StartRows([], [], [], [], [], [])
    for prompt, (infill, masks, cap) in zip(prompts, layouts):
        if not prompt and masks == 0:
            raise ValueError("An empty prompt with mask_length=0 leaves nothing to generate; pass mask_length > 0.")
        if config.edit_prompt:
            protected_prompt = [False] * len(prompt)
        elif infill:
            protected_prompt = [token != mask_token_id for token in prompt]
        else:
            protected_prompt = [True] * len(prompt)
        kept_prompt = not (config.edit_prompt or infill)
        for _ in range(config.num_return_sequences or 1):
            rows.sequences.append([bos_token_id, *prompt] + [mask_token_id] * masks)
            rows.protected.append([True, *protected_prompt] + [False] * masks)
            rows.open_end.append(not infill or masks > 0 or bool(config.edit_prompt))
            rows.prompt_lengths.append(1 + len(prompt) if kept_prompt else 1)
            rows.max_lengths.append(cap)
            rows.infill.append(infill)
    return rows


@dataclass
class EditFlowGenerateOutput(ModelOutput):
    r"""
    Output of `EditFlowForEditing.generate(..., return_dict_in_generate=True)`.

    Args:
        sequences (`torch.LongTensor` of shape `(num_rows, length)`):
            Every row after t = 1: BOS + prompt + generated tokens, right-padded with the pad token.
        lengths (`torch.LongTensor` of shape `(num_rows,)`):
            The length of each row without padding.
        history (`list[DecodeTrace]`, *optional*, with `output_history=True`):
            The decode of each row: its start sequence and every step that changed it.
    """

    sequences: torch.LongTensor | None = None
    lengths: torch.LongTensor | None = None
    history: list[DecodeTrace] | None = None


def sampler_for(model, generation_config: EditFlowGenerationConfig, *, max_length=None, generator=None,
                progress_bar: bool = False) -> TauLeapSampler:  # fmt: skip
    """The [`TauLeapSampler`] of a (validated) generation config: the one place its settings become the sampler's,
    for generate, the pipeline, eval and the Space alike. `max_length` caps each row (one int, or one per row)."""
    return TauLeapSampler(
        model,
        tau=generation_config.tau,
        **generation_config.token_rule(),
        guidance_scale=generation_config.guidance_scale or 0.0,
        max_length=max_length,
        seed=generation_config.seed,
        generator=generator,
        suppress_token_ids=[*unwritable_token_ids(model.config), *(generation_config.suppress_tokens or ())],
        progress_bar=progress_bar,
        fixed_length=generation_config.infill == "fixed",
        strength=generation_config.strength,
        edit_rule=generation_config.edit_rule,
        gain_margin=generation_config.gain_margin,
        write_order=generation_config.write_order,
        no_repeat_adjacent=generation_config.no_repeat_adjacent,
        compile=generation_config.compile,
    )


class EditFlowDecode:
    """One tau-leaping run of a batch of prompts, built by `EditFlowForEditing.prepare_decode` (settings checked,
    start rows built): iterate it for each step's [`SamplerStep`], or `run()` it for the output.

    Attributes:
        generation_config: the settings of the run (validated).
        rows: the [`StartRows`] (`num_return_sequences` per prompt, input-major).
        sampler: the [`TauLeapSampler`]; `num_steps` steps reach t = 1.
        history: one [`DecodeTrace`] per row, filled while iterating.
    """

    def __init__(self, model, prompts: list[list[int]], generation_config: EditFlowGenerationConfig, *, generator=None,
                 progress_bar: bool = False, row_offset: int = 0):  # fmt: skip
        config = model.config
        self.generation_config = generation_config
        self.pad_token_id = pad_token_id_of(config)
        self.device = next(model.parameters()).device
        self.rows = start_rows(
            prompts, generation_config, bos_token_id=config.bos_token_id, mask_token_id=config.mask_token_id,
            max_positions=config.max_sequence_length,
        )  # fmt: skip
        self.sampler = sampler_for(
            model, generation_config, max_length=self.rows.max_lengths, generator=generator, progress_bar=progress_bar
        )
        self.history = DecodeTrace.start(self.rows.sequences, self.rows.prompt_lengths)
        self.step_rows: list = [None] * len(self.rows.sequences)  # the newest step of each row (with output_history)
        self.final: list[list[int]] = [list(ids) for ids in self.rows.sequences]
        # Row r of the run draws from its own generator keyed by the seed and `row_offset + r` (its index in the
        # whole request), so a row's output does not depend on the batch it is sampled in.
        self.row_ids = range(row_offset, row_offset + len(self.rows.sequences))

    @property
    def num_steps(self) -> int:
        return self.sampler.num_steps

    @staticmethod
    def prompts_of(input_ids, attention_mask, config) -> list[list[int]]:
        """Prompt token ids per row (without BOS): padding dropped by `attention_mask`, a leading BOS dropped, with
        the EOS ending that row (both added by `tokenizer(text)`); `input_ids=None` is one empty prompt."""
        if input_ids is None:
            return [[]]
        rows = input_ids.tolist() if isinstance(input_ids, torch.Tensor) else [list(map(int, row)) for row in input_ids]
        if rows and not isinstance(rows[0], list):
            rows = [rows]  # one unbatched row
        if attention_mask is not None:
            masks = attention_mask.tolist() if isinstance(attention_mask, torch.Tensor) else attention_mask
            if len(masks) != len(rows) or any(len(m) != len(r) for m, r in zip(masks, rows)):
                raise ValueError("`attention_mask` must have the shape of `input_ids`.")
            rows = [[token for token, keep in zip(row, mask) if keep] for row, mask in zip(rows, masks)]
        prompts = []
        eos = config.eos_token_id if config.eos_token_id != config.bos_token_id else None
        for row in rows:
            if row and row[0] == config.bos_token_id:  # tokenizer(text) adds BOS ... EOS: drop both
                row = row[1:-1] if eos is not None and len(row) > 1 and row[-1] == eos else row[1:]
            prompts.append(row)
        return prompts

    def __iter__(self) -> Iterator[SamplerStep]:
        rows = self.rows
        for step in self.sampler.iter_steps(rows.sequences, rows.protected, rows.open_end, row_ids=self.row_ids):
            if self.generation_config.output_history:
                self.step_rows = step.record(self.history)
            self.final, self._last = None, step
            yield step

    def sequences(self) -> list[list[int]]:
        """Every row's token ids as they stand (the start before any step, the result after the last)."""
        if self.final is None:
            self.final = self._last.sequences()
        return self.final

    def run(self) -> EditFlowGenerateOutput:
        """Take every step; the output `generate()` returns (history kept with `output_history`)."""
        for _ in self:
            pass
        rows = self.sequences()
        lengths = [len(row) for row in rows]
        sequences = torch.full((len(rows), max(lengths)), self.pad_token_id, dtype=torch.long)
        for index, row in enumerate(rows):
            sequences[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        history = self.history if self.generation_config.output_history else None
        lengths = torch.tensor(lengths, device=self.device)
        return EditFlowGenerateOutput(sequences=sequences.to(self.device), lengths=lengths, history=history)


__all__ = [
    "EditFlowDecode",
    "EditFlowGenerateOutput",
    "EditFlowGenerationConfig",
    "INFILL_MODES",
    "MAX_BATCH_SIZE",
    "MAX_RETURN_SEQUENCES",
    "MAX_SEQUENCE_TOKENS",
    "MAX_TAU_STEPS",
    "MIN_TAU",
    "GREEDY_SEED",
    "GREEDY_TEMPERATURE",
    "GREEDY_TOP_P",
    "HUB_DOWNLOAD_KWARGS",
    "LEFT_TO_RIGHT_ARGUMENTS",
    "StartRows",
    "TOKENIZER_OUTPUTS",
    "check_sampling_params",
    "check_size",
    "check_text",
    "reserved_token_ids",
    "generate_inputs",
    "sampler_for",
    "start_rows",
]
