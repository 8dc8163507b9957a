"""Text generation with an Edit Flow model: the `editflow-generation` pipeline (batched tau-leaping).

    from transformers import pipeline
    generator = pipeline("editflow-generation", model="path/to/checkpoint", trust_remote_code=True)
    generator("Could you please write a poem for me?", tau=0.01, mask_length=64, seed=42)
    generator([{"role": "user", "content": "Hi!"}], temperature=0)   # chat messages
    generator("", mask_length=64)                                      # unconditional
    generator("To be or [MASK] [MASK] be", mask_length=0)             # infill the masks
    generator("A text to revise.", edit_prompt=True, mask_length=0)    # let the model edit a text

Modes, decided per input:
    prompt  (default): BOS + prompt + `mask_length` masks. The prompt is protected: no deletion or substitution
            there and no insertion inside it; the gap after its last token is open. `generated_text` is the
            text after the prompt, up to the first EOS.
    infill  (the text contains the tokenizer's mask token): the whole text is the sequence; its mask tokens
            are editable, the other tokens protected, gaps next to an editable token open; `mask_length` masks
            are appended (default 64; pass 0 to infill only), the end stays open only then.
            `generated_text` is the whole edited text.
    edit    (`edit_prompt=True`): nothing but BOS is protected, so the model may rewrite the prompt too;
            `generated_text` is the whole edited text.

Trace (with `return_trace=True`; the format the Space shares):
    {"prompt_len": int, "initial": list[int],
     "steps": [{"step": int, "t": float, "tokens": list[int] (whole sequence after the step, BOS included),
                "inserted": list[int] and "substituted": list[int] (indices into this step's tokens),
                "deleted": list[int] (indices into the previous step's tokens)}, ...]}
with only the steps that changed the sequence.
"""

import torch
from transformers import AutoTokenizer, Pipeline
from transformers.utils import logging

from .sampling_editflow import TauLeapSampler, check_sampling_params

logger = logging.get_logger(__name__)

CHAT_ROLES = ("system", "user", "assistant")
DEFAULT_MASK_LENGTH = 64
DEFAULT_BATCH_SIZE = 32
# pipeline() forwards some loading options to the pipeline's constructor: accept and ignore them.
LOADING_KWARGS = {"local_files_only", "torch_dtype", "trust_remote_code", "revision", "token", "use_fast"}


def _is_message_list(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(m, dict) for m in value)


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
        super().__init__(*args, **kwargs)
        if self.tokenizer is None:
            source = getattr(self.model, "name_or_path", None)
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(source) if source else None
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
        self.model.eval()

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
        top_p=None,
        seed=None,
        edit_prompt=None,
        max_length=None,
        return_trace=None,
        step_callback=None,
        progress_bar=None,
        **unknown,
    ):
        unknown = {k: v for k, v in unknown.items() if k not in LOADING_KWARGS}
        if unknown:
            raise ValueError(
                f"Unknown editflow-generation parameter(s) {sorted(unknown)}; valid ones: tau, mask_length, "
                "temperature, top_p, seed, edit_prompt, max_length, batch_size, return_trace, step_callback, progress_bar."
            )
        preprocess, forward, postprocess = {}, {}, {}
        for key, value, target in (
            ("mask_length", mask_length, preprocess),
            ("edit_prompt", edit_prompt, preprocess),
            ("max_length", max_length, preprocess),
            ("tau", tau, forward),
            ("temperature", temperature, forward),
            ("top_p", top_p, forward),
            ("seed", seed, forward),
            ("return_trace", return_trace, forward),
            ("step_callback", step_callback, forward),
            ("progress_bar", progress_bar, forward),
            ("return_trace", return_trace, postprocess),
        ):
            if value is not None:
                target[key] = value
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        r"""
        Generate text for one input or a list of inputs.

        Args:
            inputs (`str`, `list[dict]` or a `list` of these):
                A text prompt (`""` for unconditional generation; a text with mask tokens to infill them), a chat
                given as messages `[{"role": "user", "content": ...}, ...]` (roles system / user / assistant,
                formatted with the tokenizer's chat template and its generation prompt), or a list of those.
            tau (`float`, *optional*, defaults to 0.01):
                Step size of tau-leaping in (0, 1]: 1 / tau model steps; smaller is slower and more faithful.
            mask_length (`int`, *optional*, defaults to 64):
                Number of mask tokens appended after the prompt (x0 = BOS + prompt + masks). 0 starts from the
                prompt alone (insertions only).
            temperature (`float`, *optional*, defaults to 1.0):
                Temperature of the substituted / inserted tokens; 1.0 samples the model's distributions (the
                chain the model was trained for), 0 takes the most likely token.
            top_p (`float`, *optional*, defaults to 1.0):
                Nucleus sampling mass in (0, 1] for those tokens.
            seed (`int`, *optional*):
                Seed of a `torch.Generator` that makes every random draw; the same seed, inputs and batch_size
                give the same output.
            edit_prompt (`bool`, *optional*, defaults to `False`):
                Let the model edit the prompt too (edit mode); by default the prompt is protected. BOS never changes.
            max_length (`int`, *optional*):
                Cap on the sequence length (tokens, BOS included); insertions stop there. Defaults to the encoder's
                maximum positions.
            batch_size (`int`, *optional*, defaults to 32):
                Inputs sampled together in one batched run.
            return_trace (`bool`, *optional*, defaults to `False`):
                Add the decode trace (format in the module docstring) under `"trace"`.
            step_callback (`Callable[[int, float, list[dict | None]], None]`, *optional*):
                Called after each tau step with `(step, t, row_steps)`: the newest trace step of each row of the
                current batch, or None for rows that did not change (for streaming).
            progress_bar (`bool`, *optional*, defaults to `True`):
                Show a tqdm bar over the steps.

        Return:
            A dict `{"generated_text": str}` (plus `"trace"` with `return_trace=True`) for one input, a list of
            them for a list of inputs. Special tokens and leftover masks are removed from the text.
        """
        batch_size = kwargs.pop("batch_size", None)
        batch_size = batch_size if batch_size is not None else (self._batch_size or DEFAULT_BATCH_SIZE)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}

        single = isinstance(inputs, str) or _is_message_list(inputs)
        items = [inputs] if single else inputs
        if not isinstance(items, (list, tuple)) or len(items) == 0:
            raise ValueError(
                "Inputs must be a string, a list of chat messages [{'role': ..., 'content': ...}], or a non-empty "
                f"list of those; got {type(inputs).__name__}."
            )
        self._check_sampling_params(**forward_params)
        # Validate every input before any sampling starts.
        prepared = [self.preprocess(item, **preprocess_params) for item in items]

        seed = forward_params.pop("seed", None)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        outputs = []
        for start in range(0, len(prepared), batch_size):
            model_outputs = self.forward({"rows": prepared[start : start + batch_size]}, generator=generator, **forward_params)
            outputs.extend(self.postprocess(model_outputs, **postprocess_params))
        return outputs[0] if single else outputs

    @staticmethod
    def _check_sampling_params(tau=0.01, temperature=1.0, top_p=1.0, seed=None, step_callback=None, **_):
        check_sampling_params(tau, temperature, top_p)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an integer or None; got {seed!r}.")
        if step_callback is not None and not callable(step_callback):
            raise ValueError(f"`step_callback` must be callable as (step, t, row_steps); got {step_callback!r}.")

    def _resolve_max_length(self, max_length) -> int:
        if max_length is None:
            return self.max_positions
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"`max_length` must be an integer >= 2 (BOS + one token); got {max_length!r}.")
        if max_length > self.max_positions:
            raise ValueError(
                f"`max_length` {max_length} exceeds the model's {self.max_positions} positions; pass at most that."
            )
        return max_length

    def _prompt_text(self, inputs) -> str:
        if isinstance(inputs, str):
            return inputs
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
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "This tokenizer has no chat template: pass a plain string prompt, or re-save the checkpoint with "
                "editflow-convert (which adds one)."
            )
        return self.tokenizer.apply_chat_template(list(inputs), tokenize=False, add_generation_prompt=True)

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

    def preprocess(self, inputs, mask_length=DEFAULT_MASK_LENGTH, edit_prompt=False, max_length=None):
        """Token ids of the start sequence, its protection flags and where the prompt ends."""
        if isinstance(mask_length, bool) or not isinstance(mask_length, int) or mask_length < 0:
            raise ValueError(f"`mask_length` must be an integer >= 0; got {mask_length!r}.")
        max_length = self._resolve_max_length(max_length)
        config = self.model.config
        text = self._prompt_text(inputs)
        prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        infill = config.mask_token_id in prompt_ids
        if not prompt_ids and mask_length == 0:
            raise ValueError("An empty prompt with mask_length=0 leaves nothing to generate; pass mask_length > 0.")
        sequence = [config.bos_token_id, *prompt_ids] + [config.mask_token_id] * mask_length
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
        }

    def _forward(
        self,
        model_inputs,
        tau=0.01,
        temperature=1.0,
        top_p=1.0,
        generator=None,
        return_trace=False,
        step_callback=None,
        progress_bar=True,
    ):
        rows = model_inputs["rows"]
        config = self.model.config
        sampler = TauLeapSampler(
            self.model,
            tau=tau,
            temperature=temperature,
            top_p=top_p,
            max_length=min(row["max_length"] for row in rows),
            generator=generator,
            suppress_token_ids=[config.mask_token_id, config.bos_token_id, config.pad_token_id],
            progress_bar=progress_bar,
        )
        result = sampler.sample(
            [row["input_ids"] for row in rows],
            [row["protected"] for row in rows],
            [row["open_end"] for row in rows],
            prompt_lengths=[row["prompt_len"] for row in rows],
            return_trace=return_trace,
            step_callback=step_callback,
        )
        # The SamplingResult object passes through Pipeline.forward untouched (it only walks dicts, lists and
        # tensors), so long traces are not copied element by element.
        return {"rows": rows, "result": result}

    def postprocess(self, model_outputs, return_trace=False):
        eos = self.model.config.eos_token_id
        results = []
        result = model_outputs["result"]
        for index, (row, sequence) in enumerate(zip(model_outputs["rows"], result.sequences)):
            generated = sequence[row["prompt_len"] :]
            if eos is not None and eos in generated:
                generated = generated[: generated.index(eos)]
            output = {"generated_text": self.tokenizer.decode(generated, skip_special_tokens=True).strip()}
            if return_trace:
                output["trace"] = result.traces[index]
            results.append(output)
        return results


__all__ = ["EditFlowGenerationPipeline"]
