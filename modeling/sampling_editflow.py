"""Batched tau-leaping for Edit Flow models (Havasi et al. 2025, arXiv 2506.09018, Sec. on sampling): [`TauLeapSampler`]
owns the model and the loop, as flow_matching's solvers do, and steps the way a diffusers pipeline steps its scheduler.

A step is a chain of parts, each in its own file and vectorised over the padded batch [B, L] (no Python loop over
positions):

    rates_editflow.EditRateRunner       the model pass over the rows that changed (eager or compiled), guidance, the
                                        row-reuse cache, the token heads at fired positions
    firing_editflow.EditFiring          the time grid and which edits fire (sample / threshold / gain rule, frontier
                                        write order, max_length), from the rates and the step's counter-based uniforms
    tokens_editflow.TokenRule           the tokens of the fired edits (temperature, top_p, top_k, suppressed ids)
    applying_editflow.apply_edits       all fired edits applied at once

The model runs only when some row changed in the last step, and a step in which nothing fires applies nothing.
Each row's random numbers are a hash of the run's seed, the row's index, the step and the position, so a row's output
does not depend on the batch it is sampled in. With `compile=True` the encoder runs under torch.compile at bucketed
widths (`compiling_editflow.CompiledEditRates`, reached through `model.compiled_edit_rates()`).

The public names of those files are importable from this module as well (`from .sampling_editflow import ...`).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers.utils.logging import tqdm

from .applying_editflow import AppliedEdits, apply_edits, unpadded_rows, valid_positions
from .compiling_editflow import COMPILE_WIDTH_BUCKETS, CompiledEditRates, bucket_rows, bucket_width
from .edits_editflow import EDIT_RULES, WRITE_ORDERS, DecodeTrace, TraceStep
from .firing_editflow import (
    DRAW_INS_TOKEN,
    DRAW_SUB_TOKEN,
    MAX_TAU_STEPS,
    MIN_TAU,
    NUM_DRAWS,
    EditFiring,
    check_edit_params,
    check_sampling_params,
    check_seed,
    counter_uniforms,
    default_write_order,
    edit_permissions,
    frontier_edits,
    num_tau_steps,
    row_seed,
)
from .guidance_editflow import TimeSchedule
from .rates_editflow import EditRateRunner
from .scheduling_editflow import get_scheduler
from .tokens_editflow import TokenRule, default_no_repeat_adjacent, project_tokens, sample_tokens


@dataclass
class SamplerState:
    """Where a tau-leaping run stands between two steps (built by [`TauLeapSampler.init_state`], advanced in
    place by [`TauLeapSampler.step`] through [`advance`]).

    Attributes:
        tokens: `[B, L]` current sequences, right-padded.
        lengths: `[B]` current lengths.
        protected: `[B, L]` tokens no deletion / substitution may touch (BOS, a kept prompt).
        open_end: `[B]` rows whose end stays open to insertions after a protected last token.
        step: steps taken so far.
        t: the time reached (0 before the first step, 1 after the last).
        rate_cache: `[B, L, 3]` rates of every row from its last encoder pass (None before the first step).
        hidden_cache: `[B, L, H]` the hidden states of that pass (the token heads read them at fired positions).
        stale: `[B]` rows whose sequence changed since their last encoder pass.
        permissions: `(can_edit, can_insert)` of [`edit_permissions`], recomputed when a row changes.
        row_keys: `[B]` int64, each row's key (`row_seed(seed, row index)`), from which its draws are computed
            ([`counter_uniforms`]).
    """

    tokens: torch.LongTensor
    lengths: torch.LongTensor
    protected: torch.BoolTensor
    open_end: torch.BoolTensor
    step: int = 0
    t: float = 0.0
    rate_cache: torch.Tensor | None = None
    hidden_cache: torch.Tensor | None = None
    stale: torch.BoolTensor | None = None
    permissions: tuple[torch.BoolTensor, torch.BoolTensor] | None = None
    row_keys: torch.LongTensor | None = None

    @classmethod
    def start(cls, sequences: Sequence[Sequence[int]], protected: Sequence[Sequence[bool]], open_end: Sequence[bool],
              row_ids: Sequence[int] | None, *, seed: int, pad_token_id: int, device, t: float) -> "SamplerState":  # fmt: skip
        """The state at time `t` of a batch of start sequences (arguments as in [`TauLeapSampler.sample`]; BOS
        protected), on `device`, row r keyed by `row_seed(seed, row_ids[r])`."""
        if len(protected) != len(sequences) or len(open_end) != len(sequences):
            raise ValueError("`sequences`, `protected` and `open_end` must have one entry per row.")
        row_ids = list(range(len(sequences))) if row_ids is None else [int(r) for r in row_ids]
        if len(row_ids) != len(sequences):
            raise ValueError(f"`row_ids` needs one index per row; got {len(row_ids)} for {len(sequences)} rows.")
        if any(len(ids) == 0 or len(ids) != len(flags) for ids, flags in zip(sequences, protected)):
            raise ValueError("Every row needs at least BOS, and one protection flag per token.")
        batch = len(sequences)
        width = max((len(s) for s in sequences), default=0)
        # built on the host and moved once (one transfer, not one per row)
        tokens = torch.full((batch, width), pad_token_id, dtype=torch.long)
        protection = torch.zeros((batch, width), dtype=torch.bool)
        for row, (ids, flags) in enumerate(zip(sequences, protected)):
            tokens[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            protection[row, : len(flags)] = torch.tensor(list(flags), dtype=torch.bool)
        if width > 0:
            protection[:, 0] = True  # BOS never changes
        return cls(
            tokens=tokens.to(device),
            lengths=torch.tensor([len(s) for s in sequences], dtype=torch.long, device=device),
            protected=protection.to(device),
            open_end=torch.tensor(list(open_end), dtype=torch.bool, device=device),
            t=t,
            stale=torch.ones(batch, dtype=torch.bool, device=device),
            row_keys=torch.tensor([row_seed(seed, row) for row in row_ids], dtype=torch.long, device=device),
        )

    def advance(self, edits: AppliedEdits, t: float) -> "SamplerStep":
        """Take one step's applied edits (or [`AppliedEdits.unchanged`]) and move to time `t`; returns the step."""
        self.step, self.t = self.step + 1, t
        self.tokens, self.lengths, self.protected = edits.tokens, edits.lengths, edits.protected
        self.stale = edits.changed
        return SamplerStep(step=self.step, t=t, edits=edits)

    def sequences(self) -> list[list[int]]:
        """The current token ids of each row, without padding."""
        return unpadded_rows(self.tokens, self.lengths)


@dataclass
class SamplerStep:
    """What one tau step did to the batch: [`TauLeapSampler.step`] returns it, [`TauLeapSampler.iter_steps`] yields it.

    Attributes:
        step: 1-based index of the step.
        t: the time reached by the step.
        edits: the fired edits, applied (new tokens, lengths, and which tokens were inserted / substituted / deleted).
    """

    step: int
    t: float
    edits: AppliedEdits

    def sequences(self) -> list[list[int]]:
        """The token ids of each row after this step, without padding."""
        return unpadded_rows(self.edits.tokens, self.edits.lengths)

    def record(self, traces: "list[DecodeTrace]") -> list[TraceStep | None]:
        """Append this step to the trace of every row it changed; return [`trace_steps`]."""
        row_steps = self.trace_steps()
        for trace, row_step in zip(traces, row_steps):
            if row_step is not None:
                trace.steps.append(row_step)
        return row_steps

    def trace_steps(self) -> list[TraceStep | None]:
        """This step as a [`TraceStep`] for each row it changed, None for the others."""
        rows: list[TraceStep | None] = [None] * self.edits.changed.shape[0]
        changed_rows = self.edits.changed.nonzero().flatten().tolist()
        if not changed_rows:
            return rows
        edits = self.edits
        tokens, lengths = edits.tokens.cpu(), edits.lengths.cpu()
        inserted, substituted, deleted = edits.inserted.cpu(), edits.substituted.cpu(), edits.deleted.cpu()
        for row in changed_rows:
            n = int(lengths[row])
            rows[row] = TraceStep(
                step=self.step,
                t=float(self.t),
                tokens=tokens[row, :n].tolist(),
                inserted=inserted[row, :n].nonzero().flatten().tolist(),
                substituted=substituted[row, :n].nonzero().flatten().tolist(),
                deleted=deleted[row].nonzero().flatten().tolist(),
            )
        return rows


@dataclass
class SamplingResult:
    """Output of [`TauLeapSampler.sample`]: the final token ids of each row and, when asked, its trace."""

    sequences: list[list[int]]
    traces: list[DecodeTrace] | None = None


class TauLeapSampler:
    """Batched tau-leaping for an [`EditFlowForEditing`]-like model (`edit_rates`, `sub_head` / `ins_head`,
    `head_columns`). Its parts: `firing` ([`EditFiring`]: the time grid, which edits fire), `runner`
    ([`EditRateRunner`]: the model, guidance, the row-reuse cache), `token_rule` ([`TokenRule`]: the token draws).

    It steps: `state = sampler.init_state(...)`, then `sampler.step(state)` once per tau step (`num_steps`, then a
    frontier run's settle steps), or `for step in sampler.iter_steps(...)`; `sample(...)` runs that loop to the end
    (`EditFlowDecode.run`, behind `model.generate` and the pipeline, runs it over rows built from prompts).

        for step in sampler.iter_steps(sequences, protected, open_end):
            print(step.step, step.t, step.trace_steps()[0])   # the edits of row 0 (None if it did not change)

    Args:
        model: the Edit Flow model (eval mode is set by the caller).
        tau: step size in (0, 1].
        temperature, top_p, top_k, suppress_token_ids: the token draws ([`TokenRule`]); temperature 0 = greedy, or a
            function of t (a pair (at t=0, at t=1) or a formula such as "0.8*t + 1.0*(1-t)").
        max_length: cap on every sequence, or one cap per row; insertions beyond it do not fire (leftmost ones win).
        seed: the run's seed. Row r is keyed by `row_seed(seed, row_ids[r])` (`row_ids`: 0..B-1 unless given), and
            its uniforms are a hash of that key, the step and the position ([`counter_uniforms`]), so a row's output
            depends on the seed and its index only. None: drawn from `generator` (or torch's) at each `init_state`.
        generator: source of the seed when `seed` is None.
        reuse_unchanged_rows: reuse the rates of rows that did not change; None (default) = whenever valid: the
            model does not read t and the guidance scale does not change with t.
        progress_bar: show a tqdm bar over the steps.
        guidance_scale: w of naive rate classifier-free guidance ([`EditRateRunner`]); 0 = off. A number, or a
            function of t as `temperature`. The paper's w (its code models use 0.5); transformers' CFG scale is 1 + w.
            Needs a model trained with dropped prompts (`config.prefix_conditioning`, or SFT data without prompts).
        fixed_length: substitutions only, at the rate of both, and every mask left is substituted on the last step.
        compile: run the encoder and rate head under torch.compile (`model.compiled_edit_rates()`: bucketed widths,
            CUDA graphs on GPU); `compile_seconds` adds up the time spent in the calls that compiled.
        strength: how much of the path is run, in (0, 1] (diffusers img2img's `strength`): the start sequences are
            placed at t0 = 1 - strength and ceil(strength / tau) steps take them to t = 1.
        edit_rule: "sample" (tau-leaping: probability h * w(t) * rate), "threshold" (rate per unit w(t) above 1/2)
            or "gain" (for revising text: the edits expected to help, token and kind chosen together; deterministic).
        gain_margin: with `edit_rule="gain"`, the expected gain (in edits) an edit must exceed to fire.
        write_order: "parallel" (every drawn edit fires) or "frontier" ([`frontier_edits`]: a write whose token head
            would read a mask's state waits for that mask; masks left at t = 1 get settle steps at the last step's
            time and scale until one changes nothing). None: the model's default ([`default_write_order`]).
        no_repeat_adjacent: a written token never equals a token beside it ([`TokenRule`]). None: the model's
            default ([`default_no_repeat_adjacent`]: on for a shifted substitution head).
    """

    def __init__(
        self,
        model,
        *,
        tau: float = 0.01,
        temperature: "float | str | tuple[float, float]" = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        max_length: int | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        suppress_token_ids: Sequence[int] = (),
        reuse_unchanged_rows: bool | None = None,
        progress_bar: bool = False,
        guidance_scale: "float | str | tuple[float, float]" = 0.0,
        fixed_length: bool = False,
        compile: bool = False,
        strength: float = 1.0,
        edit_rule: str = "sample",
        gain_margin: float = 0.0,
        write_order: str | None = None,
        no_repeat_adjacent: bool | None = None,
    ):
        if no_repeat_adjacent is None:
            no_repeat_adjacent = default_no_repeat_adjacent(model.config)
        self.token_rule = TokenRule(temperature, top_p, top_k, suppress_token_ids, no_repeat_adjacent)
        guidance = TimeSchedule(guidance_scale, "guidance_scale")
        check_sampling_params(tau, self.token_rule.temperature_at(0.0), top_p, top_k)
        check_edit_params(strength, edit_rule, gain_margin, fixed_length, write_order)
        config = model.config
        self.firing = EditFiring(
            get_scheduler(config.scheduler, **(config.scheduler_kwargs or {})), tau=tau, mask_token_id=config.mask_token_id,
            strength=strength, edit_rule=edit_rule, gain_margin=gain_margin, fixed_length=fixed_length,
            write_order=default_write_order(config) if write_order is None else write_order, max_length=max_length,
        )  # fmt: skip
        self.runner = EditRateRunner(model, guidance, compile=compile, reuse_unchanged_rows=reuse_unchanged_rows)
        check_seed(seed)
        self.model = model
        self.seed = seed
        self.generator = generator
        self.progress_bar = progress_bar
        self.pad_token_id = self.runner.pad_token_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_steps(self) -> int:
        """Steps from the start time (0 unless `strength` < 1) to t = 1."""
        return self.firing.num_steps

    @property
    def compile_seconds(self) -> float:
        """Seconds spent in the model calls that compiled (with `compile=True`)."""
        return self.runner.compile_seconds

    def draw_uniforms(self, state: SamplerState) -> torch.Tensor:
        """This step's uniforms in [0, 1), `[NUM_DRAWS, B, L]`, keyed by each row's key, the step and the position
        ([`counter_uniforms`]): a row's draws do not depend on the batch it is in. Override for deterministic firing."""
        return counter_uniforms(state.row_keys, state.step, state.tokens.shape[1])

    def init_state(self, sequences, protected, open_end, row_ids=None) -> SamplerState:
        """The state at the start time of a batch of start sequences (arguments as in [`sample`]), on the model's device."""
        seed = self.seed
        if seed is None:
            seed_source = self.generator.device if self.generator is not None else "cpu"
            seed = int(torch.randint(0, 2**62, (), generator=self.generator, device=seed_source))
        return SamplerState.start(
            sequences, protected, open_end, row_ids, seed=seed, pad_token_id=self.pad_token_id, device=self.device,
            t=self.firing.start_time,
        )  # fmt: skip

    def step(self, state: SamplerState) -> SamplerStep:
        """One tau step from `state.t` to min(t + tau, 1): refresh the rates of the rows that changed, fire edits,
        draw their tokens and apply them all at once. Advances `state` in place and returns the step's edits.

        On CPU it runs under `torch.inference_mode` (a step is ~40 small tensor operations, each cheaper without
        autograd's version counters; the state's tensors become inference tensors), elsewhere `torch.no_grad`."""
        with torch.inference_mode() if state.tokens.device.type == "cpu" else torch.no_grad():
            return self._step(state)

    def _step(self, state: SamplerState) -> SamplerStep:
        firing = self.firing
        settling = state.step >= firing.num_steps  # a frontier run's step after t = 1: the last step's time and scale
        if settling and (firing.write_order != "frontier" or not firing.masks_left(state.tokens, state.lengths, state.protected)):
            raise ValueError(f"The run is complete: t = 1 after {firing.num_steps} steps; start a new one with init_state().")
        last = min(state.step, firing.num_steps - 1)
        t, t_next = firing.step_time(last), firing.step_time(last + 1)
        if not self.runner.reuse_unchanged_rows or state.stale.any():
            self.runner.refresh(state, t)
            state.permissions = edit_permissions(state.protected, state.lengths, state.open_end)
        if firing.edit_rule == "gain":
            del_fire, sub_fire, ins_fire, sub_tokens, ins_tokens = self.gain_edits(state, t)
            del_fire, sub_fire, ins_fire = firing.in_write_order(state.tokens, del_fire, sub_fire, ins_fire, self.runner.head_columns)
            if not (del_fire.any() or sub_fire.any() or ins_fire.any()):
                return state.advance(AppliedEdits.unchanged(state.tokens, state.lengths, state.protected), t_next)
        else:
            draws = self.draw_uniforms(state)
            del_fire, sub_fire, ins_fire = firing.sampled_edits(
                state.rate_cache, state.permissions, state.tokens, state.lengths, state.step, draws
            )
            del_fire, sub_fire, ins_fire = firing.in_write_order(state.tokens, del_fire, sub_fire, ins_fire, self.runner.head_columns)
            del_count, sub_count, ins_count = torch.stack([del_fire, sub_fire, ins_fire]).flatten(1).sum(1).tolist()
            if del_count == sub_count == ins_count == 0:
                return state.advance(AppliedEdits.unchanged(state.tokens, state.lengths, state.protected), t_next)
            sub_tokens, ins_tokens = self._fired_tokens(state, t, draws, (sub_count, sub_fire), (ins_count, ins_fire))
        edits = apply_edits(
            state.tokens, state.lengths, state.protected, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens,
            self.pad_token_id,
        )  # fmt: skip
        return state.advance(edits, t_next)

    def _fired_tokens(self, state: SamplerState, t: float, draws: torch.Tensor, sub, ins) -> tuple[torch.LongTensor, ...]:
        """`(sub_tokens, ins_tokens)` `[B, L]` of the fired edits (`sub`, `ins`: `(count, fire)`): the heads at the
        fired positions only, both heads' tokens in one draw (each row is drawn alone: the same tokens as apart)."""
        sub_tokens = torch.zeros_like(state.tokens)
        ins_tokens = torch.zeros_like(state.tokens)
        fired = [
            (fire.nonzero(as_tuple=True), head, stream, tokens)
            for (count, fire), head, stream, tokens in (
                (sub, self.model.sub_head, DRAW_SUB_TOKEN, sub_tokens),
                (ins, self.model.ins_head, DRAW_INS_TOKEN, ins_tokens),
            )
            if count
        ]
        if fired:
            logits = [
                self.token_rule.without_repeats(self.runner.head_logits(state, where, head, t), state, where, head is self.model.sub_head)
                for where, head, _, _ in fired
            ]
            uniforms = [draws[stream][where] for where, _, stream, _ in fired]
            drawn = self.token_rule.draw(torch.cat(logits) if len(logits) > 1 else logits[0], t, torch.cat(uniforms))
            for (where, _, _, tokens), part in zip(fired, drawn.split([len(part) for part in logits])):
                tokens[where] = part
        return sub_tokens, ins_tokens

    def gain_edits(self, state: SamplerState, t: float) -> tuple[torch.Tensor, ...]:
        """`edit_rule="gain"`: the edits of this step and their tokens, `(del_fire, sub_fire, ins_fire, sub_tokens,
        ins_tokens)` (each `[B, L]`), chosen where each is expected to shorten the edit distance to the text the model
        believes in ([`EditFiring.gain_candidates`]). The token heads run only at the candidates; suppressed ids are
        never chosen; probabilities are the model's own (temperature 1, no renormalisation after suppression)."""
        rates = state.rate_cache
        bars, (sub_candidates, ins_candidates) = self.firing.gain_candidates(rates, state.permissions)
        sub_gain, ins_gain = torch.zeros_like(rates[..., 0]), torch.zeros_like(rates[..., 2])
        sub_tokens, ins_tokens = torch.zeros_like(state.tokens), torch.zeros_like(state.tokens)
        suppress = self.token_rule.suppress_ids(state.tokens.device)
        for candidates, rate, gain, tokens, head in (
            (sub_candidates, rates[..., 0], sub_gain, sub_tokens, self.model.sub_head),
            (ins_candidates, rates[..., 2], ins_gain, ins_tokens, self.model.ins_head),
        ):
            where = candidates.nonzero(as_tuple=True)
            if where[0].numel() == 0:
                continue
            log_q = self.runner.head_logits(state, where, head, t).float().log_softmax(-1)
            log_q.index_fill_(1, suppress, float("-inf"))
            self.token_rule.without_repeats(log_q, state, where, head is self.model.sub_head)
            if head is self.model.sub_head:  # a substitution changes the token
                log_q.scatter_(1, state.tokens[where][:, None], float("-inf"))
            best, tokens[where] = log_q.max(dim=-1)
            gain[where] = rate[where] * best.exp()
        fired = self.firing.gain_fire(rates, state.permissions, bars, sub_gain, ins_gain, state.lengths)
        return (*fired, sub_tokens, ins_tokens)

    def iter_steps(self, sequences, protected, open_end, row_ids=None) -> Iterator[SamplerStep]:
        """Run tau-leaping from the start time (1 - strength) to t = 1, yielding every step's edits (arguments as in
        [`sample`]). Stopping the iteration early stops the sampling."""
        state = self.init_state(sequences, protected, open_end, row_ids)
        if state.tokens.shape[0] == 0:
            return
        for _ in tqdm(range(self.num_steps), desc="tau-leaping", disable=not self.progress_bar, leave=False):
            yield self.step(state)
        if self.firing.write_order != "frontier":
            return
        # settle: masks a waiting write left at t = 1 get steps at the last step's time and scale, one per mask at
        # most, until a step changes nothing
        for _ in range(int(state.tokens.shape[1])):
            if not self.firing.masks_left(state.tokens, state.lengths, state.protected):
                return
            settled = self.step(state)
            yield settled
            if not bool(settled.edits.changed.any()):
                return

    def sample(
        self, sequences, protected, open_end, prompt_lengths=None, return_trace: bool = False, row_ids=None
    ) -> SamplingResult:
        """Run [`iter_steps`] to the end on a batch of start sequences: the final rows, and their traces.

        Args:
            sequences (`Sequence[Sequence[int]]`): start token ids of each row, BOS first (e.g. BOS + prompt + masks).
            protected (`Sequence[Sequence[bool]]`): per token, True where no deletion / substitution may happen (BOS is
                always protected).
            open_end (`Sequence[bool]`): per row, whether insertions may extend it after a protected last token.
            prompt_lengths (`Sequence[int]`, *optional*): per row, the `prompt_len` of its trace (default 1: BOS).
            return_trace (`bool`): record a [`DecodeTrace`] of every row.
            row_ids (`Sequence[int]`, *optional*): per row, its global index in the request, which keys its random
                draws (default 0..B-1).
        """
        traces = DecodeTrace.start(sequences, prompt_lengths) if return_trace else None
        last = None
        for last in self.iter_steps(sequences, protected, open_end, row_ids):
            if traces is not None:
                last.record(traces)
        final = last.sequences() if last is not None else [[int(x) for x in ids] for ids in sequences]
        return SamplingResult(sequences=final, traces=traces)


__all__ = [
    "AppliedEdits",
    "COMPILE_WIDTH_BUCKETS",
    "CompiledEditRates",
    "DRAW_INS_TOKEN",
    "DRAW_SUB_TOKEN",
    "EDIT_RULES",
    "EditFiring",
    "EditRateRunner",
    "MAX_TAU_STEPS",
    "MIN_TAU",
    "NUM_DRAWS",
    "SamplerState",
    "SamplerStep",
    "SamplingResult",
    "TauLeapSampler",
    "TokenRule",
    "WRITE_ORDERS",
    "apply_edits",
    "bucket_rows",
    "bucket_width",
    "check_edit_params",
    "check_sampling_params",
    "counter_uniforms",
    "default_no_repeat_adjacent",
    "default_write_order",
    "edit_permissions",
    "frontier_edits",
    "num_tau_steps",
    "project_tokens",
    "row_seed",
    "sample_tokens",
    "unpadded_rows",
    "valid_positions",
]
