"""Text generation with an Edit Flow model: the `editflow-generation` pipeline (batched tau-leaping).

    from transformers import pipeline
    pipe = pipeline("editflow-generation", model="path/to/checkpoint", trust_remote_code=True)
    pipe("Could you please write a poem for me?")[0]["generated_text"]
    pipe("To be", num_return_sequences=3, seed=0)                  # three samples of one prompt
    pipe([{"role": "user", "content": "Hi!"}], do_sample=False)    # a chat, greedy token values
    pipe(["", "Once upon a time"], batch_size=64)                  # a list: one list of results per input
    pipe(prompt for prompt in prompts)                             # a generator or KeyDataset: an iterator
    pipe("To be or [MASK] [MASK] be", mask_length=0)               # infill the masks
    pipe("A text to revise.", edit_prompt=True, mask_length=0)     # let the model edit a text

Conventions: those of transformers' `text-generation` pipeline, where they make sense for Edit Flows.
    - Each input gives a list of dicts, one per returned sequence (`num_return_sequences`), with
      `"generated_text"`; a list of inputs gives a list of such lists; a generator, a `datasets.Dataset` or a
      `KeyDataset` gives an iterator over them. Inputs are sampled `batch_size` at a time (default 32, one
      tau-leaping run per batch; a batch holds `batch_size` inputs times `num_return_sequences` rows).
    - `do_sample=False` takes the most likely token at every substitution / insertion (= `temperature=0`);
      `temperature`, `top_k`, `top_p` shape the token distributions as in `generate()`.
    - `max_length` caps the whole sequence (BOS + prompt + generated tokens); `max_new_tokens` caps the tokens
      after the prompt: a row stops growing at BOS + prompt + max_new_tokens tokens, and when `mask_length` is not
      given the start sequence holds min(mask_length default, max_new_tokens) masks.
Deviations from `text-generation`:
    - `return_full_text` defaults to False (the text after the prompt); True prepends the prompt (for a chat:
      the messages plus the assistant reply, as text-generation does).
    - Sampling is not left to right: `do_sample=False` makes token values greedy, but *which* edits fire at each
      step stays random (pass `seed` for a reproducible run).
    - A plain string prompt goes through the tokenizer's chat template when the checkpoint was fine-tuned on chats
      (`chat_template` in its generation_config.json, or the `chat_template` argument); see "Prompt rule".
    - No `return_tensors`, `stop_sequence`, `prefix`, `handle_long_generation`, `continue_final_message`.
Extra parameters: `tau`, `mask_length`, `edit_prompt`, `chat_template`, `seed`, `return_trace`,
`progress_bar` (see `EditFlowGenerationPipeline.__call__`).

Defaults: the checkpoint's generation_config.json (a `transformers.GenerationConfig`; see
`configuration_editflow.editflow_generation_config`) gives tau, mask_length, temperature, top_p, top_k and
chat_template; arguments of the call (or of `pipeline(...)`) override them.

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
            are appended (pass 0 to infill only), the end stays open only then.
            `generated_text` is the whole edited text (`return_full_text` changes nothing).
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
from transformers import AutoTokenizer, GenerationConfig, Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.utils import logging
from transformers.utils.chat_template_utils import Chat

from .configuration_editflow import editflow_generation_defaults
from .edits_editflow import DecodeTrace, TraceStep, unwritable_token_ids
from .sampling_editflow import SamplingResult, TauLeapSampler, check_sampling_params

logger = logging.get_logger(__name__)

CHAT_ROLES = ("system", "user", "assistant")
DEFAULT_BATCH_SIZE = 32
# pipeline() forwards some loading options to the pipeline's constructor: the Hub ones locate the checkpoint's
# generation_config.json, the others are ignored.
HUB_KWARGS = ("revision", "token", "local_files_only", "cache_dir")
LOADING_KWARGS = {*HUB_KWARGS, "torch_dtype", "dtype", "trust_remote_code", "use_fast", "model_kwargs"}
CALL_PARAMETERS = (
    "tau, mask_length, temperature, do_sample, top_p, top_k, seed, edit_prompt, chat_template, max_length, "
    "max_new_tokens, num_return_sequences, return_full_text, batch_size, return_trace, progress_bar, compile"
)


@dataclass
class GenerationStep:
    """One tau step of [`EditFlowGenerationPipeline.iter_steps`].

    Attributes:
        step: 1-based index of the step (`num_steps` steps reach t = 1).
        num_steps: steps in the whole run.
        t: the time reached.
        rows: per input, the [`TraceStep`] of this step (tokens after it, inserted / substituted / deleted
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


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


class EditFlowGenerationPipeline(Pipeline):
    """Generate, infill or edit text with an Edit Flow model by batched tau-leaping (see the module docstring)."""

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    # Optional so that `pipeline("editflow-generation", model=model_object)` works: the tokenizer is then
    # loaded from the model's own folder in __init__.
    _load_tokenizer = None

    def __init__(self, *args, **kwargs):
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}
        super().__init__(*args, **kwargs)
        source = getattr(self.model, "name_or_path", None)
        if self.tokenizer is None:
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs) if source else None
            except (OSError, ValueError):
                self.tokenizer = None
            if self.tokenizer is None:
                raise ValueError(
                    "The editflow-generation pipeline needs a tokenizer: pass `tokenizer=` (the checkpoint's own, "
                    "saved by editflow-convert) or a model loaded from a folder that contains one."
                )
        config = self.model.config
        if config.bos_token_id is None or config.mask_token_id is None:
            raise ValueError(
                "The model config lacks `bos_token_id` / `mask_token_id`: build the checkpoint with editflow-convert."
            )
        if self._batch_size is None:
            self._batch_size = DEFAULT_BATCH_SIZE
        self.generation_config = self._load_generation_config(source, hub_kwargs)
        self.model.eval()

    def _load_generation_config(self, source, hub_kwargs) -> GenerationConfig | None:
        """The checkpoint's sampling defaults: `model.generation_config` if set, else its generation_config.json
        (None when it has none: then `EDITFLOW_GENERATION_DEFAULTS` apply)."""
        attached = getattr(self.model, "generation_config", None)
        if attached is not None:
            return attached
        if not source:
            return None
        try:
            return GenerationConfig.from_pretrained(source, **hub_kwargs)
        except OSError:
            return None

    @property
    def generation_defaults(self) -> dict:
        """tau, mask_length, temperature, top_p, top_k and chat_template used when a call does not give them."""
        return editflow_generation_defaults(self.generation_config)

    @property
    def max_positions(self) -> int:
        """The longest sequence the encoder accepts (its position table), 512 when it does not say."""
        encoder_config = getattr(self.model.config, "encoder_config", None)
        return int(getattr(encoder_config, "max_position_embeddings", None) or 512)

    def _sanitize_parameters(
        self,
        tau=None,
        mask_length=None,
        temperature=None,
        do_sample=None,
        top_p=None,
        top_k=None,
        seed=None,
        edit_prompt=None,
        chat_template=None,
        max_length=None,
        max_new_tokens=None,
        num_return_sequences=None,
        return_full_text=None,
        return_trace=None,
        progress_bar=None,
        compile=None,
        **unknown,
    ):
        unknown = {k: v for k, v in unknown.items() if k not in LOADING_KWARGS}
        if unknown:
            raise ValueError(f"Unknown editflow-generation parameter(s) {sorted(unknown)}; valid ones: {CALL_PARAMETERS}.")
        self._check_parameters(
            tau=tau, mask_length=mask_length, temperature=temperature, do_sample=do_sample, top_p=top_p, top_k=top_k,
            seed=seed, max_length=max_length, max_new_tokens=max_new_tokens,
            num_return_sequences=num_return_sequences, compile=compile,
        )  # fmt: skip
        preprocess, forward, postprocess = {}, {}, {}
        for key, value, target in (
            ("mask_length", mask_length, preprocess),
            ("edit_prompt", edit_prompt, preprocess),
            ("chat_template", chat_template, preprocess),
            ("max_length", max_length, preprocess),
            ("max_new_tokens", max_new_tokens, preprocess),
            ("tau", tau, forward),
            ("temperature", temperature, forward),
            ("do_sample", do_sample, forward),
            ("top_p", top_p, forward),
            ("top_k", top_k, forward),
            ("seed", seed, forward),
            ("num_return_sequences", num_return_sequences, forward),
            ("return_trace", return_trace, forward),
            ("progress_bar", progress_bar, forward),
            ("compile", compile, forward),
            ("return_trace", return_trace, postprocess),
            ("return_full_text", return_full_text, postprocess),
        ):
            if value is not None:
                target[key] = value
        return preprocess, forward, postprocess

    @staticmethod
    def _check_parameters(
        tau, mask_length, temperature, do_sample, top_p, top_k, seed, max_length, max_new_tokens,
        num_return_sequences, compile=None,
    ) -> None:  # fmt: skip
        """One clear ValueError for a bad explicit value, before any input is read."""
        check_sampling_params(
            0.01 if tau is None else tau, 1.0 if temperature is None else temperature, 1.0 if top_p is None else top_p, top_k
        )
        for name, value, minimum in (
            ("mask_length", mask_length, 0),
            ("max_length", max_length, 2),
            ("max_new_tokens", max_new_tokens, 1),
            ("num_return_sequences", num_return_sequences, 1),
        ):
            if value is not None:
                _check_int(name, value, minimum)
        if do_sample is not None and not isinstance(do_sample, bool):
            raise ValueError(f"`do_sample` must be True or False; got {do_sample!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an integer or None; got {seed!r}.")
        if compile is not None and not isinstance(compile, bool):
            raise ValueError(f"`compile` must be True or False; got {compile!r}.")

    def __call__(self, inputs, **kwargs):
        r"""
        Generate text for one input, a list of inputs, or a stream of inputs.

        Args:
            inputs (`str`, `list[dict]`, a `list` of these, a generator or a dataset):
                A text prompt (`""` for unconditional generation; a text with mask tokens to infill them), a chat
                given as messages `[{"role": "user", "content": ...}, ...]` (roles system / user / assistant,
                formatted with the tokenizer's chat template and its generation prompt), a list of those, or any
                iterable of them (a generator, a `KeyDataset`).
            tau (`float`, *optional*, checkpoint default, else 0.01):
                Step size of tau-leaping in (0, 1]: 1 / tau model steps; smaller is slower and more faithful.
            mask_length (`int`, *optional*, checkpoint default, else 64):
                Number of mask tokens appended after the prompt (x0 = BOS + prompt + masks); the checkpoint's
                default is the x0 length it was trained with. 0 starts from the prompt alone (insertions only).
            temperature (`float`, *optional*, checkpoint default, else 1.0):
                Temperature of the substituted / inserted tokens; 1.0 samples the model's distributions (the
                chain the model was trained for), 0 takes the most likely token.
            do_sample (`bool`, *optional*):
                False takes the most likely token (same as `temperature=0`); True samples (temperature 1.0 when
                the checkpoint's default is greedy).
            top_k (`int`, *optional*, checkpoint default, else 0):
                Keep only the k most likely tokens (0 keeps all), applied before `top_p`.
            top_p (`float`, *optional*, checkpoint default, else 1.0):
                Nucleus sampling mass in (0, 1] for those tokens.
            seed (`int`, *optional*):
                Seed of the run: every sampled row draws from its own generator, keyed by the seed and the row's
                index in the call, so the same seed and inputs give the same outputs whatever the `batch_size`.
            edit_prompt (`bool`, *optional*, defaults to `False`):
                Let the model edit the prompt too (edit mode); by default the prompt is protected. BOS never changes.
            chat_template (`bool`, *optional*, checkpoint default, else False):
                Whether a plain string prompt is sent as a user message through the chat template (see the prompt
                rule in the module docstring). Chats always are.
            max_length (`int`, *optional*):
                Cap on the sequence length (tokens, BOS included); insertions stop there. Defaults to the encoder's
                maximum positions.
            max_new_tokens (`int`, *optional*):
                Cap on the tokens after the prompt (see the module docstring).
            num_return_sequences (`int`, *optional*, defaults to 1):
                Samples returned per input.
            return_full_text (`bool`, *optional*, defaults to `False`):
                Prepend the prompt to the generated text (a chat: return the messages plus the assistant reply).
            batch_size (`int`, *optional*, defaults to 32):
                Inputs sampled together in one batched run.
            return_trace (`bool`, *optional*, defaults to `False`):
                Add the decode trace (format in the module docstring) under `"trace"`. To watch the steps as
                they happen, iterate [`iter_steps`] instead.
            progress_bar (`bool`, *optional*, defaults to `True`):
                Show a tqdm bar over the steps.
            compile (`bool`, *optional*, defaults to `False`):
                Run the encoder under `torch.compile` at bucketed widths (CUDA graphs on GPU): faster steps once
                compiled; the first call at each new width bucket compiles (seconds to minutes). Same outputs as
                eager up to floating-point rounding.

        Return:
            For one input, a list of `num_return_sequences` dicts `{"generated_text": str}` (plus `"trace"` with
            `return_trace=True`); for a list of inputs, a list of such lists; for a generator or dataset, an
            iterator over such lists. Special tokens and leftover masks are removed from the text.
        """
        batch_size = kwargs.get("batch_size")
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
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
        """Preprocess, sample `batch_size` inputs per tau-leaping run, postprocess each input. A list is checked
        whole before any sampling starts; a generator or dataset streams."""
        forward_params = self._with_run_seed(forward_params)
        if isinstance(inputs, list):
            dataset = [self.preprocess(item, **preprocess_params) for item in inputs]
        elif hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__"):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            num_workers = min(num_workers, 1)
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)

        def outputs():
            first_input = 0  # global index of the batch's first input: it keys the rows' random draws
            for batch in loader:
                for output in self._split_batch(self.forward(batch, first_input=first_input, **forward_params)):
                    yield self.postprocess(output, **postprocess_params)
                first_input += len(batch)

        return outputs()

    @staticmethod
    def _with_run_seed(forward_params: dict) -> dict:
        """The forward parameters with `seed` set: the caller's, or one drawn from torch's global generator (so
        `torch.manual_seed` still makes a run reproducible). Every batch of a call samples with this one seed and
        its rows' global indices, so a row's output does not depend on `batch_size`."""
        forward_params = dict(forward_params)
        if forward_params.get("seed") is None:
            forward_params["seed"] = int(torch.randint(0, 2**62, ()))
        return forward_params

    def _prompt_messages(self, inputs, chat_template: bool, edit_prompt: bool) -> list[dict] | None:
        """The chat messages of an input, or None for a raw text prompt (the prompt rule)."""
        if isinstance(inputs, Chat):
            inputs = inputs.messages
        if isinstance(inputs, str):
            mask_token = self.tokenizer.mask_token
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
        return list(inputs)

    def _warn_if_never_trained_to_edit(self) -> None:
        """Edit mode asks the model to substitute and delete real tokens; a model trained only from masks
        (its recorded `x0_sampler` has no `corrupt`) never saw that, so say so once."""
        spec = getattr(self.model.config, "x0_sampler", None)
        if spec and "corrupt" not in spec and not getattr(self, "_warned_masks_only", False):
            self._warned_masks_only = True
            logger.warning(
                "edit_prompt=True, but this model was trained with x0_sampler=%r (masks only): it never learned to "
                "revise real text. Train it with a corrupting coupling, e.g. --x0_sampler "
                "\"0.5*masks[length:64] + 0.5*corrupt[p:0.2]\".", spec,
            )

    def _resolve_max_length(self, max_length) -> int:
        if max_length is None:
            return self.max_positions
        if max_length > self.max_positions:
            raise ValueError(
                f"`max_length` {max_length} exceeds the model's {self.max_positions} positions; pass at most that."
            )
        return max_length

    def preprocess(
        self, inputs, mask_length=None, edit_prompt=False, chat_template=None, max_length=None, max_new_tokens=None
    ):
        """Token ids of the start sequence, its protection flags, where the prompt ends and the row's length cap."""
        defaults = self.generation_defaults
        chat_template = defaults["chat_template"] if chat_template is None else chat_template
        max_length = self._resolve_max_length(max_length)
        config = self.model.config
        messages = self._prompt_messages(inputs, chat_template, edit_prompt)
        if messages is None:
            text = inputs
        elif not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "This tokenizer has no chat template: pass a plain string prompt with chat_template=False, or re-save "
                "the checkpoint with editflow-convert (which adds one)."
            )
        else:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        infill = config.mask_token_id in prompt_ids
        if mask_length is None:
            mask_length = int(defaults["mask_length"])
            if max_new_tokens is not None:
                mask_length = min(mask_length, max_new_tokens)
        if not prompt_ids and mask_length == 0:
            raise ValueError("An empty prompt with mask_length=0 leaves nothing to generate; pass mask_length > 0.")
        sequence = [config.bos_token_id, *prompt_ids] + [config.mask_token_id] * mask_length
        if max_new_tokens is not None:
            if mask_length > max_new_tokens:
                raise ValueError(
                    f"mask_length={mask_length} is more than max_new_tokens={max_new_tokens}: lower mask_length or "
                    "raise max_new_tokens."
                )
            max_length = min(max_length, 1 + len(prompt_ids) + max_new_tokens)
        if len(sequence) > max_length:
            raise ValueError(
                f"The start sequence has {len(sequence)} tokens (BOS + {len(prompt_ids)} prompt + {mask_length} masks), "
                f"more than max_length={max_length}: shorten the prompt or lower mask_length."
            )
        if edit_prompt:
            self._warn_if_never_trained_to_edit()
            protected_prompt = [False] * len(prompt_ids)
        elif infill:
            protected_prompt = [token != config.mask_token_id for token in prompt_ids]
        else:
            protected_prompt = [True] * len(prompt_ids)
        protected = [True, *protected_prompt] + [False] * mask_length
        kept_prompt = not (edit_prompt or infill)
        return {
            "input_ids": sequence,
            "protected": protected,
            "open_end": not infill or mask_length > 0 or edit_prompt,
            "prompt_len": 1 + len(prompt_ids) if kept_prompt else 1,
            "max_length": max_length,
            "prompt": inputs.messages if isinstance(inputs, Chat) else inputs,
        }

    def _sampler(
        self, model_inputs, tau=None, temperature=None, do_sample=None, top_p=None, top_k=None, seed=None,
        num_return_sequences=1, progress_bar=True, compile=False,
    ) -> tuple[TauLeapSampler, list[dict]]:  # fmt: skip
        """The sampler of one batch of preprocessed inputs and its rows (`num_return_sequences` per input)."""
        defaults = self.generation_defaults
        if do_sample is False:
            temperature = 0.0
        elif temperature is None:
            temperature = defaults["temperature"] or (1.0 if do_sample else 0.0)
        rows = [row for row in model_inputs for _ in range(num_return_sequences)]
        config = self.model.config
        sampler = TauLeapSampler(
            self.model,
            tau=defaults["tau"] if tau is None else tau,
            temperature=temperature,
            top_p=defaults["top_p"] if top_p is None else top_p,
            top_k=defaults["top_k"] if top_k is None else top_k,
            max_length=[row["max_length"] for row in rows],
            seed=seed,
            suppress_token_ids=unwritable_token_ids(config),
            progress_bar=progress_bar,
            compile=compile,
        )
        return sampler, rows

    @staticmethod
    def _sampler_inputs(rows: list[dict]) -> tuple[list, list, list]:
        return [row["input_ids"] for row in rows], [row["protected"] for row in rows], [row["open_end"] for row in rows]

    def _forward(self, model_inputs, return_trace=False, num_return_sequences=1, first_input=0, **sampler_params):
        """One tau-leaping run over a batch of preprocessed inputs, `num_return_sequences` rows each; the batch's
        first input is input `first_input` of the call (row ids: input index * num_return_sequences + j)."""
        sampler, rows = self._sampler(model_inputs, num_return_sequences=num_return_sequences, **sampler_params)
        result = sampler.sample(
            *self._sampler_inputs(rows), prompt_lengths=[row["prompt_len"] for row in rows], return_trace=return_trace,
            row_ids=range(first_input * num_return_sequences, first_input * num_return_sequences + len(rows)),
        )  # fmt: skip
        # The SamplingResult object passes through Pipeline.forward untouched (it only walks dicts, lists and
        # tensors), so long traces are not copied element by element.
        return {"inputs": model_inputs, "num_return_sequences": num_return_sequences, "result": result}

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
        kwargs.pop("batch_size", None)
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        single = isinstance(inputs, (str, Chat)) or _is_message_list(inputs)
        items = [inputs] if single else list(inputs)
        if not items:
            raise ValueError("iter_steps needs at least one input.")
        model_inputs = [self.preprocess(item, **preprocess_params) for item in items]
        forward_params = self._with_run_seed(forward_params)
        return_trace = forward_params.pop("return_trace", False)
        num_return_sequences = forward_params.get("num_return_sequences", 1)
        sampler, rows = self._sampler(model_inputs, **forward_params)
        traces = DecodeTrace.start([row["input_ids"] for row in rows], [row["prompt_len"] for row in rows])
        for sampler_step in sampler.iter_steps(*self._sampler_inputs(rows)):
            step = GenerationStep(sampler_step.step, sampler.num_steps, sampler_step.t, sampler_step.record(traces))
            if step.step == sampler.num_steps:
                result = SamplingResult(sequences=sampler_step.sequences(), traces=traces if return_trace else None)
                batch = {"inputs": model_inputs, "num_return_sequences": num_return_sequences, "result": result}
                step.outputs = [self.postprocess(output, **postprocess_params) for output in self._split_batch(batch)]
            yield step

    @staticmethod
    def _split_batch(model_outputs):
        """The sampled rows of a batch, regrouped per input: `{"input", "sequences", "traces"}` each."""
        count = model_outputs["num_return_sequences"]
        result = model_outputs["result"]
        for index, row in enumerate(model_outputs["inputs"]):
            rows = slice(index * count, (index + 1) * count)
            traces = result.traces[rows] if result.traces is not None else [None] * count
            yield {"input": row, "sequences": result.sequences[rows], "traces": traces}

    def postprocess(self, model_outputs, return_trace=False, return_full_text=False):
        row = model_outputs["input"]
        eos = self.model.config.eos_token_id
        prompt_ids = row["input_ids"][1 : row["prompt_len"]]
        records = []
        for sequence, trace in zip(model_outputs["sequences"], model_outputs["traces"]):
            generated = sequence[row["prompt_len"] :]
            if eos is not None and eos in generated:
                generated = generated[: generated.index(eos)]
            text = self.tokenizer.decode(generated, skip_special_tokens=True).strip()
            record = {"generated_text": self._full_text(row["prompt"], prompt_ids, generated, text) if return_full_text else text}
            if return_trace:
                record["trace"] = trace.to_dict()
            records.append(record)
        return records

    def _full_text(self, prompt, prompt_ids, generated, text):
        """The prompt followed by the generated text, as text-generation's `return_full_text=True` gives it."""
        if not isinstance(prompt, str):
            return [*prompt, {"role": "assistant", "content": text}]
        if not prompt_ids:  # infill, edit or unconditional: the text already is the whole sequence
            return text
        # The tokenizer decides the spacing at the junction (WordPiece "##" pieces join, words get a space).
        head = self.tokenizer.decode(prompt_ids, skip_special_tokens=True)
        whole = self.tokenizer.decode([*prompt_ids, *generated], skip_special_tokens=True)
        tail = whole[len(head) :] if whole.startswith(head) else (" " + text if text else "")
        return prompt + tail.rstrip()


__all__ = ["EditFlowGenerationPipeline", "GenerationStep"]
