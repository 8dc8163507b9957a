"""Edit Flow data collator: from token sequences x1 to a training batch (x_t, t and the remaining edits).

For each example (`input_ids` = x1 starting with BOS, optional `prompt_len` = leading tokens kept fixed):

    x0  = x1[:prompt_len] + [mask] * x0_sampler(len(x1) - prompt_len)      (mask samplers)
          x1[:prompt_len] + corrupt(x1[prompt_len:])                        (`corrupt[p:P]`, `corrupt_words[p:P]`;
                                                                             a mixture draws one of its samplers
                                                                             per example)
    z0, z1 = minimum edit alignment of x0 and x1: closed form for masks (`alignment.align_masks`), the general
             one (`alignment.align`) for corrupted text; noise tokens come from the batch's data tokens
    t  ~ U[0, 1 - time_epsilon),   z_t = column-wise z1 with probability kappa(t), else z0
    x_t = z_t without blanks,      edits = every column with z_t != z1 (`alignment.remaining_edits`)

`tie_break="auto"` (the default) resolves per example by regime, as measured in benchmarks/quality.py
(benchmarks/RESULTS.md, "Model quality by tie-break"): `AUTO_TIE_BREAK["sft"]` for examples with a prompt
(prompt_len > 1), `AUTO_TIE_BREAK["pt"]` for plain text.

Options from the paper (Havasi et al. 2025), each off by default:
- `path="localized"` with `lambda_prop` > 0: z_t from the localized propagation path (appendix C.1,
  `localized.sample_localized_path`) instead of the column-wise draw; each remaining edit carries the propagation
  part of its effective rate, `edit_prop_rate = lambda_prop * (runs next to its column)`, which the loss adds to
  w(t) as that edit's weight.
- `prefix_conditioning=True` (pretraining): a row without a prompt (prompt_len = 1) gets as prompt the first
  1 + floor(c^3 (len(x1) - 1)) tokens of x1, c ~ U[0, 1], except with probability `prefix_drop_prob` (0.1 in the
  paper) where it stays unconditional, so that one model continues prompts and also gives the unconditional
  rates of classifier-free guidance. Rows with a prompt (SFT) keep theirs.

The prompt columns are identical in z0 and z1, so the prompt is in every x_t and never edited. t stays below
1 - time_epsilon because the loss weight w(t) = kappa'/(1 - kappa) diverges at t = 1.

Randomness. When every feature carries a draw key (`DRAW_KEY`: a tuple of non-negative ints, e.g. (seed,
epoch, row index), which `EditFlowTrainer` adds to every training row), the batch's Generator is seeded with
the keys of its rows: its t, x0 and x_t are then a pure function of (seed, epoch, row indices), whatever the
process or the DataLoader worker that collates it, so a run resumed from a checkpoint (same batches, in the
same order) draws exactly what the uninterrupted run drew and no random state needs saving. Otherwise
(evaluation, direct use) batches draw from the collator's numpy Generator, created lazily in the process that
uses it, seeded from `torch.initial_seed()` (different in every worker, reproducible under `torch.manual_seed`
/ `transformers.set_seed`) or, with `seed`, from (seed, worker id). The collator pickles without its Generator.
"""

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..modeling.edits_editflow import EditKind
from ..modeling.scheduling_editflow import KappaScheduler, get_scheduler
from .alignment import BLANK, TIE_BREAKS, align, align_masks, check_tie_break, remaining_edits, sample_zt
from .couplings import DEFAULT_X0_SAMPLER, CorruptWords, X0Sampler, parse_x0_sampler, token_word_roles
from .localized import PATHS, localized_zt, sample_localized_path


@dataclass(init=False, eq=False)
class EditFlowBatch(Mapping):
    """A training batch of [`EditFlowCollator`] (B examples, L = longest x_t, E remaining edits in the batch).

    Attributes:
        input_ids: `[B, L]` long, x_t right-padded with the pad id.
        attention_mask: `[B, L]` long.
        t: `[B]` float32 flow time.
        x1_len: `[B]` float32, len(x1) with BOS (the loss normaliser).
        prompt_len: `[B]` long, protected leading tokens, BOS included (>= 1).
        edit_batch, edit_pos, edit_kind, edit_token: `[E]` long: row, position in x_t, `EditKind` code and target
            token (BLANK = -1 for deletions) of each remaining edit.
        edit_prop_rate: `[E]` float32, the localized path's propagation rate into each edit's column (its
            effective rate is w(t) + edit_prop_rate); zeros for the factorized path, and when not given.

    It is also a read-only Mapping of its fields, so the Trainer, accelerate and the DataLoader move it to a device
    as they move a dict: they rebuild it as `EditFlowBatch({name: tensor})`, which the constructor accepts besides
    keywords.
    """

    input_ids: torch.LongTensor
    attention_mask: torch.LongTensor
    t: torch.FloatTensor
    x1_len: torch.FloatTensor
    prompt_len: torch.LongTensor
    edit_batch: torch.LongTensor
    edit_pos: torch.LongTensor
    edit_kind: torch.LongTensor
    edit_token: torch.LongTensor
    edit_prop_rate: torch.FloatTensor

    def __init__(self, mapping: Mapping | None = None, /, **values):
        values = {**(mapping or {}), **values}
        if "edit_prop_rate" not in values and "edit_kind" in values:  # a factorized batch built by hand
            values["edit_prop_rate"] = torch.zeros(values["edit_kind"].shape, device=values["edit_kind"].device)
        names = [f.name for f in fields(self)]
        missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
        if missing or unknown:
            raise TypeError(f"EditFlowBatch takes exactly the fields {names}; missing {missing}, unknown {unknown}.")
        for name in names:
            setattr(self, name, values[name])

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def to(self, device, non_blocking: bool = False) -> "EditFlowBatch":
        return EditFlowBatch({name: value.to(device, non_blocking=non_blocking) for name, value in self.items()})

    def logits_at(self) -> tuple[torch.BoolTensor, torch.BoolTensor]:
        """`(sub_at, ins_at)`, `[B, L]` bool: the positions whose substitution / insertion token distribution the
        remaining edits need (a gap with several insertions is one position)."""
        sub_at = torch.zeros_like(self.input_ids, dtype=torch.bool)
        ins_at = torch.zeros_like(self.input_ids, dtype=torch.bool)
        is_sub, is_ins = self.edit_kind == EditKind.SUB, self.edit_kind == EditKind.INS
        sub_at[self.edit_batch[is_sub], self.edit_pos[is_sub]] = True
        ins_at[self.edit_batch[is_ins], self.edit_pos[is_ins]] = True
        return sub_at, ins_at

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The model's keyword arguments for this batch: x_t, its mask, t, and the token-logit rows the loss needs
        (`model(**batch.model_inputs())` then `EditFlowLoss()(outputs, batch)`)."""
        sub_at, ins_at = self.logits_at()
        return dict(input_ids=self.input_ids, attention_mask=self.attention_mask, t=self.t,
                    sub_logits_at=sub_at, ins_logits_at=ins_at)  # fmt: skip


DRAW_KEY = "draw_key"

# Chosen by measurement (benchmarks/quality.py, RESULTS.md "Model quality by tie-break"). SFT: "right" answers 7-8
# of 8 trained questions exactly (mean 7.7 over 4 training x 8 sampling seeds) where "left" answers 0-7 (mean
# 3.7) and "spread" 0-4 (mean 1.5), with the lower held-out bound (1.82 vs 2.20 nats per answer token on 40
# pairs). PT: "left" and "right" tie (bound 7.71 vs 7.67, stderr 0.10), "spread" and "random" lose; "left"
# stays, the reference's (dLLM's) layout.
AUTO_TIE_BREAK = {"sft": "right", "pt": "left"}


def regime(prompt_len: int) -> str:
    """The regime of an example: "sft" when it has a prompt after BOS (prompt_len > 1), else "pt". (A run's
    `task` says how its data was formatted; an example's regime is read from the example alone.)"""
    return "sft" if prompt_len > 1 else "pt"


TIE_BREAK_CHOICES = ("auto", *TIE_BREAKS)


def _check_collator_tie_break(tie_break) -> None:
    if isinstance(tie_break, Mapping):
        if set(tie_break) == set(AUTO_TIE_BREAK) and all(value in TIE_BREAKS for value in tie_break.values()):
            return
        raise ValueError(f"A tie_break per regime needs the keys 'sft' and 'pt', each one of {', '.join(TIE_BREAKS)}; got {dict(tie_break)!r}.")
    check_tie_break(tie_break, TIE_BREAK_CHOICES)


def _worker_id() -> int | None:
    info = torch.utils.data.get_worker_info()
    return None if info is None else info.id


class EditFlowCollator:
    """Collate `{"input_ids": x1, "prompt_len": p}` features into Edit Flow training batches.

    Returns an [`EditFlowBatch`] (x_t, attention mask, t, len(x1), prompt length and the remaining edits).
    """

    def __init__(
        self,
        *,
        mask_token_id: int,
        bos_token_id: int,
        pad_token_id: int,
        x0_sampler: "str | X0Sampler" = DEFAULT_X0_SAMPLER,
        scheduler: "str | KappaScheduler" = "linear",
        scheduler_kwargs: dict | None = None,
        time_epsilon: float = 1e-3,
        tie_break: str = "auto",
        pad_to_multiple_of: int | None = None,
        seed: int | None = None,
        path: str = "factorized",
        lambda_prop: float = 0.0,
        prefix_conditioning: bool = False,
        prefix_drop_prob: float = 0.1,
        word_roles: "np.ndarray | None" = None,
    ):
        for name, value in (("mask_token_id", mask_token_id), ("bos_token_id", bos_token_id), ("pad_token_id", pad_token_id)):
            if value is None or int(value) < 0:
                raise ValueError(f"EditFlowCollator needs a non-negative {name}; got {value!r}.")
        _check_collator_tie_break(tie_break)
        if not 0.0 <= time_epsilon < 1.0:
            raise ValueError(f"time_epsilon must be in [0, 1); got {time_epsilon}.")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer or None; got {pad_to_multiple_of}.")
        if path not in PATHS:
            raise ValueError(f"Unknown path {path!r}; valid values: {', '.join(map(repr, PATHS))}.")
        if not (lambda_prop >= 0 and np.isfinite(lambda_prop)):
            raise ValueError(f"lambda_prop must be a finite number >= 0; got {lambda_prop}.")
        if lambda_prop > 0 and path != "localized":
            raise ValueError(f"lambda_prop={lambda_prop} only applies to path='localized' (--path localized).")
        if not 0.0 <= prefix_drop_prob <= 1.0:
            raise ValueError(f"prefix_drop_prob must be in [0, 1]; got {prefix_drop_prob}.")
        self.path = path
        self.lambda_prop = float(lambda_prop)
        self.prefix_conditioning = bool(prefix_conditioning)
        self.prefix_drop_prob = float(prefix_drop_prob)
        self.mask_token_id = int(mask_token_id)
        self.bos_token_id = int(bos_token_id)
        self.pad_token_id = int(pad_token_id)
        self.x0_sampler = parse_x0_sampler(x0_sampler)
        if self.x0_sampler.needs_word_roles and word_roles is None:
            raise ValueError(
                f"x0 sampler {self.x0_sampler.spec!r} corrupts whole words, so the collator needs to know where words "
                "begin: build it with EditFlowCollator.from_tokenizer(tokenizer, ...), or pass "
                "word_roles=token_word_roles(tokenizer)."
            )
        # Per token id: continues a word, begins one, or is a break (`couplings.token_word_roles`).
        self.word_roles = None if word_roles is None else np.asarray(word_roles, dtype=np.int8)
        self.scheduler = get_scheduler(scheduler, **(scheduler_kwargs or {}))
        self.time_epsilon = float(time_epsilon)
        self.tie_break = dict(tie_break) if isinstance(tie_break, Mapping) else tie_break
        self.pad_to_multiple_of = pad_to_multiple_of
        self.seed = seed
        self._rng = None
        self._rng_owner = None

    @classmethod
    def from_tokenizer(cls, tokenizer, **kwargs) -> "EditFlowCollator":
        """Take mask, BOS ([CLS] when the tokenizer has no BOS) and pad ids from a tokenizer; kwargs as `__init__`."""
        if tokenizer.mask_token_id is None:
            raise ValueError(
                f"The tokenizer {type(tokenizer).__name__} has no mask token, which x0 needs. Add one with "
                "tokenizer.add_special_tokens({'mask_token': '[MASK]'}) (and resize the embeddings), or convert the "
                "model with `editflow-convert`, whose saved tokenizer has one."
            )
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
        if bos is None:
            raise ValueError("The tokenizer has neither a BOS nor a [CLS] token; set tokenizer.bos_token, or pass bos_token_id.")
        pad = tokenizer.pad_token_id
        if pad is None:
            raise ValueError("The tokenizer has no pad token; set tokenizer.pad_token (e.g. to its EOS), or pass pad_token_id.")
        ids = dict(mask_token_id=tokenizer.mask_token_id, bos_token_id=bos, pad_token_id=pad)
        if "word_roles" not in kwargs and parse_x0_sampler(kwargs.get("x0_sampler", DEFAULT_X0_SAMPLER)).needs_word_roles:
            ids["word_roles"] = token_word_roles(tokenizer)
        ids.update(kwargs)
        return cls(**ids)

    @property
    def rng(self) -> np.random.Generator:
        """The Generator of this process (and DataLoader worker); a forked copy of the parent's is replaced."""
        owner = (os.getpid(), _worker_id())
        if self._rng is None or self._rng_owner != owner:
            if self.seed is None:
                seed = [torch.initial_seed()]
            else:
                seed = [self.seed] if owner[1] is None else [self.seed, owner[1]]
            self._rng = np.random.default_rng(seed)
            self._rng_owner = owner
        return self._rng

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_rng"] = state["_rng_owner"] = None
        return state

    def _batch_generator(self, features: list) -> np.random.Generator:
        """The Generator of this batch: seeded with the draw keys of its rows when every row has one (one
        SeedSequence over all of them: a pure function of the batch, tens of microseconds), else the shared one."""
        keys = [feature.get(DRAW_KEY) if isinstance(feature, dict) else None for feature in features]
        if all(key is not None for key in keys):
            return np.random.default_rng([int(part) for key in keys for part in key])
        return self.rng

    def _x1_and_prompt_len(self, index: int, feature) -> tuple[np.ndarray, int]:
        if not isinstance(feature, dict) or "input_ids" not in feature:
            raise ValueError(f"Feature {index} must be a dict with 'input_ids' (x1 starting with BOS); got {feature!r:.200}.")
        x1 = np.asarray(feature["input_ids"], dtype=np.int64).reshape(-1)
        prompt_len = int(feature.get("prompt_len", 1))
        if len(x1) == 0 or x1[0] != self.bos_token_id:
            raise ValueError(
                f"Feature {index}: input_ids must start with BOS (id {self.bos_token_id}); tokenize with "
                "add_special_tokens=False and prepend the BOS id."
            )
        if not 1 <= prompt_len <= len(x1):
            raise ValueError(f"Feature {index}: prompt_len must be in [1, len(input_ids)] = [1, {len(x1)}]; got {prompt_len}.")
        return x1, prompt_len

    def _align(self, x1: np.ndarray, prompt_len: int, noise_pool: np.ndarray, rng, noise_words=None) -> tuple[np.ndarray, np.ndarray]:
        """(z0, z1) of one example: x0 drawn from the (drawn component of the) x0 sampler, aligned with x1. Noise
        tokens come from `noise_pool` (the batch's tokens after the prompts), noise words from `noise_words` (the words
        of those tokens, none across two examples)."""
        sampler = self.x0_sampler.draw(rng)
        tie_break = self.resolve_tie_break(prompt_len)
        if sampler.masks_only:
            n_masks = sampler(len(x1) - prompt_len, rng)
            return align_masks(x1, prompt_len, n_masks, self.mask_token_id, tie_break=tie_break, rng=rng)
        pool = noise_words if sampler.needs_word_roles else noise_pool
        x0 = np.concatenate([x1[:prompt_len], sampler.corrupt(x1[prompt_len:], rng, pool, self.word_roles)])
        return align(x0, x1, tie_break=tie_break, rng=rng)

    def resolve_tie_break(self, prompt_len: int) -> str:
        """The tie-break of an example: `tie_break`, or that of its regime (sft when it has a prompt, else pt) in a
        per-regime `tie_break` or, with "auto", in the measured `AUTO_TIE_BREAK`."""
        per_regime = AUTO_TIE_BREAK if self.tie_break == "auto" else self.tie_break  # no copy: runs per example
        return per_regime[regime(prompt_len)] if isinstance(per_regime, dict) else per_regime

    @property
    def tie_breaks_by_regime(self) -> "str | dict[str, str]":
        """What the alignment uses: one tie-break, or one per regime ("auto" spelled out). Checkpoints record it,
        so that evaluation later aligns as training did even if `AUTO_TIE_BREAK` changes."""
        return dict(AUTO_TIE_BREAK) if self.tie_break == "auto" else self.tie_break

    def __call__(self, features: list[dict], t: "np.ndarray | None" = None) -> EditFlowBatch:
        """Collate `features`; `t` (one time per feature) replaces the random times, e.g. for a grid estimate."""
        if len(features) == 0:
            raise ValueError("EditFlowCollator got an empty list of features.")
        examples = [self._x1_and_prompt_len(i, feature) for i, feature in enumerate(features)]
        rng = self._batch_generator(features)
        if t is None:
            t = (rng.random(len(examples)) * (1.0 - self.time_epsilon)).astype(np.float32)
        if self.prefix_conditioning:
            examples = self._with_prefix_prompts(examples, rng)
        t = np.asarray(t, dtype=np.float32).reshape(len(examples))
        kappa = self.scheduler.kappa(torch.from_numpy(t).double()).numpy()
        noise_pool = noise_words = np.zeros(0, np.int64)
        if not self.x0_sampler.masks_only:
            tails = [x1[prompt_len:] for x1, prompt_len in examples]
            noise_pool = np.concatenate(tails)
            if self.x0_sampler.needs_word_roles:
                # Cut per example, so that no word runs from one example into the next.
                noise_words = [word for tail in tails for word in CorruptWords.noise_words(tail, self.word_roles)]

        x_ts, edits, prop_rates = [], [], []
        for b, (x1, prompt_len) in enumerate(examples):
            z0, z1 = self._align(x1, prompt_len, noise_pool, rng, noise_words)
            if self.path == "localized":
                draw = sample_localized_path(len(z0), float(t[b]), self.scheduler, self.lambda_prop, rng)
                z_t = localized_zt(z0, z1, draw)
                prop_rates.append(self.lambda_prop * draw.neighbour_runs[np.flatnonzero(z_t != z1)])
            else:
                z_t = sample_zt(z0, z1, kappa[b], rng)
            x_t, pos, kind, token = remaining_edits(z_t, z1)
            x_ts.append(x_t)
            edits.append((np.full(len(pos), b), pos, kind, token))

        lengths = np.array([len(x) for x in x_ts])
        width = int(lengths.max())
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = np.full((len(x_ts), width), self.pad_token_id, dtype=np.int64)
        attention_mask = np.arange(width)[None, :] < lengths[:, None]
        input_ids[attention_mask] = np.concatenate(x_ts)
        edit_batch, edit_pos, edit_kind, edit_token = (np.concatenate(column).astype(np.int64) for column in zip(*edits))
        edit_prop_rate = np.concatenate(prop_rates) if prop_rates else np.zeros(len(edit_kind))
        return EditFlowBatch(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask.astype(np.int64)),
            t=torch.from_numpy(t),
            x1_len=torch.tensor([len(x1) for x1, _ in examples], dtype=torch.float32),
            prompt_len=torch.tensor([p for _, p in examples], dtype=torch.long),
            edit_batch=torch.from_numpy(edit_batch),
            edit_pos=torch.from_numpy(edit_pos),
            edit_kind=torch.from_numpy(edit_kind),
            edit_token=torch.from_numpy(edit_token),
            edit_prop_rate=torch.from_numpy(edit_prop_rate.astype(np.float32)),
        )

    def _with_prefix_prompts(self, examples: list, rng: np.random.Generator) -> list:
        """Prefix conditioning: rows without a prompt get the first 1 + floor(c^3 (len(x1) - 1)) tokens as one,
        c ~ U[0, 1], unless dropped (probability `prefix_drop_prob`). Draws for every row, so that a row's prefix
        does not depend on the prompts of the others."""
        c, keep = rng.random(len(examples)), rng.random(len(examples)) >= self.prefix_drop_prob
        return [
            (x1, 1 + int(np.floor(c[b] ** 3 * (len(x1) - 1))) if prompt_len == 1 and keep[b] else prompt_len)
            for b, (x1, prompt_len) in enumerate(examples)
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(mask_token_id={self.mask_token_id}, bos_token_id={self.bos_token_id}, "
            f"pad_token_id={self.pad_token_id}, x0_sampler={self.x0_sampler.spec!r}, scheduler={self.scheduler!r}, "
            f"time_epsilon={self.time_epsilon}, tie_break={self.tie_break!r}, path={self.path!r}, "
            f"lambda_prop={self.lambda_prop}, prefix_conditioning={self.prefix_conditioning}, "
            f"prefix_drop_prob={self.prefix_drop_prob})"
        )


__all__ = ["AUTO_TIE_BREAK", "BLANK", "DRAW_KEY", "EditFlowBatch", "EditFlowCollator", "TIE_BREAK_CHOICES"]
