"""When and where the edits of a tau step fire (Havasi et al. 2025, arXiv 2506.09018, Sec. on sampling): the time grid,
the firing rules, the write order and the step's random numbers. No model call: given the rates of a step's model
pass and its uniforms, these functions decide; [`sampling_editflow.TauLeapSampler`] runs the model and the loop, as a
diffusers pipeline runs its scheduler.

The generative process is a continuous-time Markov chain over sequences. At position i of x_t the model
gives rates per unit of the scheduler weight w(t) = kappa'(t) / (1 - kappa(t)); the chain's rates are
w(t) * rate. Tau-leaping advances t by h = min(tau, 1 - t) and fires every edit independently:

    P(del or sub at i)     = min(1, h * w(t) * (sub_rate[i] + del_rate[i]))   one event per token,
    P(sub | event at i)    = sub_rate[i] / (sub_rate[i] + del_rate[i])       its kind, proportional to the rates,
    P(insert after i)      = min(1, h * w(t) * ins_rate[i])

and applies all fired edits to x_t at once. Deletion and substitution of the same token are mutually
exclusive (they are two outcomes of one event), an insertion can fire in the gap after any token, deleted
or not. t runs 0, tau, 2 tau, ... and the last step ends exactly at t = 1; w is read at the left end of each step,
so it stays finite (for the linear scheduler h * w(1 - tau) = 1 on the last step).

Each row's random numbers are computed from a key made of the run's seed and the row's index ([`counter_uniforms`]:
a hash of key, step and position, no generator per row), so its output does not depend on the batch it is sampled in.
"""

import math

import torch

from .applying_editflow import valid_positions
from .edits_editflow import EDIT_RULES, WRITE_ORDERS

# The finest step size accepted: tau-leaping takes ceil(1 / tau) steps (one encoder pass each), and below this
# floor a typo (1e-7 for 1e-2) would mean millions of passes that look like a hang.
MAX_TAU_STEPS = 10_000
MIN_TAU = 1.0 / MAX_TAU_STEPS


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_edit_params(
    strength: float, edit_rule: str, gain_margin: float = 0.0, fixed_length: bool = False, write_order: str | None = None
) -> None:
    """ValueError naming the fix for a `strength` outside (0, 1], an unknown `edit_rule`, a `gain_margin` outside
    [0, 1), or the gain rule with fixed-length infill."""
    if not _is_number(strength) or not 0.0 < strength <= 1.0:
        raise ValueError(
            f"`strength` must be a number in (0, 1] (1 = the whole path, as for masks); got {strength!r}."
        )
    if edit_rule not in EDIT_RULES:
        raise ValueError(f"`edit_rule` must be one of {', '.join(map(repr, EDIT_RULES))}; got {edit_rule!r}.")
    if not _is_number(gain_margin) or not 0.0 <= gain_margin < 1.0:
        raise ValueError(f"`gain_margin` must be a number in [0, 1) (0 = any expected gain); got {gain_margin!r}.")
    if write_order is not None and write_order not in WRITE_ORDERS:
        raise ValueError(
            f"`write_order` must be one of {', '.join(map(repr, WRITE_ORDERS))} (or None: the model's default); "
            f"got {write_order!r}."
        )
    if fixed_length and edit_rule == "gain":
        raise ValueError('`edit_rule` "gain" deletes and inserts too; fixed-length infill (`infill` "fixed") needs '
                         '`edit_rule` "sample" or "threshold".')


def check_sampling_params(tau: float, temperature: float, top_p: float, top_k: int | None = None) -> None:
    """ValueError naming the fix for a tau outside [MIN_TAU, 1] (at most MAX_TAU_STEPS = 10,000 steps), a
    temperature that is negative or not finite, a top_p outside (0, 1] or a negative top_k. NaN and infinity are refused
    everywhere."""
    if not _is_number(tau) or not 0.0 < tau <= 1.0:  # NaN fails every comparison
        raise ValueError(f"`tau` must be a number in (0, 1]; got {tau!r}. Typical values are 0.01 to 0.05.")
    if tau < MIN_TAU:
        raise ValueError(
            f"`tau` {tau!r} would take {math.ceil(1.0 / tau):,} steps; the sampler allows at most "
            f"{MAX_TAU_STEPS:,} (tau >= {MIN_TAU:g}). Typical values are 0.01 to 0.05."
        )
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"`temperature` must be a finite number >= 0 (0 = greedy); got {temperature!r}.")
    if not _is_number(top_p) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be a number in (0, 1]; got {top_p!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"`top_k` must be an integer >= 0 (0 = no top-k filtering); got {top_k!r}.")


def num_tau_steps(tau: float) -> int:
    """Number of steps from t = 0 to t = 1: ceil(1 / tau), tolerant to float error (1 / 0.01 = 100 steps)."""
    return max(1, math.ceil(1.0 / tau - 1e-6))


_UINT64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment (2**64 / the golden ratio)


def _splitmix64(x: int) -> int:
    """SplitMix64's output function: a bijection of 64-bit integers in which every input bit changes about half
    of the output bits."""
    x = (x + _GOLDEN_GAMMA) & _UINT64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _UINT64
    return x ^ (x >> 31)


def check_seed(seed) -> None:
    """ValueError unless `seed` is None or a whole number from 0 to 2**64 - 1: the one rule of every seed (generation
    config, sampler, pipeline, commands), so that -1 and 2**64 - 1 (the same 64 bits) are not silently one seed."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _UINT64):
        raise ValueError(f"`seed` must be a whole number from 0 to 2**64 - 1, or None; got {seed!r}.")


def row_seed(seed: int, row: int) -> int:
    """Key of sampled row `row` (its global index in the request) in a run seeded with `seed` ([`counter_uniforms`]).
    Mixed rather than added, so seed s row r + 1 and seed s + 1 row r draw unrelated numbers."""
    return _splitmix64(_splitmix64(seed & _UINT64) ^ row) >> 1  # < 2**63


def _as_int64(value: int) -> int:
    """A 64-bit pattern as the signed integer torch's int64 holds."""
    return value - (1 << 64) if value >= (1 << 63) else value


_GOLDEN, _MIX1, _MIX2 = (_as_int64(c) for c in (_GOLDEN_GAMMA, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 tensors (torch's >> keeps the sign)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """[`_splitmix64`] on an int64 tensor, element-wise (int64 products wrap modulo 2**64, on CPU and CUDA)."""
    x = x + _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    return x ^ _shift_right(x, 31)


def counter_uniforms(row_keys: torch.LongTensor, step: int, width: int) -> torch.Tensor:
    """Uniforms in [0, 1) `[NUM_DRAWS, B, width]` (float32, multiples of 2**-24) computed, not drawn: the number of
    draw d at position i of row b in step `step` is a hash of (row_keys[b], step, d, i), so it is the same whatever
    the batch, the row's place in it or the padded width, with no generator per row and no loop over rows.

    The hash is SplitMix64's mixer applied twice: once to the row key and step, once to that and the counter
    (d * 2**32 + i); every input bit changes about half of the output bits, so the numbers are uniform and
    independent across rows, steps, draws and positions."""
    device = row_keys.device
    base = splitmix64(row_keys + _as_int64((step * _GOLDEN_GAMMA) & _UINT64))  # [B]
    counters = (torch.arange(NUM_DRAWS, device=device)[:, None] << 32) | torch.arange(width, device=device)[None, :]
    bits = splitmix64(base[None, :, None] ^ counters[:, None, :])
    return _shift_right(bits, 40).to(torch.float32) * (2.0**-24)


# Random draws of one row and step, one set per position i of the row: whether an edit fires at i, its kind,
# whether an insertion fires after i, and the uniforms that pick the tokens substituted at / inserted after i.
DRAW_EVENT, DRAW_KIND, DRAW_INSERT, DRAW_SUB_TOKEN, DRAW_INS_TOKEN = range(5)
NUM_DRAWS = 5


def edit_permissions(
    protected: torch.BoolTensor, lengths: torch.LongTensor, open_end: torch.BoolTensor
) -> tuple[torch.BoolTensor, torch.BoolTensor]:
    """Where edits may fire, as `(can_edit, can_insert)`, both `[B, L]`.

        can_edit[b, i]   = i < len_b  and  not protected[b, i]                      (substitute / delete token i)
        can_insert[b, i] = i < len_b  and  (not protected[b, i]  or  not protected[b, i + 1])   for i + 1 < len_b
        can_insert[b, i] = not protected[b, i]  or  open_end[b]                       for i = len_b - 1

    A gap is open when one of its neighbours is editable: inside a protected prompt no gap is open, the gap
    after the prompt's last token is (its right neighbour is a mask, or it is the open end of the sequence).
    """
    width = protected.shape[1]
    valid = valid_positions(lengths, width)
    positions = torch.arange(width, device=lengths.device)[None, :]
    can_edit = valid & ~protected
    next_protected = torch.cat([protected[:, 1:], protected.new_ones(protected.shape[0], 1)], dim=1)
    next_editable = (positions + 1 < lengths[:, None]) & ~next_protected
    is_last = positions == lengths[:, None] - 1
    can_insert = valid & (~protected | next_editable | (is_last & open_end[:, None]))
    return can_edit, can_insert


def frontier_edits(
    tokens: torch.LongTensor,
    sub_fire: torch.BoolTensor,
    ins_fire: torch.BoolTensor,
    sub_columns: torch.LongTensor,
    ins_columns: torch.LongTensor,
    mask_token_id: int,
    del_fire: torch.BoolTensor | None = None,
) -> tuple[torch.BoolTensor, ...]:
    """The frontier write order: `(sub_fire, ins_fire)` without the writes whose token head would read a mask's
    hidden state, or a state a mask's substitution reads. A substitution at j whose head reads another column
    (`sub_columns[j]`, j - 1 for a converted decoder's shifted head) waits while that column holds a mask; an
    insertion after j (its head reads `ins_columns[j]`, j itself) waits while that column holds a mask or is the
    column a mask's substitution reads (with the shift: while j + 1 is a mask, whose word the same state predicts,
    so the two would write it twice). Mask deletions (`del_fire` given): in each run of masks one fires per step,
    the leftmost drawn. A run's masks are all alike, so which one goes does not matter, but how fast the run
    shrinks does: with every drawn deletion firing while its writes wait, the masks the writes needed were gone
    and answers ended short of their last words; with only the run's left end deleting (a mask's deletion waiting
    as its substitution does) every surplus mask cost a model pass of its own. One per step shrinks a run no
    faster than its left end is written. Other deletions never wait.

    Why: a mask's state encodes the mask, not a word, so a shifted head reading it at j writes the word that belongs
    at j - 1 (a converted SmolLM2 wrote "The capital capital of Germany Germany"). Waiting lets each run of masks
    be written from its left end, one word after a real one, as the head was trained to read.

    Args:
        tokens: `[B, L]` x_t.
        sub_fire, ins_fire: `[B, L]` the edits drawn this step.
        del_fire: `[B, L]` the deletions drawn this step; when given, `(del_fire, sub_fire, ins_fire)` is returned.
        sub_columns, ins_columns: `[L]` the column each head reads for an edit at each column ([`head_columns`]).
        mask_token_id: the mask's id.
    """
    is_mask = tokens == mask_token_id
    own = torch.arange(tokens.shape[1], device=tokens.device)
    sub_waits = is_mask[:, sub_columns] & (sub_columns != own)
    # columns whose state a mask's substitution reads (the mask itself without a shift)
    read_for_a_mask = torch.zeros(is_mask.shape, dtype=torch.int32, device=tokens.device)
    read_for_a_mask.index_add_(1, sub_columns, is_mask.to(torch.int32))
    ins_waits = is_mask[:, ins_columns] | (read_for_a_mask[:, ins_columns] > 0)
    if del_fire is None:
        return sub_fire & ~sub_waits, ins_fire & ~ins_waits
    return one_deletion_per_run(del_fire, is_mask, sub_waits), sub_fire & ~sub_waits, ins_fire & ~ins_waits


def one_deletion_per_run(del_fire: torch.BoolTensor, is_mask: torch.BoolTensor, waits: torch.BoolTensor) -> torch.BoolTensor:
    """`del_fire` `[B, L]` where, in each run of masks, a mask deletion that `waits` (its write would wait) fires only
    when it is the first drawn in its run. With a shifted head only a run's left end does not wait, so each run loses
    at most one mask per step, its leftmost drawn; without a shift nothing waits and every drawn deletion fires."""
    waiting = del_fire & is_mask & waits
    drawn = torch.cumsum((del_fire & is_mask).long(), dim=1)  # mask deletions drawn up to and at each column
    # at a mask, the count at the real token that opens its run (counts never fall, so a running max carries it)
    before_run = torch.where(is_mask, torch.zeros_like(drawn), drawn).cummax(dim=1).values
    return (del_fire & ~waiting) | (waiting & (drawn - before_run == 1))


def default_write_order(config) -> str:
    """`"frontier"` for a model whose substitution head reads its left neighbour (`sub_head_shift`), where it
    halved the repeated words of a converted SmolLM2's answers; `"parallel"` (every drawn edit fires) otherwise."""
    return "frontier" if getattr(config, "sub_head_shift", False) else "parallel"




class EditFiring:
    """When and where the edits of each step fire, from the rates of the step's model pass (per unit of w(t)) and its
    uniforms: the time grid from the start time to t = 1 and the firing rules. It never calls the model.

    Args:
        scheduler: the model's kappa scheduler (`scheduling_editflow.get_scheduler`), which gives w(t).
        tau: step size in (0, 1].
        mask_token_id: the mask's id (fixed-length infill fills the masks left on the last step; the frontier order
            waits on masks).
        strength: how much of the path is run, in (0, 1]: the run starts at t0 = 1 - strength.
        edit_rule: "sample" (tau-leaping, [`choose_edits`]), "threshold" (rates above 1/2 fire) or "gain" (the edits
            expected to help, [`gain_candidates`] then [`gain_fire`]).
        gain_margin: with the gain rule, the expected gain (in edits) an edit must exceed to fire.
        fixed_length: substitutions only, and every mask left is substituted on the last step ([`sampled_edits`]).
        write_order: "parallel" or "frontier" ([`frontier_edits`]; the sampler supplies the heads' columns).
        max_length: cap on every sequence, or one cap per row ([`within_max_length`]).
    """

    def __init__(
        self, scheduler, *, tau: float, mask_token_id: int, strength: float = 1.0, edit_rule: str = "sample",
        gain_margin: float = 0.0, fixed_length: bool = False, write_order: str = "parallel", max_length=None,
    ):  # fmt: skip
        self.scheduler = scheduler
        self.tau = float(tau)
        self.start_time = 1.0 - float(strength)
        self.mask_token_id = mask_token_id
        self.edit_rule = edit_rule
        self.gain_margin = float(gain_margin)
        self.fixed_length = fixed_length
        self.write_order = write_order
        self.max_length = max_length
        self._weights: list[float] | None = None

    @property
    def num_steps(self) -> int:
        """Steps from the start time (0 unless `strength` < 1) to t = 1."""
        return num_tau_steps(self.tau / (1.0 - self.start_time))

    def step_time(self, step: int) -> float:
        """The time at which step `step` (0-based) starts; `step_time(num_steps)` = 1."""
        return 1.0 if step >= self.num_steps else min(self.start_time + step * self.tau, 1.0)

    def step_weights(self) -> list[float]:
        """h * w(t) of every step, with h the step's length and w read at its start: multiplies the model's rates into
        firing intensities. Computed once (one scheduler call, not one per step)."""
        if self._weights is None:
            times = [self.step_time(step) for step in range(self.num_steps)]
            ends = [self.step_time(step + 1) for step in range(self.num_steps)]
            w = self.scheduler.weight(torch.tensor(times, dtype=torch.float64)).tolist()
            self._weights = [(end - t) * weight for t, end, weight in zip(times, ends, w)]
        return self._weights

    def choose_edits(
        self,
        sub_rate: torch.Tensor,
        del_rate: torch.Tensor,
        ins_rate: torch.Tensor,
        can_edit: torch.BoolTensor,
        can_insert: torch.BoolTensor,
        lengths: torch.LongTensor,
        scale: float,
        draws: torch.Tensor,
    ) -> tuple[torch.BoolTensor, torch.BoolTensor, torch.BoolTensor]:
        """Fire edits with this step's uniforms `draws` (`[NUM_DRAWS, B, L]`, of which u0, u1, u2 are used), returning
        `(del_fire, sub_fire, ins_fire)`, each `[B, L]`:

            event = u0 < min(1, scale * (sub + del))      and can_edit
            sub   = event and  u1 * (sub + del) < sub      (kind proportional to the rates)
            del   = event and not sub
            ins   = u2 < min(1, scale * ins)               and can_insert, and at most max_length - len per row

        (u < min(1, x) is u < x for u in [0, 1), so no clamp is computed.) With `edit_rule="threshold"` the draws
        and `scale` are not used: event = sub + del > 1/2, sub = event and sub >= del, ins = ins > 1/2.
        """
        total = sub_rate + del_rate
        if self.edit_rule == "threshold":
            event = (total > 0.5) & can_edit
            sub_fire = event & (sub_rate >= del_rate)
            ins_fire = (ins_rate > 0.5) & can_insert
        else:
            event = (draws[DRAW_EVENT] < scale * total) & can_edit
            sub_fire = event & (draws[DRAW_KIND] * total < sub_rate)
            ins_fire = (draws[DRAW_INSERT] < scale * ins_rate) & can_insert
        del_fire = event & ~sub_fire
        return del_fire, sub_fire, self.within_max_length(ins_fire, lengths)

    def sampled_edits(self, rates: torch.Tensor, permissions, tokens: torch.LongTensor, lengths: torch.LongTensor,
                      step: int, draws: torch.Tensor) -> tuple[torch.BoolTensor, torch.BoolTensor, torch.BoolTensor]:  # fmt: skip
        """`(del_fire, sub_fire, ins_fire)` of step `step` (0-based; a frontier run's settle steps after t = 1 reuse the
        last step's scale) under the "sample" or "threshold" rule ([`choose_edits`] of the rates `[B, L, 3]`). With
        `fixed_length`: one event per token, always a substitution, and the last step fills every mask left."""
        scale = self.step_weights()[min(step, self.num_steps - 1)]
        del_fire, sub_fire, ins_fire = self.choose_edits(
            rates[..., 0], rates[..., 1], rates[..., 2], *permissions, lengths, scale, draws
        )
        if self.fixed_length:
            sub_fire = sub_fire | del_fire
            if step + 1 >= self.num_steps:
                sub_fire |= permissions[0] & (tokens == self.mask_token_id)
            del_fire, ins_fire = torch.zeros_like(del_fire), torch.zeros_like(ins_fire)
        return del_fire, sub_fire, ins_fire

    def in_write_order(self, tokens: torch.LongTensor, del_fire: torch.BoolTensor, sub_fire: torch.BoolTensor,
                       ins_fire: torch.BoolTensor, head_columns) -> tuple[torch.BoolTensor, ...]:  # fmt: skip
        """`(del_fire, sub_fire, ins_fire)` in the write order: as drawn ("parallel"), or [`frontier_edits`] with the
        columns the model's token heads read (`head_columns(tokens)` -> `(sub_columns, ins_columns)`, asked only then)."""
        if self.write_order != "frontier":
            return del_fire, sub_fire, ins_fire
        return frontier_edits(tokens, sub_fire, ins_fire, *head_columns(tokens), self.mask_token_id, del_fire)

    def within_max_length(self, ins_fire: torch.BoolTensor, lengths: torch.LongTensor) -> torch.BoolTensor:
        """`ins_fire` without the insertions that would take a row beyond `max_length` (the leftmost ones win)."""
        if self.max_length is None:
            return ins_fire
        room = (torch.as_tensor(self.max_length, device=lengths.device) - lengths).clamp_min(0)
        return ins_fire & (ins_fire.long().cumsum(dim=1) <= room[:, None])

    def gain_candidates(self, rates: torch.Tensor, permissions) -> tuple[tuple, tuple]:
        """`edit_rule="gain"`, first half: `(bars, candidates)`. The edits of a step are those expected to shorten the
        edit distance to the text the model believes in.

        The loss is minimised by rates per unit w(t) that are probabilities: sub + del at a token is the
        probability that it still holds an edit, `sub * Q_sub(v)` that it must become v, `del` that it must go,
        and `ins * Q_ins(v)` (about) that v is missing in the gap after it. An edit at a position that holds one
        never lengthens the distance (a wrong token or the other kind leaves one edit there); an edit at a
        position that holds none adds one. So an edit's expected gain is its own probability minus the
        probability that the position needs nothing:

            substitute by v = argmax Q_sub (v != the token)  where  sub * Q_sub(v) > 1 - (sub + del)  and >= del
            delete                                           where  del > 1 - (sub + del)  and > sub * Q_sub(v)
            insert v = argmax Q_ins                          where  ins * Q_ins(v) > 1 - ins

        each by more than `gain_margin`. `bars` `(needs_nothing, gap_needs_nothing)`: the probability that a token,
        and the gap after it, needs nothing, plus the margin. `candidates` `(substitutions, insertions)`: where the
        rate alone clears the bar (a token probability is at most 1), the only positions whose token heads run."""
        sub_rate, del_rate, ins_rate = rates[..., 0], rates[..., 1], rates[..., 2]
        can_edit, can_insert = permissions
        needs_nothing = 1.0 - (sub_rate + del_rate).clamp(max=1.0) + self.gain_margin
        gap_needs_nothing = (1.0 - ins_rate).clamp(min=0.0) + self.gain_margin
        candidates = (can_edit & (sub_rate > needs_nothing), can_insert & (ins_rate > gap_needs_nothing))
        return (needs_nothing, gap_needs_nothing), candidates

    def gain_fire(self, rates: torch.Tensor, permissions, bars, sub_gain: torch.Tensor, ins_gain: torch.Tensor,
                  lengths: torch.LongTensor) -> tuple[torch.BoolTensor, torch.BoolTensor, torch.BoolTensor]:  # fmt: skip
        """`edit_rule="gain"`, second half: `(del_fire, sub_fire, ins_fire)` from the bars of [`gain_candidates`] and
        the gains `rate * Q(best token)` of the candidates (0 elsewhere)."""
        del_rate = rates[..., 1]
        can_edit, can_insert = permissions
        needs_nothing, gap_needs_nothing = bars
        sub_fire = can_edit & (sub_gain > needs_nothing) & (sub_gain >= del_rate)
        del_fire = can_edit & (del_rate > needs_nothing) & (del_rate > sub_gain)
        ins_fire = can_insert & (ins_gain > gap_needs_nothing)
        return del_fire, sub_fire, self.within_max_length(ins_fire, lengths)

    def masks_left(self, tokens: torch.LongTensor, lengths: torch.LongTensor, protected: torch.BoolTensor) -> bool:
        """Whether any editable position still holds a mask (what a frontier run's settle steps write)."""
        can_edit = ~protected & valid_positions(lengths, tokens.shape[1])
        return bool(((tokens == self.mask_token_id) & can_edit).any())


__all__ = [
    "DRAW_EVENT",
    "DRAW_INSERT",
    "DRAW_INS_TOKEN",
    "DRAW_KIND",
    "DRAW_SUB_TOKEN",
    "EDIT_RULES",
    "EditFiring",
    "MAX_TAU_STEPS",
    "MIN_TAU",
    "NUM_DRAWS",
    "WRITE_ORDERS",
    "check_edit_params",
    "check_sampling_params",
    "check_seed",
    "counter_uniforms",
    "default_write_order",
    "edit_permissions",
    "frontier_edits",
    "num_tau_steps",
    "row_seed",
    "splitmix64",
]
