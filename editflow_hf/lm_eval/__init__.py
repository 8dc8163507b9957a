"""lm-evaluation-harness support: an Edit Flow checkpoint as the `editflow` model of lm-eval (`pip install "editflow-hf[lmeval]"`).

    editflow-lm-eval --model editflow --model_args pretrained=CKPT --tasks arc_easy --batch_size 32
    python -m editflow_hf.lm_eval run --model editflow --model_args pretrained=CKPT,num_t=32 --include_path my_tasks --tasks my_task

    import editflow_hf.lm_eval, lm_eval       # importing this module registers the model name "editflow"
    lm_eval.simple_evaluate(model="editflow", model_args="pretrained=CKPT", tasks=["arc_easy"])

`editflow-lm-eval` (= `python -m editflow_hf.lm_eval`) is lm-eval's own command line (`lm_eval ...`, every
subcommand and flag) with the `editflow` model registered: lm-eval finds plug-in models only in modules that were
imported, and its `lm_eval` script imports none of ours.

How requests are answered (an Edit Flow has no left-to-right factorisation, so scores are those of whole sequences):

- `loglikelihood(context, continuation)` = -B(x1 | x0): the Edit Flow bound (`editflow_hf.objective.bound`, the
  model's own training objective) of x1 = BOS + context + continuation (+ EOS, see `append_eos`) given
  x0 = BOS + context + masks, the context protected as a prompt: a lower bound on log p(continuation | context),
  as the Edit Flows paper scores multiple-choice tasks. It is estimated on a fixed grid of `num_t` times with
  draws seeded by `seed` and the context (same request, same number, whatever the batch), so the choices of one
  question share their random numbers and their scores differ by the answers rather than by the draws. The masks follow the coupling the model was trained with
  when that is masks only; a coupling that corrupts x1 would leak the answer into x0, so such a model is scored
  from `mask_length` masks. Contexts that do not fit the encoder's positions lose their oldest tokens.
  `is_greedy` (read only by tasks such as lambada's accuracy) costs a whole sampling run per context, so it is
  computed only with `check_greedy=True` (the most likely token at every edit, `top_k=1`, from the context gives
  exactly the continuation);
  otherwise it is False and a warning says so once.
- `loglikelihood_rolling(text)`: -B of the text cut into windows that fit the encoder, each from BOS alone
  (no context carried between windows), summed.
- `generate_until(context, gen_kwargs)`: the `editflow-generation` pipeline in prompt mode (BOS + context +
  masks, the context protected; `max_gen_toks` caps the new tokens), the text cut at the first `until` string.
  The deterministic decode (`do_sample=False`: the same text every run, see `EditFlowGenerationConfig`) unless
  `do_sample` / `temperature` ask otherwise, as lm-eval expects; `seed` fixes the firing of edits.

Model arguments (`--model_args key=value,...`): `pretrained` (checkpoint folder or Hub id), `device`, `batch_size`
(sequences per forward pass of the bound and inputs per sampling run, default 32), `num_t` (grid points of the
bound, default 16), `seed` (default 0), `x0_sampler` (coupling of the bound, default as above), `append_eos`
(score the continuation as the end of the sequence, followed by EOS; default: true for a checkpoint fine-tuned on
chats, whose answers end with EOS, false otherwise), `tau`, `mask_length` (sampling; default the checkpoint's),
`check_greedy` (default false), `trust_remote_code` (accepted for symmetry with `hf`; the model class is ours).
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import torch
from tqdm import tqdm

try:
    import lm_eval.models  # noqa: F401  (fills lm-eval's registry with its own models first; see its `get_model`)
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
except ImportError as err:
    raise ImportError(f"editflow_hf.lm_eval needs lm-eval ({err}): pip install 'editflow-hf[lmeval]'") from None

from ..modeling.generation_editflow import EditFlowGenerationConfig
from ..modeling.modeling_editflow import EditFlowForEditing
from ..modeling.pipeline_editflow import DEFAULT_BATCH_SIZE, EditFlowGenerationPipeline
from ..objective.bound import sequence_bounds
from ..path.collator import EditFlowCollator
from ..path.couplings import parse_x0_sampler

logger = logging.getLogger(__name__)


def _as_batch_size(value) -> int:
    """lm-eval passes `--batch_size` as an int or a string ("auto", "auto:4", "16")."""
    if value is None or (isinstance(value, str) and value.startswith("auto")):
        return DEFAULT_BATCH_SIZE
    size = int(value)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1; got {value!r}.")
    return size


@register_model("editflow")
class EditFlowLM(TemplateLM):
    """An Edit Flow checkpoint as an lm-eval model (see the module docstring for how each request is scored)."""

    backend = "causal"  # context and continuation are tokenized together, then split (TemplateLM._encode_pair)

    def __init__(
        self,
        pretrained: str,
        device: str | None = None,
        batch_size: int | str | None = DEFAULT_BATCH_SIZE,
        max_batch_size: int | None = None,
        num_t: int = 16,
        seed: int = 0,
        x0_sampler: str | None = None,
        append_eos: bool | None = None,
        tau: float | None = None,
        mask_length: int | None = None,
        check_greedy: bool = False,
        trust_remote_code: bool = True,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        from transformers import AutoTokenizer

        self.pretrained = str(pretrained)
        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            # lm-eval's command line defaults to --device cuda; as its `hf` model does, run on the CPU instead.
            logger.warning("editflow: device %s is not available; using the CPU.", device)
            device = "cpu"
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = _as_batch_size(batch_size)
        if int(num_t) < 1:
            raise ValueError(f"num_t must be >= 1; got {num_t!r}.")
        self.num_t, self.seed, self.check_greedy = int(num_t), int(seed), bool(check_greedy)
        from ..checkpoints import check_model_folder

        check_model_folder(self.pretrained)  # the commands' loading gate: remote-code targets, sizes, weights, tokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(self.pretrained)
        self.model = EditFlowForEditing.from_pretrained(self.pretrained, dtype=getattr(torch, dtype)).to(self._device).eval()
        config = self.model.config
        self.generation = EditFlowGenerationConfig.from_generation_config(getattr(self.model, "generation_config", None))
        self.tau = float(tau) if tau is not None else float(self.generation.tau)
        self.mask_length = int(mask_length) if mask_length is not None else int(self.generation.mask_length)
        self.append_eos = bool(self.generation.chat_template) if append_eos is None else bool(append_eos)
        if self.append_eos and config.eos_token_id is None:
            raise ValueError("append_eos=True needs a tokenizer with an EOS token; this checkpoint has none.")
        self.x0_sampler = self._scoring_coupling(x0_sampler or getattr(config, "x0_sampler", None))
        self.max_positions = int(config.max_sequence_length)  # the one position rule (RoBERTa's offset included)
        self._pipeline = None
        self._warned_greedy = False

    def _scoring_coupling(self, spec: str | None):
        """The x0 coupling of the bound: the given / trained one when it holds masks only, else `mask_length` masks."""
        if spec is None:
            return parse_x0_sampler(f"masks[length:{self.mask_length}]")
        sampler = parse_x0_sampler(spec)
        if sampler.masks_only:
            return sampler
        logger.info("x0_sampler %r corrupts x1 (it would leak the answer into x0): scoring from %d masks.", spec, self.mask_length)
        return parse_x0_sampler(f"masks[length:{self.mask_length}]")

    # --- what TemplateLM needs -------------------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        config = self.model.config
        return config.eos_token_id if config.eos_token_id is not None else config.bos_token_id

    @property
    def prefix_token_id(self) -> int:
        return self.model.config.bos_token_id  # an empty context is BOS alone, as every Edit Flow sequence starts

    @property
    def tokenizer_name(self) -> str:
        return self.pretrained.replace("/", "__")

    @property
    def device(self):
        return self._device

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        # BOS is prepended where a sequence is built; the tokenizer's own specials ([CLS] ... [SEP]) are not text.
        return self.tokenizer(string, add_special_tokens=False)["input_ids"]

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt)

    # --- scoring ---------------------------------------------------------------------------------------------

    def _collator(self) -> EditFlowCollator:
        """A fresh collator seeded with `seed`: every call draws the same x0, alignments and x_t for the same rows."""
        config = self.model.config
        return EditFlowCollator.from_tokenizer(
            self.tokenizer, x0_sampler=self.x0_sampler, scheduler=config.scheduler,
            scheduler_kwargs=config.scheduler_kwargs, tie_break=getattr(config, "tie_break", None) or "auto", seed=self.seed,
        )  # fmt: skip

    def _fits(self, prompt_len: int, n: int) -> bool:
        """Whether BOS + prompt (prompt_len tokens) and n tokens after it fit the encoder at every point of the
        path (x_t holds at most the x0 masks and the x1 tokens after the prompt)."""
        return prompt_len + self.x0_sampler.max_x0_len(n) + n <= self.max_positions

    def _bounds(self, features: list[dict], keys: list[list[int]]) -> list[float]:
        """-log p bounds of `features`; the draws of a row are seeded with (`seed`, crc32 of its key tokens)."""
        if not features:
            return []
        draw_keys = [(self.seed, zlib.crc32(np.asarray(key, dtype=np.int64).tobytes())) for key in keys]
        return sequence_bounds(self.model, features, self._collator(), num_t=self.num_t, batch_size=self.batch_size,
                               draw_keys=draw_keys).tolist()  # fmt: skip

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        bos, eos = self.model.config.bos_token_id, self.model.config.eos_token_id
        features = []
        for (context, continuation), context_enc, continuation_enc in requests:
            context_ids = list(context_enc[1:] if context_enc[:1] == [bos] else context_enc)
            target = list(continuation_enc) + ([eos] if self.append_eos else [])
            if not self._fits(1, len(target)):
                raise ValueError(
                    f"A continuation of {len(target)} tokens does not fit the encoder's {self.max_positions} positions "
                    f"with the x0 coupling {self.x0_sampler.spec!r}."
                )
            while context_ids and not self._fits(1 + len(context_ids), len(target)):
                context_ids = context_ids[1:]  # drop the oldest context tokens, as lm-eval's HF model does
            features.append({"input_ids": [bos, *context_ids, *target], "prompt_len": 1 + len(context_ids)})
        # The choices of one question share their draws (keyed by the context): their scores differ by the answers.
        bounds = self._bounds(features, [f["input_ids"][: f["prompt_len"]] for f in features])
        greedy = self._greedy_matches(requests) if self.check_greedy else [False] * len(requests)
        if not self.check_greedy and not self._warned_greedy:
            self._warned_greedy = True
            logger.warning("editflow: is_greedy is reported False (a sampling run per context); pass check_greedy=True for tasks that read it.")
        results = []
        for ((context, continuation), _, _), bound, is_greedy in zip(requests, bounds, greedy):
            result = (-float(bound), bool(is_greedy))
            self.cache_hook.add_partial("loglikelihood", (context, continuation), result)
            results.append(result)
        return results

    def _greedy_matches(self, requests) -> list[bool]:
        """Whether greedy decoding from each context gives exactly its continuation (one run per distinct context)."""
        wanted = {}
        for (context, _), _, continuation_enc in requests:
            wanted.setdefault(context, max(len(continuation_enc), 1))
        contexts = list(wanted)
        texts = self._generate(contexts, [{"max_gen_toks": wanted[c], "do_sample": False, "top_k": 1} for c in contexts])
        greedy = dict(zip(contexts, texts))
        return [greedy[context] == self.tok_decode(continuation_enc).strip() for (context, _), _, continuation_enc in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        bos = self.model.config.bos_token_id
        window = self.max_positions - 1
        while window > 1 and not self._fits(1, window):
            window -= 1
        features, owner = [], []
        for index, request in enumerate(requests):
            (text,) = request.args
            ids = self.tok_encode(text)
            for start in range(0, len(ids), window):
                features.append({"input_ids": [bos, *ids[start : start + window]], "prompt_len": 1})
                owner.append(index)
        totals = [0.0] * len(requests)
        for index, bound in zip(owner, self._bounds(features, [f["input_ids"] for f in features])):
            totals[index] -= bound
        for request, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    # --- generation ------------------------------------------------------------------------------------------

    @property
    def pipeline(self) -> EditFlowGenerationPipeline:
        if self._pipeline is None:
            self._pipeline = EditFlowGenerationPipeline(model=self.model, tokenizer=self.tokenizer, device=self._device)
        return self._pipeline

    def _generate(self, contexts: list[str], gen_kwargs: list[dict]) -> list[str]:
        """One pipeline call per distinct set of generation arguments, `batch_size` inputs per sampling run."""
        results: list[str | None] = [None] * len(contexts)
        groups: dict[tuple, list[int]] = {}
        for index, kwargs in enumerate(gen_kwargs):
            groups.setdefault(repr(sorted(kwargs.items())), []).append(index)
        for indices in groups.values():
            kwargs = dict(gen_kwargs[indices[0]])
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", self.mask_length))
            do_sample = bool(kwargs.pop("do_sample", False))
            temperature = float(kwargs.pop("temperature", 1.0 if do_sample else 0.0))
            if not do_sample:
                temperature = 0.0
            sampling = {key: kwargs.pop(key) for key in ("top_p", "top_k") if key in kwargs}
            if kwargs:
                logger.warning("editflow: generation arguments %s do not apply to Edit Flow sampling; ignored.", sorted(kwargs))
            mask_length = min(self.mask_length, max_new)
            room = self.max_positions - 1 - max_new
            prompts = []
            for index in indices:
                ids = self.tok_encode(contexts[index])
                # An over-long context loses its oldest tokens (the pipeline refuses a start that does not fit).
                prompts.append(contexts[index] if len(ids) <= room else self.tok_decode(ids[len(ids) - max(room, 0) :]))
            outputs = self.pipeline(
                prompts, tau=self.tau, mask_length=mask_length, max_new_tokens=max_new, temperature=temperature,
                chat_template=False, seed=self.seed, batch_size=self.batch_size, progress_bar=False, **sampling,
            )  # fmt: skip
            for index, [output] in zip(indices, outputs):
                text = output["generated_text"]
                for stop in until:
                    if stop and stop in text:
                        text = text[: text.index(stop)]
                results[index] = text
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        contexts = [request.args[0] for request in requests]
        gen_kwargs = [dict(request.args[1]) for request in requests]
        texts = self._generate(contexts, gen_kwargs)
        for request, text in zip(tqdm(requests, disable=disable_tqdm, desc="editflow generate_until"), texts):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return texts

