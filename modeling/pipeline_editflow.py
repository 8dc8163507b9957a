"""Text generation with an Edit Flow model: the `editflow-generation` pipeline (batched tau-leaping).

    from transformers import pipeline
    pipe = pipeline("editflow-generation", model="path/to/checkpoint", trust_remote_code=True)
    pipe("Could you please write a poem for me?")[0]["generated_text"]
    pipe("To be", num_return_sequences=3, seed=0)                  # three samples of one prompt
    pipe([{"role": "user", "content": "Hi!"}], do_sample=False)    # a chat, the same answer every call
    pipe(["", "Once upon a time"], batch_size=64)                  # a list: one list of results per input
    pipe(prompt for prompt in prompts)                             # a generator or KeyDataset: an iterator
    pipe("To be or [MASK] [MASK] be", mask_length=0)               # infill the masks
    pipe("A text to revise.", edit_prompt=True, mask_length=0)     # let the model edit a text

Conventions: those of transformers' `text-generation` pipeline, where they make sense for Edit Flows.
    - Each input gives a list of dicts, one per returned sequence (`num_return_sequences`), with
      `"generated_text"`; a list of inputs gives a list of such lists; a generator, a `datasets.Dataset` or a
      `KeyDataset` gives an iterator over them. Inputs are sampled `batch_size` at a time (default 32, one
      tau-leaping run per batch; a batch holds `batch_size` inputs times `num_return_sequences` rows).
    - `do_sample=False` (= `temperature=0`) is deterministic: the same output every call; `temperature`, `top_k`,
      `top_p` shape the token distributions as in `generate()`.
    - `max_length` caps the whole sequence (BOS + prompt + generated tokens), `max_new_tokens` the tokens after the
      prompt: insertions stop there and the start sequence holds only the masks that fit.
    - Text out as text-generation makes it: the continuation is decoded together with the prompt and the prompt's
      text cut off; with no prompt text before it, it starts at its first whole word (no dangling sub-word piece);
      it ends before the first EOS.
Deviations from `text-generation`:
    - `return_full_text` defaults to False (the text after the prompt); True prepends the prompt (for a chat:
      the messages plus the assistant reply, as text-generation does).
    - Sampling is not left to right, and the most likely token at every edit collapses a pretrained model's text
      into punctuation: `do_sample=False` draws tokens at the paper's temperature 0.8 and top-p 0.5 from a fixed
      seed (0 unless `seed` is given) instead of taking the most likely one (`top_k=1` does that).
    - A plain string prompt goes through the tokenizer's chat template when the checkpoint was fine-tuned on chats
      (`chat_template` in its generation_config.json, or the `chat_template` argument); see "Prompt rule".
    - No `return_tensors`, `stop_sequence`, `prefix`, `handle_long_generation`, `continue_final_message`.
Extra parameters: the Edit Flow fields of `EditFlowGenerationConfig` (`tau`, `mask_length`, `edit_prompt`,
`chat_template`, `infill`, `seed`), `return_trace`, `progress_bar` (see `EditFlowGenerationPipeline.__call__`).

Defaults: the checkpoint's generation config (`model.generation_config`, an `EditFlowGenerationConfig` read from its
generation_config.json) gives every sampling setting; `pipeline(..., tau=...)` overrides it for every call,
`generation_config=` replaces it for one call, and the arguments of a call override both. The pipeline checks
them all (`EditFlowGenerationConfig.validate`) before reading any input, then runs `model.generate()` per batch.

Prompt rule (the one rule editflow-sample, editflow-chat and the Space follow by passing plain prompts):
    a chat (list of messages) always goes through the chat template with its generation prompt; a string goes
    through it as one user message when `chat_template` (the argument, else the checkpoint's default) is True
    and the string is a plain prompt: not empty, without mask tokens and without `edit_prompt`. Otherwise the
    string is the raw text.

Modes, decided per input:
    prompt  (default): BOS + prompt + `mask_length` masks. The prompt is protected: no deletion or substitution
            there and no insertion inside it; the gap after its last token is open. `generated_text` is the
            text after the prompt, up to the first EOS.
    infill  (the text contains the tokenizer's mask token): the whole text is the sequence; its mask tokens
            are editable, the other tokens protected, gaps next to an editable token open; `mask_length` masks
            are appended (pass 0 to infill only), the end stays open only then. `infill="free"` (default) lets
            the model grow or shrink each masked span; `infill="fixed"` turns each mask into exactly one token.
            `generated_text` is the whole edited text (`return_full_text` changes nothing); the output also
            says `"infill": "free"` or `"fixed"`.
    edit    (`edit_prompt=True`): nothing but BOS is protected, so the model may rewrite the prompt too;
            `generated_text` is the whole edited text (`return_full_text` changes nothing).

Trace (with `return_trace=True`): `DecodeTrace.to_dict()` of the sampler's typed trace, plain JSON like every
pipeline output (`DecodeTrace.from_dict(out["trace"])` gives the dataclass back):
    {"prompt_len": int, "initial": list[int],
     "steps": [{"step": int, "t": float, "tokens": list[int] (whole sequence after the step, BOS included),
                "inserted": list[int] and "substituted": list[int] (indices into this step's tokens),
                "deleted": list[int] (indices into the previous step's tokens)}, ...]}
with only the steps that changed the sequence.

Streaming: `for step in generator.iter_steps("To be", tau=0.05)` yields a `GenerationStep` per tau step (the newest
`TraceStep` of each input, None where nothing changed); the last one also carries the outputs a call returns.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.utils import logging
from transformers.utils.chat_template_utils import Chat

from .edits_editflow import TraceStep
from .generation_editflow import (
    HUB_DOWNLOAD_KWARGS,
    MAX_BATCH_SIZE,
    EditFlowGenerationConfig,
    StartRows,
    check_size,
    check_text,
)
from .generation_editflow import start_rows as build_start_rows

logger = logging.get_logger(__name__)

CHAT_ROLES = ("system", "user", "assistant")
DEFAULT_BATCH_SIZE = 32
# pipeline() forwards some loading options to the pipeline's constructor: the Hub ones locate the tokenizer saved
# beside the model (when none is given), the others are ignored.
LOADING_KWARGS = {*HUB_DOWNLOAD_KWARGS, "torch_dtype", "dtype", "trust_remote_code", "use_fast", "model_kwargs"}
PIPELINE_PARAMETERS = ("generation_config", "return_full_text", "return_trace", "progress_bar", "batch_size")
# The mark of a WordPiece continuation piece ("##unes"): one with nothing before it is a dangling fragment.
CONTINUATION_MARK = "##"
# Longest prompt text read, in characters per model position (see `_prompt_ids`).
PROMPT_CHARS_PER_POSITION = 64


@dataclass
class GenerationStep:
    """One tau step of [`EditFlowGenerationPipeline.iter_steps`].

    Attributes:
        step: 1-based index of the step (`num_steps` steps reach t = 1; a frontier run may add settle steps after).
        num_steps: the steps that reach t = 1.
        t: the time reached.
        rows: per sampled row, the [`TraceStep`] of this step (tokens after it, inserted / substituted / deleted
            indices), None where the step changed nothing.
        outputs: on the last step only, what the pipeline call returns for these inputs (a list, one per input).
    """

    step: int
    num_steps: int
    t: float
    rows: list[TraceStep | None]
    outputs: list[dict] | None = None


def _is_message_list(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(m, dict) for m in value)


def own_tokenizer(model, hub_kwargs: dict):
    """The tokenizer saved beside the model (`pipeline("editflow-generation", model=model_object)` without one);
    ValueError naming the fix where there is none."""
    source = getattr(model, "name_or_path", None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs) if source else None
    except (OSError, ValueError):
        tokenizer = None
    if tokenizer is None:
        raise ValueError(
            "The editflow-generation pipeline needs a tokenizer: pass `tokenizer=` (the checkpoint's own, "
            "saved by editflow-convert) or a model loaded from a folder that contains one."
        )
    return tokenizer


def prompt_messages(inputs, chat_template: bool, edit_prompt: bool, tokenizer) -> list[dict] | None:
    """The chat messages of an input, or None for a raw text prompt (the prompt rule)."""
    if isinstance(inputs, Chat):
        inputs = inputs.messages
    if isinstance(inputs, str):
        mask_token = tokenizer.mask_token
        plain = bool(inputs.strip()) and not edit_prompt and not (mask_token and mask_token in inputs)
        return [{"role": "user", "content": inputs}] if chat_template and plain else None
    if not _is_message_list(inputs):
        raise ValueError(
            "Each input must be a string or a list of chat messages [{'role': ..., 'content': ...}]; "
            f"got {type(inputs).__name__}."
        )
    for message in inputs:
        if set(message) - {"role", "content"} or "role" not in message or "content" not in message:
            raise ValueError(f"A chat message needs exactly the keys 'role' and 'content'; got {sorted(message)}.")
        if message["role"] not in CHAT_ROLES:
            raise ValueError(f"Unknown chat role {message['role']!r}; use one of {', '.join(CHAT_ROLES)}.")
        if not isinstance(message["content"], str):
            raise ValueError(f"Chat message content must be a string; got {type(message['content']).__name__}.")
        check_text(message["content"], "A chat message")
    return list(inputs)


def prompt_token_ids(tokenizer, text: str, limit: int) -> list[int]:
    """The token ids of a prompt text, at most `limit` (the model's positions) of them (a longer prompt is then
    refused by `start_layout`). A text longer than PROMPT_CHARS_PER_POSITION characters per position is refused
    before tokenizing: no real text averages that many characters per token, and a tokenizer's time and memory
    grow with the whole text, whatever the truncation."""
    if len(text) > limit * PROMPT_CHARS_PER_POSITION:
        raise ValueError(
            f"The prompt has {len(text):,} characters, far more than the model's {limit} positions can take (at "
            f"most {limit * PROMPT_CHARS_PER_POSITION:,} characters are read): shorten it."
        )
    return tokenizer(text, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]


def call_config(base: EditFlowGenerationConfig, generation_config, generate_kwargs: dict, max_positions: int):
    """The settings of one call: `generation_config` (else the pipeline's `base`) updated with the call's fields
    (loading options dropped) and validated against the model's positions; ValueError naming unknown parameters."""
    generate_kwargs = {k: v for k, v in generate_kwargs.items() if k not in LOADING_KWARGS}
    if generation_config is not None:
        base = EditFlowGenerationConfig.from_generation_config(generation_config)
    unknown = sorted(key for key in generate_kwargs if not hasattr(base, key))
    if unknown:
        raise ValueError(
            f"Unknown editflow-generation parameter(s) {unknown}; valid ones: the fields of EditFlowGenerationConfig "
            f"(tau, mask_length, temperature, do_sample, top_p, top_k, seed, edit_prompt, chat_template, infill, "
            f"max_length, max_new_tokens, num_return_sequences, ...) and {', '.join(PIPELINE_PARAMETERS)}."
        )
    return base.updated(max_positions=max_positions, **generate_kwargs)


def warn_if_never_trained_to_edit(config) -> bool:
    """Edit mode asks the model to substitute and delete real tokens; a model trained only from masks (its recorded
    `x0_sampler` has no `corrupt`) never saw that: say so (the pipeline once). Returns whether it warned."""
    spec = getattr(config, "x0_sampler", None)
    if not spec or "corrupt" in spec:
        return False
    logger.warning(
        "edit_prompt=True, but this model was trained with x0_sampler=%r (masks only): it never learned to "
        "revise real text. Train it with a corrupting coupling, e.g. --x0_sampler "
        "\"0.5*masks[length:64] + 0.5*corrupt[p:0.2]\".", spec,
    )
    return True


class EditFlowGenerationPipeline(Pipeline):
    """Generate, infill or edit text with an Edit Flow model: glue around `model.generate()` (see the module
    docstring) as `text-generation` is around a causal LM's."""

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    # Optional so that `pipeline("editflow-generation", model=model_object)` works: the tokenizer is then
    # loaded from the model's own folder in __init__.
    _load_tokenizer = None

    def __init__(self, *args, **kwargs):
        hub_kwargs = {key: kwargs[key] for key in HUB_DOWNLOAD_KWARGS if kwargs.get(key) is not None}
        self.generation_config = None  # set below; _sanitize_parameters starts from the model's until then
        super().__init__(*args, **kwargs)
        if self.tokenizer is None:
            self.tokenizer = own_tokenizer(self.model, hub_kwargs)
        config = self.model.config
        if config.bos_token_id is None or config.mask_token_id is None:
            raise ValueError(
                "The model config lacks `bos_token_id` / `mask_token_id`: build the checkpoint with editflow-convert."
            )
        if self._batch_size is None:
            self._batch_size = DEFAULT_BATCH_SIZE
        # The settings given to pipeline(...) on top of the checkpoint's: the defaults of every call.
        self.generation_config = self._preprocess_params.pop("generation_config", None) or self._model_generation_config()
        self._forward_params.pop("generation_config", None)
        self.model.eval()

    def _model_generation_config(self) -> EditFlowGenerationConfig:
        return EditFlowGenerationConfig.from_generation_config(getattr(self.model, "generation_config", None))

    @property
    def max_positions(self) -> int:
        """The longest sequence the model accepts (BOS included): `model.config.max_sequence_length`."""
        return self.model.config.max_sequence_length

    def _sanitize_parameters(
        self, generation_config=None, return_full_text=None, return_trace=None, progress_bar=None, **generate_kwargs
    ):
        """Route each argument to one stage: the generation settings (a `generation_config` and/or its fields, on
        top of this pipeline's defaults, validated here against the model's positions before any input is read)
        to preprocess (prompt format, edit mode, sizes) and forward (`generate()`); `progress_bar` and
        `return_trace` to forward; `return_trace` and `return_full_text` to postprocess."""
        base = self.generation_config or self._model_generation_config()
        config = call_config(base, generation_config, generate_kwargs, self.max_positions)
        preprocess, forward, postprocess = {"generation_config": config}, {"generation_config": config}, {}
        for key, value, targets in (
            ("progress_bar", progress_bar, (forward,)),
            ("return_trace", return_trace, (forward, postprocess)),
            ("return_full_text", return_full_text, (postprocess,)),
        ):
            if value is not None:
                for target in targets:
                    target[key] = value
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        r"""
        Generate text for one input, a list of inputs, or a stream of inputs.

        Args:
            inputs (`str`, `list[dict]`, a `list` of these, a generator or a dataset):
                A text prompt (`""` for unconditional generation; a text with mask tokens to infill them), a chat
                given as messages `[{"role": "user", "content": ...}, ...]` (roles system / user / assistant,
                formatted with the tokenizer's chat template and its generation prompt), a list of those, or any
                iterable of them (a generator, a `KeyDataset`).
            generation_config (`EditFlowGenerationConfig` or `GenerationConfig`, *optional*):
                Replaces the pipeline's settings (the checkpoint's generation_config.json plus those given to
                `pipeline(...)`) for this call; e.g. `GenerationConfig.from_pretrained(checkpoint)`.
            tau, mask_length, temperature, do_sample, top_p, top_k, seed, edit_prompt, strength, edit_rule, gain_margin,
            write_order, chat_template, infill, max_length, max_new_tokens, num_return_sequences (*optional*):
                Fields of [`EditFlowGenerationConfig`] (documented there), on top of the settings above. Every one
                is checked before any input is read; `max_length` caps the output (the masks are trimmed to fit).
            return_full_text (`bool`, *optional*, defaults to `False`):
                Prepend the prompt to the generated text (a chat: return the messages plus the assistant reply).
            batch_size (`int`, *optional*, defaults to 32):
                Inputs sampled together in one `generate()` run.
            return_trace (`bool`, *optional*, defaults to `False`):
                Add the decode trace (format in the module docstring) under `"trace"`. To watch the steps as
                they happen, iterate [`iter_steps`] instead.
            progress_bar (`bool`, *optional*, defaults to `True`):
                Show a tqdm bar over the steps.

        Return:
            For one input, a list of `num_return_sequences` dicts `{"generated_text": str}` (plus `"infill"`:
            "fixed" or "free" for an input with masks, and `"trace"` with `return_trace=True`); for a list of
            inputs, a list of such lists; for a generator or dataset, an iterator over such lists. Special tokens and
            leftover masks are removed from the text.
        """
        batch_size = kwargs.get("batch_size")
        if batch_size is not None:
            check_size("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list) and len(inputs) == 0:
            raise ValueError(
                "Inputs must be a string, a list of chat messages [{'role': ..., 'content': ...}], or a non-empty "
                "list of those; got an empty list."
            )
        return super().__call__(inputs, **kwargs)

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        batch = self.get_iterator([inputs], 0, 1, preprocess_params, forward_params, postprocess_params)
        return next(iter(batch))

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """Preprocess, run `generate()` on `batch_size` inputs at a time, postprocess each input. A list is checked
        whole before any sampling starts; a generator or dataset streams."""
        forward_params = dict(forward_params)
        config = forward_params["generation_config"]
        if config.seed is None:  # one seed for the whole call (from torch's global generator): rows keyed by index
            forward_params["generation_config"] = config.updated(seed=int(torch.randint(0, 2**62, ())))
        if isinstance(inputs, list):
            dataset = [self.preprocess(item, **preprocess_params) for item in inputs]
        elif hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__"):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            num_workers = min(num_workers, 1)
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)

        def outputs():
            first_input = 0  # index of the batch's first input in the call: it keys the rows' random draws
            for batch in loader:
                for output in split_batch(self.forward(batch, first_input=first_input, **forward_params)):
                    yield self.postprocess(output, **postprocess_params)
                first_input += len(batch)

        return outputs()

    def preprocess(self, inputs, generation_config: EditFlowGenerationConfig | None = None):
        """The prompt's token ids (BOS not included), after the prompt rule; its length is checked against the
        model's positions and the length caps (`EditFlowGenerationConfig.start_layout`) before any row is built."""
        config = generation_config or self.generation_config
        messages = prompt_messages(inputs, config.chat_template, config.edit_prompt, self.tokenizer)
        if messages is None:
            text = inputs
        elif not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "This tokenizer has no chat template: pass a plain string prompt with chat_template=False, or re-save "
                "the checkpoint with editflow-convert (which adds one)."
            )
        else:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        check_text(text)
        prompt_ids = prompt_token_ids(self.tokenizer, text, self.max_positions)
        config.start_layout(  # the check only: start_rows lays the rows out (and warns of no room) once
            len(prompt_ids), infill=self.model.config.mask_token_id in prompt_ids, max_positions=self.max_positions,
            warn=False,
        )
        if config.edit_prompt and not getattr(self, "_warned_masks_only", False):
            self._warned_masks_only = warn_if_never_trained_to_edit(self.model.config)
        return {"prompt_ids": prompt_ids, "prompt": inputs.messages if isinstance(inputs, Chat) else inputs}

    def _decode(self, model_inputs, generation_config, return_trace=False, progress_bar=True, first_input=0):
        """The `generate()` run of a batch of preprocessed inputs, not started (see `EditFlowDecode`); the batch's
        first input is input `first_input` of the call."""
        return self.model.prepare_decode(
            [row["prompt_ids"] for row in model_inputs], generation_config=generation_config, progress_bar=progress_bar,
            output_history=bool(return_trace), row_offset=first_input * (generation_config.num_return_sequences or 1),
        )  # fmt: skip

    def _forward(self, model_inputs, generation_config, return_trace=False, progress_bar=True, first_input=0):
        """One `generate()` run over a batch of preprocessed inputs, `num_return_sequences` rows each."""
        decode = self._decode(model_inputs, generation_config, return_trace, progress_bar, first_input)
        decode.run()
        # The decode object passes through Pipeline.forward untouched (it only walks dicts, lists and tensors),
        # so long traces are not copied element by element.
        return {"inputs": model_inputs, "decode": decode}

    def _batch_inputs(self, inputs, kwargs) -> tuple[list[dict], dict, dict]:
        """The preprocessed inputs of `iter_steps` / `start_rows` (all in one batch) and the forward and
        postprocess parameters of the call."""
        kwargs = {key: value for key, value in kwargs.items() if key != "batch_size"}
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        single = isinstance(inputs, (str, Chat)) or _is_message_list(inputs)
        items = [inputs] if single else list(inputs)
        if not items:
            raise ValueError("iter_steps needs at least one input.")
        return [self.preprocess(item, **preprocess_params) for item in items], forward_params, postprocess_params

    def start_rows(self, inputs, **kwargs) -> StartRows:
        """The start rows (BOS + prompt + masks, protection, prompt lengths...) a call with these inputs and parameters
        samples from, e.g. to show the start before iterating the steps."""
        model_inputs, forward_params, _ = self._batch_inputs(inputs, kwargs)
        config = self.model.config
        return build_start_rows(
            [row["prompt_ids"] for row in model_inputs], forward_params["generation_config"],
            bos_token_id=config.bos_token_id, mask_token_id=config.mask_token_id, max_positions=self.max_positions,
        )  # fmt: skip

    def iter_steps(self, inputs, **kwargs) -> Iterator[GenerationStep]:
        r"""
        Generate as `__call__` does (same inputs and parameters; all inputs in one batch), yielding a
        [`GenerationStep`] after every tau step: the edits of each sampled row as they happen (input-major: the
        `num_return_sequences` rows of the first input first). The last step carries the outputs (`step.outputs`,
        one list per input, as `__call__` gives for a list of inputs). Stopping the iteration stops the sampling.

            for step in generator.iter_steps("Once upon a time", tau=0.05, seed=0):
                if step.rows[0] is not None:
                    print(step.t, generator.tokenizer.decode(step.rows[0].tokens))
            print(step.outputs[0][0]["generated_text"])
        """
        model_inputs, forward_params, postprocess_params = self._batch_inputs(inputs, kwargs)
        config = forward_params["generation_config"]
        decode = self._decode(model_inputs, config, True, forward_params.get("progress_bar", True))
        # one step behind the sampler: the last step is known when the run ends (a frontier run may settle masks in
        # steps after t = 1), and it carries the outputs
        pending = None
        for sampler_step in decode:
            if pending is not None:
                yield pending
            pending = GenerationStep(sampler_step.step, decode.num_steps, sampler_step.t, list(decode.step_rows))
        if pending is not None:
            batch = {"inputs": model_inputs, "decode": decode}
            pending.outputs = [self.postprocess(output, **postprocess_params) for output in split_batch(batch)]
            yield pending

    def continuation_text(self, prefix_ids: list[int], generated: list[int]) -> str:
        """[`continuation_text`] with this pipeline's tokenizer."""
        return continuation_text(self.tokenizer, prefix_ids, generated)

    def generated_ids(self, sequence: list[int], prompt_len: int) -> list[int]:
        """[`generated_ids`]: the tokens after the prompt, up to the model's first EOS."""
        return generated_ids(sequence, prompt_len, self.model.config.eos_token_id)

    def postprocess(self, model_outputs, return_trace=False, return_full_text=False):
        row, prompt_len = model_outputs["input"], model_outputs["prompt_len"]
        prompt_ids = row["prompt_ids"][: prompt_len - 1]  # the prompt kept before the continuation (none after BOS: infill, edit)
        records = []
        for sequence, trace in zip(model_outputs["sequences"], model_outputs["traces"]):
            generated = generated_ids(sequence, prompt_len, self.model.config.eos_token_id)
            text = continuation_text(self.tokenizer, prompt_ids, generated)
            record = {"generated_text": full_text(self.tokenizer, row["prompt"], prompt_ids, generated, text) if return_full_text else text}
            if model_outputs["infill"]:
                record["infill"] = model_outputs["infill"]
            if return_trace:
                record["trace"] = trace.to_dict()
            records.append(record)
        return records



def split_batch(model_outputs):
    """The sampled rows of a batch, regrouped per input: `{"input", "sequences", "traces", ...}` each."""
    decode = model_outputs["decode"]
    count = decode.generation_config.num_return_sequences or 1
    sequences = decode.sequences()
    for index, row in enumerate(model_outputs["inputs"]):
        rows = slice(index * count, (index + 1) * count)
        yield {
            "input": row,
            "sequences": sequences[rows],
            "traces": decode.history[rows],
            "prompt_len": decode.rows.prompt_lengths[index * count],
            "infill": decode.rows.infill[index * count] and decode.generation_config.infill,
        }


def generated_ids(sequence: list[int], prompt_len: int, eos_token_id: int | None) -> list[int]:
    """The tokens after the prompt, up to the first EOS: what `generated_text` shows."""
    generated = list(sequence[prompt_len:])
    if eos_token_id is not None and eos_token_id in generated:
        generated = generated[: generated.index(eos_token_id)]
    return generated


def from_first_word(tokenizer, generated: list[int]) -> list[int]:
    """`generated` from its first whole word: leading WordPiece continuation pieces ("##ing", the end of a word
    whose start no step wrote) and special tokens (which the text skips anyway) are left out."""
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(generated)
    start = 0
    while start < len(generated) and (generated[start] in special or pieces[start].startswith(CONTINUATION_MARK)):
        start += 1
    return list(generated[start:])


def continuation_text(tokenizer, prefix_ids: list[int], generated: list[int]) -> str:
    """The text of `generated` as it reads after `prefix_ids`, as text-generation makes it: both are decoded
    together and the prefix's text cut off, so the tokenizer decides the junction (a WordPiece "##" piece joins
    the word before it). With no prefix text (unconditional, infill, edit, a prompt of unknown tokens only) the
    text starts at its first whole word (see [`from_first_word`]): no text starts with a dangling piece."""
    head = tokenizer.decode(prefix_ids, skip_special_tokens=True) if prefix_ids else ""
    if not head.strip():
        return tokenizer.decode(from_first_word(tokenizer, generated), skip_special_tokens=True).strip()
    whole = tokenizer.decode([*prefix_ids, *generated], skip_special_tokens=True)
    if whole.startswith(head):
        return whole[len(head) :].strip()
    return tokenizer.decode(generated, skip_special_tokens=True).strip()


def full_text(tokenizer, prompt, prompt_ids, generated, text):
    """The prompt followed by the generated text, as text-generation's `return_full_text=True` gives it."""
    if not isinstance(prompt, str):
        return [*prompt, {"role": "assistant", "content": text}]
    if not prompt_ids:  # infill, edit or unconditional: the text already is the whole sequence
        return text
    head = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    whole = tokenizer.decode([*prompt_ids, *generated], skip_special_tokens=True)
    joined = head.strip() and whole.startswith(head)  # else the text starts at its first whole word
    tail = whole[len(head) :] if joined else (" " + text if text else "")
    return prompt + tail.rstrip()


__all__ = ["EditFlowGenerationPipeline", "GenerationStep"]
