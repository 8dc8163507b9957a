"""The model's share of a tau step ([`EditRateRunner`]): the one pass of the encoder and rate head over the rows that
changed, eager or compiled, with classifier-free guidance batched into it, the cache of every row's rates and hidden
states between passes, and the token heads at the fired positions. Remote code: imports only torch and its siblings.

Rows whose sequence did not change since their last pass reuse its rates and hidden states (the model is
time-independent: rates are per unit of w(t)), so only changed rows are run through the encoder. A time-conditioned
model (`config.time_conditioning`) or a guidance scale that varies with t turns the reuse off.

Guidance is the paper's naive rate classifier-free guidance (Havasi et al. 2025, appendix C; `guidance_editflow`):
lambda_c^(1+w) lambda_u^(-w) and Q proportional to Q_c^(1+w) Q_u^(-w), the unconditional pass (x_t without its
prompt) batched beside the conditional one; w = 0 runs no unconditional pass and is the unguided sampler exactly.
"""

import time

import torch

from .applying_editflow import valid_positions
from .edits_editflow import pad_token_id_of
from .guidance_editflow import (
    TimeSchedule,
    condition_lengths,
    guided_logits,
    guided_rates,
    to_conditional_positions,
    unconditional_inputs,
)
from .tokens_editflow import project_tokens


class EditRateRunner:
    """Runs an [`EditFlowForEditing`]-like model for a sampler: `edit_rates` (encoder and rate head, eager or through
    `model.compiled_edit_rates()`), guidance, the row-reuse cache, and the token heads at fired positions.

    Args:
        model: the model; it returns `(rates, hidden)` from `edit_rates` and exposes `sub_head` / `ins_head` and
            `head_columns`.
        guidance: the guidance scale w, a [`TimeSchedule`] (0 = off).
        compile: run `edit_rates` under torch.compile ([`CompiledEditRates`]); `compile_seconds` adds up the time
            spent in the calls that compiled.
        reuse_unchanged_rows: reuse the rates of rows that did not change; None = whenever valid (the model does not
            read t and the guidance scale does not change with t).
    """

    def __init__(self, model, guidance: TimeSchedule, *, compile: bool = False, reuse_unchanged_rows: bool | None = None):
        time_conditioned = bool(getattr(model.config, "time_conditioning", False))
        if reuse_unchanged_rows is None:
            reuse_unchanged_rows = not time_conditioned and guidance.is_constant
        elif reuse_unchanged_rows and (time_conditioned or not guidance.is_constant):
            raise ValueError(
                "reuse_unchanged_rows=True reuses rates computed at an earlier t: not valid for a time-conditioned "
                "model or a guidance scale that changes with t; leave it None."
            )
        self.model = model
        self.guidance = guidance
        self.guided = guidance.spec != 0.0
        self.compile = bool(compile)
        self.reuse_unchanged_rows = reuse_unchanged_rows
        self.pad_token_id = pad_token_id_of(model.config)
        self.compile_seconds = 0.0
        self._compiled = None

    def _model_pass(self, input_ids: torch.LongTensor, attention_mask: torch.BoolTensor, t: float):
        t_rows = torch.full((input_ids.shape[0],), t, device=input_ids.device)
        if not self.compile:
            rates, hidden = self.model.edit_rates(input_ids, attention_mask.long(), t_rows)
            return rates.float(), hidden
        if self._compiled is None:  # looked up once per runner (the model does not move while it samples)
            self._compiled = self.model.compiled_edit_rates()
        compiled = self._compiled
        known = compiled.compilations
        start = time.perf_counter()
        rates, hidden = compiled(input_ids, attention_mask.long(), t_rows)
        if compiled.compilations > known:  # this call compiled (or recorded a CUDA graph)
            self.compile_seconds += time.perf_counter() - start
        return rates.float(), hidden

    def model_rates(
        self, input_ids: torch.LongTensor, attention_mask: torch.BoolTensor, t: float, protected: torch.BoolTensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The one call of the model in a step: rates `[n, w, 3]` (sub, del, ins per unit of w(t); float32, 0 where
        no edit can fire) and last hidden states `[n, w, H]` of `n` rows of x_t at time `t`.

        With guidance, the unconditional rows (x_t without the leading protected tokens after BOS, `protected`) run
        in the same pass; the rates returned are guided, and the hidden states are `[n, w, 2H]`: the conditional
        ones, then the unconditional ones at their conditional positions (the token heads' inputs for
        [`token_logits`])."""
        if not self.guided:
            return self._model_pass(input_ids, attention_mask, t)
        n, width = input_ids.shape
        lengths = attention_mask.sum(dim=1)
        cond_len = condition_lengths(protected & attention_mask).clamp(max=lengths)
        conditioned = (cond_len > 1).nonzero().flatten()  # rows without a prompt need no unconditional pass
        u_ids, u_lengths = unconditional_inputs(input_ids[conditioned], lengths[conditioned], cond_len[conditioned], self.pad_token_id)
        both_ids = torch.cat([input_ids, u_ids], dim=0)
        both_mask = torch.cat([attention_mask, valid_positions(u_lengths, width)], dim=0)
        rates, hidden = self._model_pass(both_ids, both_mask, t)
        u_rates, has = to_conditional_positions(rates[n:], cond_len[conditioned], width)
        u_hidden, _ = to_conditional_positions(hidden[n:], cond_len[conditioned], width)
        rates, hidden = rates[:n], hidden[:n].clone()
        guided, u_hidden_all = rates.clone(), hidden.clone()
        mixed = guided_rates(rates[conditioned], u_rates, self.guidance(t))
        guided[conditioned] = torch.where(has[..., None], mixed, rates[conditioned])
        u_hidden_all[conditioned] = torch.where(has[..., None], u_hidden, hidden[conditioned])
        return guided, torch.cat([hidden, u_hidden_all], dim=-1)

    def refresh(self, state, t: float) -> None:
        """Run the model on the rows of `state` (a `SamplerState`) that changed since their last pass (every row when
        reuse is off) and store their rates and hidden states in the state's caches (`[B, width, ...]`; zeros beyond
        a row's length)."""
        batch, width = state.tokens.shape
        if state.stale.all() or not self.reuse_unchanged_rows:
            # every row: the batch as it is, no gather or scatter (always the case at batch 1)
            state.rate_cache, state.hidden_cache = self.model_rates(
                state.tokens, valid_positions(state.lengths, width), t, state.protected
            )
            return
        rate_cache = self._fit_width(state.rate_cache, width)
        hidden_cache = self._fit_width(state.hidden_cache, width)
        rows = state.stale.nonzero().flatten()
        rows_width = int(state.lengths[rows].max())
        rates, hidden = self.model_rates(
            state.tokens[rows, :rows_width], valid_positions(state.lengths[rows], rows_width), t, state.protected[rows, :rows_width]
        )
        rate_cache[rows] = 0.0
        rate_cache[rows, :rows_width] = rates
        hidden_cache[rows, :rows_width] = hidden
        state.rate_cache, state.hidden_cache = rate_cache, hidden_cache

    @staticmethod
    def _fit_width(cache: torch.Tensor | None, width: int) -> torch.Tensor | None:
        """Pad (zeros) or trim a `[B, L, ...]` cache to `width` columns."""
        if cache is None or cache.shape[1] == width:
            return cache
        if cache.shape[1] > width:
            return cache[:, :width]
        pad = cache.new_zeros((cache.shape[0], width - cache.shape[1], *cache.shape[2:]))
        return torch.cat([cache, pad], dim=1)

    def head_columns(self, tokens: torch.LongTensor) -> tuple[torch.LongTensor, torch.LongTensor]:
        """`(sub_columns, ins_columns)` `[L]`: the column each token head reads for an edit at each column of
        `tokens` `[B, L]` (the model's `head_columns`: j - 1 for a shifted substitution head)."""
        columns = torch.arange(tokens.shape[1], device=tokens.device)
        return self.model.head_columns(columns, self.model.sub_head), self.model.head_columns(columns, self.model.ins_head)

    def head_logits(self, state, where: tuple[torch.Tensor, torch.Tensor], head, t: float) -> torch.Tensor:
        """[`token_logits`] of `head` at the positions `where` (rows, columns) of `state`, from the cached hidden
        states the head reads there (the model's `head_columns`; with guidance the unconditional half of a column is
        the unconditional token of the same column, so the shift holds for it too)."""
        rows, columns = where
        return self.token_logits(head, state.hidden_cache[rows, self.model.head_columns(columns, head)], t)

    def token_logits(self, head, hidden: torch.Tensor, t: float) -> torch.Tensor:
        """Token logits of the fired positions from their hidden states `[m, H]` (`[m, 2H]` with guidance: the
        conditional and unconditional logits combined as (1 + w) log Q_c - w log Q_u)."""
        if not self.guided:
            return project_tokens(head, hidden)
        cond, uncond = hidden.chunk(2, dim=-1)
        return guided_logits(project_tokens(head, cond), project_tokens(head, uncond), self.guidance(t))


__all__ = ["EditRateRunner"]
