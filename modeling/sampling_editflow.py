"""Batched tau-leaping for Edit Flow models (Havasi et al. 2025, arXiv 2506.09018, Sec. on sampling).

The generative process is a continuous-time Markov chain over sequences. At position i of x_t the model
gives rates per unit of the scheduler weight w(t) = kappa'(t) / (1 - kappa(t)); the chain's rates are
w(t) * rate. Tau-leaping advances t by h = min(tau, 1 - t) and fires every edit independently:

    P(del or sub at i)     = min(1, h * w(t) * (sub_rate[i] + del_rate[i]))   one event per token,
    P(sub | event at i)    = sub_rate[i] / (sub_rate[i] + del_rate[i])       its kind, proportional to the rates,
    P(insert after i)      = min(1, h * w(t) * ins_rate[i])

and applies all fired edits to x_t at once. Deletion and substitution of the same token are mutually
exclusive (they are two outcomes of one event), an insertion can fire in the gap after any token, deleted
or not. Token values come from the substitution / insertion heads, evaluated only at fired positions.
t runs 0, tau, 2 tau, ... and the last step ends exactly at t = 1; w is read at the left end of each step,
so it stays finite (for the linear scheduler h * w(1 - tau) = 1 on the last step).

Everything per step is tensor ops on the padded batch [B, L]: no Python loop over positions. Rows whose
sequence did not change since their last forward reuse its rates and hidden states (the model is
time-independent: rates are per unit of w(t)), so only changed rows are run through the encoder, and a step
in which nothing fires applies nothing. A time-conditioned model (`config.time_conditioning`) or a guidance
scale that varies with t turns the reuse off. Each row's random numbers are computed from a key made of the run's
seed and the row's index ([`counter_uniforms`]: a hash of key, step and position, no generator per row), so its
output does not depend on the batch it is sampled in. With
`compile=True` the encoder runs under torch.compile at bucketed widths ([`CompiledEditRates`]).

The paper's sampler settings (Havasi et al. 2025, appendix C; `guidance_editflow`): the token temperature may
be a function of t (e.g. "0.8*t + 1.0*(1-t)"), and `guidance_scale` w applies naive rate classifier-free guidance,
lambda_c^(1+w) lambda_u^(-w) and Q proportional to Q_c^(1+w) Q_u^(-w), the unconditional pass (x_t without its
prompt) batched beside the conditional one; w = 0 runs no unconditional pass and is the unguided sampler exactly.
"""

import math
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers.utils.logging import tqdm

from .edits_editflow import DecodeTrace, TraceStep
from .guidance_editflow import (
    TimeSchedule,
    condition_lengths,
    guided_logits,
    guided_rates,
    to_conditional_positions,
    unconditional_inputs,
)
from .scheduling_editflow import get_scheduler


@dataclass
class AppliedEdits:
    """Result of [`apply_edits`] on a padded batch.

    Attributes:
        tokens: `[B, L']` new sequences, right-padded.
        lengths: `[B]` new lengths.
        protected: `[B, L']` protection carried along with the tokens (inserted tokens are unprotected).
        inserted: `[B, L']` True at tokens inserted by this step (indices into the new tokens).
        substituted: `[B, L']` True at tokens whose value a substitution changed (indices into the new tokens).
        deleted: `[B, L]` True at deleted tokens (indices into the previous tokens).
        changed: `[B]` True for rows whose sequence differs from before.
    """

    tokens: torch.LongTensor
    lengths: torch.LongTensor
    protected: torch.BoolTensor
    inserted: torch.BoolTensor
    substituted: torch.BoolTensor
    deleted: torch.BoolTensor
    changed: torch.BoolTensor

    @classmethod
    def unchanged(cls, tokens: torch.LongTensor, lengths: torch.LongTensor, protected: torch.BoolTensor) -> "AppliedEdits":
        """A step in which no edit fired: the same sequences, nothing inserted, substituted or deleted."""
        none = torch.zeros_like(protected)
        return cls(tokens, lengths, protected, none, none, none, none.new_zeros(tokens.shape[0]))


def unpadded_rows(tokens: torch.LongTensor, lengths: torch.LongTensor) -> list[list[int]]:
    """The token ids of each row of a right-padded `[B, L]` batch, without padding."""
    return [row[:n].tolist() for row, n in zip(tokens.cpu(), lengths.cpu().tolist())]


def valid_positions(lengths: torch.Tensor, width: int) -> torch.BoolTensor:
    """`[B, width]` mask of the real (non-padding) positions: valid[b, i] = i < lengths[b]."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


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


def apply_edits(
    tokens: torch.LongTensor,
    lengths: torch.LongTensor,
    protected: torch.BoolTensor,
    del_fire: torch.BoolTensor,
    sub_fire: torch.BoolTensor,
    sub_tokens: torch.LongTensor,
    ins_fire: torch.BoolTensor,
    ins_tokens: torch.LongTensor,
    pad_token_id: int,
) -> AppliedEdits:
    """Apply all fired edits of one step at once to a right-padded batch.

    Position i emits keep_i + ins_i tokens: its own token (the substituted value if sub_fire[i]) unless
    deleted, then the inserted token if ins_fire[i]. With emitted = keep + ins and
    start_i = cumsum(emitted)_i - emitted_i, the kept token lands at new index start_i and the inserted
    one at start_i + keep_i; a scatter writes both (sources that emit nothing go to a discarded column).
    A deletion wins over a substitution fired at the same position.
    """
    batch, width = tokens.shape
    valid = valid_positions(lengths, width)
    keep = valid & ~del_fire
    insert = valid & ins_fire
    emitted = keep.long() + insert.long()
    end = emitted.cumsum(dim=1)
    start = end - emitted
    new_lengths = end[:, -1] if width > 0 else lengths.clone()
    new_width = int(new_lengths.max()) if batch > 0 else 0
    discard = new_width  # one extra column collects the writes of sources that emit nothing

    effective_sub = keep & sub_fire & (sub_tokens != tokens)
    kept_values = torch.where(effective_sub, sub_tokens, tokens)
    kept_target = torch.where(keep, start, discard)
    insert_target = torch.where(insert, start + keep.long(), discard)

    new_tokens = tokens.new_full((batch, new_width + 1), pad_token_id)
    new_tokens.scatter_(1, kept_target, kept_values)
    new_tokens.scatter_(1, insert_target, ins_tokens)
    new_protected = protected.new_zeros((batch, new_width + 1))
    new_protected.scatter_(1, kept_target, protected & keep)
    inserted = protected.new_zeros((batch, new_width + 1))
    inserted.scatter_(1, insert_target, insert)
    substituted = protected.new_zeros((batch, new_width + 1))
    substituted.scatter_(1, kept_target, effective_sub)

    deleted = valid & del_fire
    changed = deleted.any(dim=1) | insert.any(dim=1) | effective_sub.any(dim=1)
    return AppliedEdits(
        tokens=new_tokens[:, :new_width],
        lengths=new_lengths,
        protected=new_protected[:, :new_width],
        inserted=inserted[:, :new_width],
        substituted=substituted[:, :new_width],
        deleted=deleted,
        changed=changed,
    )


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    suppress_token_ids: Sequence[int] = (),
    top_k: int | None = None,
    uniforms: torch.Tensor | None = None,
    overwrite_logits: bool = False,
) -> torch.LongTensor:
    """Draw one token per row of `logits` `[N, V]`: argmax when `temperature == 0`, else from
    softmax(logits / temperature) restricted to the `top_k` most likely tokens (`None` or 0: all), then to the
    smallest top set whose mass reaches `top_p` (nucleus), as transformers' top-k then top-p warpers do.
    `suppress_token_ids` (mask, BOS, padding; ids or a tensor of them) get probability 0. `uniforms` `[N]` in
    [0, 1): the draw of each row (default: drawn from `generator`). `overwrite_logits`: float32 `logits` the caller
    no longer needs are worked on in place (one copy of `[N, V]` fewer).

    Sampling inverts the CDF, token = min{k : cdf[k] > u * cdf[V-1]} with one uniform u per row: it needs
    one draw per row where `torch.multinomial` draws one exponential per vocabulary entry (several times
    slower for a 30k-50k vocabulary, and token sampling is a large part of a batched step on CPU).
    """
    if logits.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=logits.device)
    # A fresh float32 copy, modified in place from here on (fewer passes over the vocabulary).
    if temperature not in (0, 1):
        scores = logits.float() / temperature
    elif overwrite_logits and logits.dtype == torch.float32:
        scores = logits
    else:
        scores = logits.float().clone()
    if len(suppress_token_ids) > 0:
        ids = suppress_token_ids if torch.is_tensor(suppress_token_ids) else list(suppress_token_ids)
        suppress = torch.as_tensor(ids, device=scores.device)
        scores.index_fill_(1, suppress, float("-inf"))
    if temperature == 0:
        return scores.argmax(dim=-1)
    if top_k and top_k < scores.shape[-1]:
        # ties with the k-th score stay in, as in transformers' TopKLogitsWarper
        kth_best = scores.topk(top_k, dim=-1).values[:, -1:]
        scores.masked_fill_(scores < kth_best, float("-inf"))
    # Unnormalised probabilities exp(s - max s): the CDF's last entry is the normaliser.
    weights = scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
    sorted_ids = None
    if top_p < 1.0:
        weights, sorted_ids = weights.sort(dim=-1, descending=True)
        cdf = weights.cumsum(dim=-1)
        # keep token k while the mass before it is below top_p (the top token is always kept)
        weights = weights.masked_fill(cdf - weights >= top_p * cdf[:, -1:], 0.0)
    cdf = weights.cumsum_(dim=-1)
    if uniforms is None:
        uniforms = torch.rand((cdf.shape[0],), generator=generator, device=cdf.device)
    u = uniforms.to(cdf.dtype)[:, None] * cdf[:, -1:]
    choice = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
    if sorted_ids is not None:
        choice = sorted_ids.gather(1, choice)
    return choice.squeeze(-1)


# The finest step size accepted: tau-leaping takes ceil(1 / tau) steps (one encoder pass each), and below this
# floor a typo (1e-7 for 1e-2) would mean millions of passes that look like a hang.
MAX_TAU_STEPS = 10_000
MIN_TAU = 1.0 / MAX_TAU_STEPS


WRITE_ORDERS = ("parallel", "frontier")


def frontier_edits(
    tokens: torch.LongTensor,
    sub_fire: torch.BoolTensor,
    ins_fire: torch.BoolTensor,
    sub_columns: torch.LongTensor,
    ins_columns: torch.LongTensor,
    mask_token_id: int,
) -> tuple[torch.BoolTensor, torch.BoolTensor]:
    """The frontier write order: `(sub_fire, ins_fire)` without the writes whose token head would read a mask's
    hidden state, or a state a mask's substitution reads. A substitution at j whose head reads another column
    (`sub_columns[j]`, j - 1 for a converted decoder's shifted head) waits while that column holds a mask; an
    insertion after j (its head reads `ins_columns[j]`, j itself) waits while that column holds a mask or is the
    column a mask's substitution reads (with the shift: while j + 1 is a mask, whose word the same state predicts,
    so the two would write it twice). Deletions never wait.

    Why: a mask's state encodes the mask, not a word, so a shifted head reading it at j writes the word that belongs
    at j - 1 (a converted SmolLM2 wrote "The capital capital of Germany Germany"). Waiting lets each run of masks
    be written from its left end, one word after a real one, as the head was trained to read.

    Args:
        tokens: `[B, L]` x_t.
        sub_fire, ins_fire: `[B, L]` the edits drawn this step.
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
    return sub_fire & ~sub_waits, ins_fire & ~ins_waits


def default_write_order(config) -> str:
    """`"frontier"` for a model whose substitution head reads its left neighbour (`sub_head_shift`), where it
    removed repeated words (benchmarks/RESULTS.md); `"parallel"` (every drawn edit fires) otherwise."""
    return "frontier" if getattr(config, "sub_head_shift", False) else "parallel"


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


EDIT_RULES = ("sample", "threshold", "gain")


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


def check_sampling_params(
    tau: float, temperature: float, top_p: float, top_k: int | None = None, *, flag_prefix: str = ""
) -> None:
    """ValueError naming the fix for a tau outside [MIN_TAU, 1] (at most MAX_TAU_STEPS = 10,000 steps), a
    temperature that is negative or not finite, a top_p outside (0, 1] or a negative top_k. NaN and infinity are refused
    everywhere. `flag_prefix="--"` names the command-line flags in the messages."""
    tau_name, temperature_name, top_p_name = (f"`{flag_prefix}{name}`" for name in ("tau", "temperature", "top_p"))
    if not _is_number(tau) or not 0.0 < tau <= 1.0:  # NaN fails every comparison
        raise ValueError(f"{tau_name} must be a number in (0, 1]; got {tau!r}. Typical values are 0.01 to 0.05.")
    if tau < MIN_TAU:
        raise ValueError(
            f"{tau_name} {tau!r} would take {math.ceil(1.0 / tau):,} steps; the sampler allows at most "
            f"{MAX_TAU_STEPS:,} (tau >= {MIN_TAU:g}). Typical values are 0.01 to 0.05."
        )
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"{temperature_name} must be a finite number >= 0 (0 = greedy); got {temperature!r}.")
    if not _is_number(top_p) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"{top_p_name} must be a number in (0, 1]; got {top_p!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"`{flag_prefix}top_k` must be an integer >= 0 (0 = no top-k filtering); got {top_k!r}.")


# Widths a compiled step pads x_t to: the width changes with every insertion or deletion, and a compiled graph (a
# CUDA graph above all) is specialised to its shapes, so the step runs at the next bucket up and records a new
# graph only when a sequence crosses into a new bucket. Steps of 16 up to 256 (a sequence of BOS + 64 masks
# hovers around 65: coarse buckets would pad it to 96), then 64, 256 and 512 (at most ~1/5 padding beyond 256).
COMPILE_WIDTH_BUCKETS = (
    *range(16, 257, 16), *range(320, 1025, 64), *range(1280, 4097, 256), *range(4608, 8193, 512)
)  # fmt: skip


def bucket_width(width: int, cap: int | None = None) -> int:
    """The smallest bucket of `COMPILE_WIDTH_BUCKETS` holding `width` (multiples of 1024 beyond), at most `cap`
    (the encoder's positions) and never less than `width`."""
    bucket = next((b for b in COMPILE_WIDTH_BUCKETS if b >= width), -(-width // 1024) * 1024)
    return max(width, min(bucket, cap)) if cap else bucket


def bucket_rows(rows: int) -> int:
    """The power of two holding `rows` (a compiled step runs the changed rows of a batch, a varying count)."""
    return 1 << max(0, rows - 1).bit_length()


# The transposed vocabulary projection of each token head, for [`project_tokens`]: id(decoder weight) -> ((the weight's
# version, storage), W^T row-major), dropped when the weight is freed: nothing outlives the model or travels when it is saved.
_TRANSPOSED_DECODERS: dict[int, tuple[tuple, torch.Tensor]] = {}


def _transposed_decoder(weight: torch.Tensor) -> torch.Tensor:
    cached = _TRANSPOSED_DECODERS.get(id(weight))
    if cached is None:
        weakref.finalize(weight, _TRANSPOSED_DECODERS.pop, id(weight), None)
    state = (weight._version, weight.data_ptr(), weight.dtype)  # changed by training, loading, `.data =`, `.half()`
    if cached is None or cached[0] != state:
        with torch.no_grad():
            cached = (state, weight.detach().t().contiguous())
        _TRANSPOSED_DECODERS[id(weight)] = cached
    return cached[1]


def project_tokens(head, hidden: torch.Tensor) -> torch.Tensor:
    """`head(hidden)` for a few rows of hidden states `[m, H]` (the fired positions of a step).

    On CPU the vocabulary projection x W^T + b is computed as addmm(b, x, W^T) from a row-major copy of W^T: for
    the few rows of a step, torch's CPU `linear` runs 1.4-2.8x slower (one row: 0.13 vs 0.07 ms at 30522 x 32,
    4.8 vs 1.7 ms at MiniLM's 30522 x 384, 14 vs 10 ms at ModernBERT-large's 50368 x 1024; benchmarks/RESULTS.md).
    The copy (the decoder's size again) is made once and again only after the weight changes (training). The
    logits equal `linear`'s to float rounding (another summation order). Elsewhere (GPU, more than 16 rows, a head
    without `transform` + a linear `decoder`), `head(hidden)` itself."""
    decoder = getattr(head, "decoder", None)
    if (
        hidden.device.type != "cpu"
        or not hasattr(head, "transform")
        or not isinstance(decoder, torch.nn.Linear)
        or hidden.shape[0] > 16  # many rows (a batch): measured up to 16, beyond that `linear` stays
    ):
        return head(hidden)
    transposed = _transposed_decoder(decoder.weight)
    x = head.transform(hidden)
    return x @ transposed if decoder.bias is None else torch.addmm(decoder.bias, x, transposed)


def _serialisable_guards(entries) -> list[bool]:
    """The guards an ahead-of-time compiled step keeps (torch's own rule for precompiled functions): none on
    object identities or globals. What they protected (the same model object, the same code) holds by construction
    here: a [`CompiledEditRates`] belongs to one model and calls it only."""
    from torch._dynamo.guards import CheckFunctionManager

    unsupported = CheckFunctionManager.UNSUPPORTED_SERIALIZATION_GUARD_TYPES
    return [
        not (
            entry.is_global
            or entry.guard_type in unsupported
            or any(g in unsupported for g in entry.derived_guard_types)
            or _type_defined_in_local_scope(entry)
        )
        for entry in entries
    ]


def _type_defined_in_local_scope(entry) -> bool:
    """A type guard on an object whose class was made inside a function, which torch cannot save into a package:
    e.g. the per-model rotary wrappers (`Func`) that transformers >= 5.25 attaches through the `kernels` package.
    The guard checks that the model's own attribute keeps its class, which holds by construction here."""
    if entry.guard_type not in ("TYPE_MATCH", "BUILTIN_MATCH") or not entry.has_value:
        return False
    kind = type(entry.value)
    return kind.__qualname__ != kind.__name__


def _dynamo_graphs_compiled() -> int:
    """Graphs torch.compile has compiled in this process (its own counter)."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def _row_major(x: torch.Tensor) -> torch.Tensor:
    """`x` `[B, L]` with strides (L, 1): itself, or a copy."""
    return x if x.stride() == (x.shape[1], 1) else x.clone(memory_format=torch.contiguous_format)


class CompiledEditRates:
    """`model.edit_rates` under `torch.compile`, compiled once for many shapes.

    On CPU the step runs at its own shape: the width (and, beyond one row, the row count) is compiled dynamic, so a
    sequence that grows or shrinks reuses the same graph. Where torch offers ahead-of-time compilation
    (`torch.compile(...).aot_compile`, torch >= 2.9), the graph is called without torch.compile's per-call guard
    check (~750 guards, ~0.1-0.15 ms a call at batch 1: a sixth of a compiled step): the guards are checked once per
    new input signature (shapes, dtypes, grad mode, train/eval) and a signature they reject compiles another graph.
    Elsewhere (older torch, a backbone that does not compile to one graph) it is plain `torch.compile`.

    On CUDA the mode is "reduce-overhead" (CUDA graphs: one launch per step instead of one per kernel), and a CUDA
    graph is specialised to its shapes, so rows are padded to a power of two and the width to [`bucket_width`]:
    padded columns are masked out (attention mask 0) and padded rows hold BOS alone; both are cut off before
    returning. One instance per model is shared by every sampler ([`for_model`]), so a pipeline's batches reuse the
    compiled graphs."""

    MAX_GRAPHS = 8  # ahead-of-time graphs per model before falling back to plain torch.compile

    def __init__(self, model, bucketed: bool | None = None):
        self.model = model
        self.parameter = next(model.parameters())  # its dtype and device key the graphs (`.half()` keeps the object)
        self.on_cuda = self.parameter.device.type == "cuda"
        self.bucketed = self.on_cuda if bucketed is None else bucketed
        self.mode = "reduce-overhead" if self.on_cuda else None
        # dynamic=None: a second shape recompiles once with symbolic sizes, which then serve every bucket
        self.compiled = torch.compile(model.edit_rates, mode=self.mode)
        self.ahead_of_time = not self.on_cuda and hasattr(self.compiled, "aot_compile")
        self.graphs: list = []  # ahead-of-time compiled functions, guard check disabled
        self.graph_for: dict[tuple, object] = {}  # input signature -> the graph whose guards accepted it
        # the model's position rule (RoBERTa's offset applied): a bucket never pads past the positions
        self.width_cap = getattr(model.config, "max_sequence_length", None)
        self.pad_token_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        self.shapes: set[tuple[int, int]] = set()  # the shapes run so far (padded ones where bucketed)
        self.compilations = 0  # calls that compiled (or may have): ahead-of-time graphs, new shapes or buckets otherwise

    def __reduce__(self):
        # kept in the model's __dict__, so pickled (or deep-copied) with it, as torch does when it saves a graph's
        # guards: compiled graphs do not travel; a copy of the model compiles its own
        return (type(None), ())

    @classmethod
    def for_model(cls, model) -> "CompiledEditRates":
        compiled = model.__dict__.get("_editflow_compiled_rates")
        if compiled is None or compiled.on_cuda != (next(model.parameters()).device.type == "cuda"):  # new or moved
            compiled = cls(model)
            model.__dict__["_editflow_compiled_rates"] = compiled  # not a submodule: no state_dict entry
        return compiled

    def __call__(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, t: torch.Tensor):
        rows, width = input_ids.shape
        if not self.bucketed:
            # row-major strides: a row of a wider buffer has a larger row stride (contiguous all the same, with one
            # row), which the graph's guards reject
            input_ids, attention_mask = _row_major(input_ids), _row_major(attention_mask)
            graph = self._graph(input_ids, attention_mask, t) if self.ahead_of_time else None
            self.shapes.add((rows, width))
            if graph is None:  # plain torch.compile: count the calls that really compiled a graph
                graphs_before = _dynamo_graphs_compiled()
                output = self.compiled(input_ids, attention_mask, t)
                self.compilations += _dynamo_graphs_compiled() > graphs_before
                return output
            return graph(self.model, input_ids, attention_mask, t)
        padded_rows, padded_width = bucket_rows(rows), bucket_width(width, self.width_cap)
        if (padded_rows, padded_width) != (rows, width):
            ids = input_ids.new_full((padded_rows, padded_width), self.pad_token_id)
            ids[:rows, :width] = input_ids
            ids[rows:, 0] = input_ids[0, 0]  # filler rows: BOS alone (no all-masked attention row)
            mask = attention_mask.new_zeros((padded_rows, padded_width))
            mask[:rows, :width] = attention_mask
            mask[rows:, 0] = 1
            times = t.new_zeros(padded_rows)
            times[:rows] = t
            input_ids, attention_mask, t = ids, mask, times
        if (padded_rows, padded_width) not in self.shapes:
            self.compilations += 1  # a new bucket compiles (or records a CUDA graph)
        self.shapes.add((padded_rows, padded_width))
        if self.on_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        rates, hidden = self.compiled(input_ids, attention_mask, t)
        rates, hidden = rates[:rows, :width], hidden[:rows, :width]
        if self.on_cuda:  # CUDA-graph outputs live in buffers the next replay overwrites; the sampler keeps them
            rates, hidden = rates.clone(), hidden.clone()
        return rates, hidden

    def _graph(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, t: torch.Tensor):
        """The ahead-of-time graph for these inputs: looked up by their signature, else the first graph whose guards
        accept them, else a new one (None once ahead-of-time compilation failed or made MAX_GRAPHS graphs)."""
        signature = (
            tuple(input_ids.shape), input_ids.dtype, attention_mask.dtype, t.dtype, tuple(t.shape), torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(), self.model.training, self.parameter.dtype, self.parameter.device,
        )  # fmt: skip
        graph = self.graph_for.get(signature)
        if graph is not None:
            return graph
        graph = next((g for g in self.graphs if g.guard_check(self.model, input_ids, attention_mask, t)), None)
        if graph is None:
            if len(self.graphs) >= self.MAX_GRAPHS:
                return None
            graph = self._compile_ahead(input_ids, attention_mask, t)
            if graph is None:
                return None
        self.graph_for[signature] = graph
        return graph

    def _compile_ahead(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, t: torch.Tensor):
        """One graph for inputs like these, with the width (and more than one row) dynamic; None (and plain
        torch.compile from then on) where torch cannot compile it ahead of time (e.g. a graph break)."""
        example = [input_ids.clone(), attention_mask.clone(), t.clone()]
        for dim, size in enumerate(input_ids.shape):
            if size > 1:  # a size-1 dimension stays static (torch specialises 0 and 1)
                torch._dynamo.mark_dynamic(example[0], dim)
                torch._dynamo.mark_dynamic(example[1], dim)
        if input_ids.shape[0] > 1:
            torch._dynamo.mark_dynamic(example[2], 0)
        try:
            graph = torch.compile(
                self.model.edit_rates, fullgraph=True, options={"guard_filter_fn": _serialisable_guards}
            ).aot_compile((tuple(example), {}))
            graph.disable_guard_check()
        except Exception:  # noqa: BLE001 - any failure here means: compile the usual way
            self.ahead_of_time = False
            return None
        self.graphs.append(graph)
        self.compilations += 1
        return graph


_UINT64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment (2**64 / the golden ratio)


def _splitmix64(x: int) -> int:
    """SplitMix64's output function: a bijection of 64-bit integers in which every input bit changes about half
    of the output bits."""
    x = (x + _GOLDEN_GAMMA) & _UINT64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _UINT64
    return x ^ (x >> 31)


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
    (d * 2**32 + i); every input bit changes about half of the output bits (tests/test_sampling.py checks
    uniformity and independence across rows, steps, draws and positions)."""
    device = row_keys.device
    base = splitmix64(row_keys + _as_int64((step * _GOLDEN_GAMMA) & _UINT64))  # [B]
    counters = (torch.arange(NUM_DRAWS, device=device)[:, None] << 32) | torch.arange(width, device=device)[None, :]
    bits = splitmix64(base[None, :, None] ^ counters[:, None, :])
    return _shift_right(bits, 40).to(torch.float32) * (2.0**-24)


# Random draws of one row and step, one set per position i of the row: whether an edit fires at i, its kind,
# whether an insertion fires after i, and the uniforms that pick the tokens substituted at / inserted after i.
DRAW_EVENT, DRAW_KIND, DRAW_INSERT, DRAW_SUB_TOKEN, DRAW_INS_TOKEN = range(5)
NUM_DRAWS = 5


def num_tau_steps(tau: float) -> int:
    """Number of steps from t = 0 to t = 1: ceil(1 / tau), tolerant to float error (1 / 0.01 = 100 steps)."""
    return max(1, math.ceil(1.0 / tau - 1e-6))


@dataclass
class SamplerState:
    """Where a tau-leaping run stands between two steps (built by [`TauLeapSampler.init_state`], advanced in
    place by [`TauLeapSampler.step`]).

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
    """Batched tau-leaping for an [`EditFlowForEditing`]-like model.

    The model must return `sub_rate`, `del_rate`, `ins_rate` and `last_hidden_state`, and expose its token
    heads as `sub_head` / `ins_head` (hidden -> logits): the sampler runs the encoder once per step with
    empty `sub_logits_at` / `ins_logits_at` masks and applies the heads to the cached hidden states of the
    fired positions only, so a step costs one encoder pass over the changed rows.

    Like a diffusers scheduler it steps: `state = sampler.init_state(...)`, then `sampler.step(state)` once per
    tau step (`sampler.num_steps` of them), or `for step in sampler.iter_steps(...)`; `sample()` is that loop.

        for step in sampler.iter_steps(sequences, protected, open_end):
            print(step.step, step.t, step.trace_steps()[0])   # the edits of row 0 (None if it did not change)

    Args:
        model: the Edit Flow model (eval mode is set by the caller).
        tau: step size in (0, 1].
        temperature: 0 = greedy tokens; 1 = the model's distributions; or a function of t: a pair (at t=0, at t=1)
            or a formula such as "0.8*t + 1.0*(1-t)" (the paper's code sampler), see `guidance_editflow.TimeSchedule`.
        top_p: nucleus mass in (0, 1].
        top_k: keep the k most likely tokens before top_p (None or 0: all).
        max_length: cap on every sequence, or one cap per row; insertions beyond it do not fire (leftmost ones win).
        seed: the run's seed. Row r of a batch is keyed by `row_seed(seed, row_ids[r])` (`row_ids` default to
            0..B-1; the pipeline passes global indices), and its `NUM_DRAWS` uniforms per position per step are a
            hash of that key, the step and the position ([`counter_uniforms`]), so a row's output depends on the
            seed and its index only, not on the batch it shares or the padded width. None: drawn from `generator`
            (or torch's global generator) at each `init_state`.
        generator: source of the seed when `seed` is None.
        suppress_token_ids: ids never produced by a substitution or insertion (mask, BOS, padding).
        reuse_unchanged_rows: reuse the rates of rows that did not change; None (default) = whenever valid: the
            model does not read t and the guidance scale does not change with t.
        progress_bar: show a tqdm bar over the steps.
        guidance_scale: w of naive rate classifier-free guidance (module doc); 0 = off. A number, or a function of
            t as `temperature`. The paper's w (its code models use 0.5); transformers' CFG scale is 1 + w. Needs a
            model trained with dropped prompts (`config.prefix_conditioning`, or SFT data without prompts).
        fixed_length: substitutions only (each editable token fires as a substitution, at the rate of both; no
            insertion, no deletion) and every mask still left is substituted on the last step: each mask becomes
            exactly one token (fixed-length infill).
        compile: run the model's encoder and rate head under `torch.compile` ([`CompiledEditRates`]: bucketed
            widths, CUDA graphs on GPU). The first steps at each new bucket pay the compilation (seconds to minutes);
            the sampler's `compile_seconds` adds up the time spent in those first calls.
        strength: how much of the path is run, in (0, 1] (diffusers img2img's `strength`): the start sequences are
            placed at t0 = 1 - strength and ceil(strength / tau) steps take them to t = 1. 1 = the whole path (masks
            and corrupted text are x0, at t = 0); below 1 a text to revise is treated as already partly revised, so
            the model expects fewer edits (a time-conditioned model reads t0; every model runs fewer steps).
        edit_rule: "sample" (tau-leaping: an edit fires with probability h * w(t) * rate) or "threshold" (an edit
            fires, at every step, where its rate per unit w(t) is above 1/2: the model's probability that the
            position still holds an edit, so it fires where an edit is more likely than not; the kind is the larger
            of the substitution and deletion rates). "threshold" is deterministic apart from the token draws and does
            not integrate small false-alarm rates over the steps. "gain" (for revising text) fires, at every step,
            the edits expected to bring the text closer to what the model believes, token and kind chosen together
            ([`gain_edits`]): deterministic, with the most likely tokens (temperature, top_p, top_k unused).
        gain_margin: with `edit_rule="gain"`, the expected gain (in edits) an edit must exceed to fire: 0 fires every
            edit the model expects to help; a margin guards against a model more confident than it is right.
        write_order: "parallel" (every drawn edit fires) or "frontier" ([`frontier_edits`]: a write whose token head
            would read a mask's state waits for that mask to be written; masks left at t = 1 get further steps at
            the last step's time and scale, `settle` steps, until one changes nothing). None: the model's default
            ([`default_write_order`]: "frontier" for a shifted substitution head).
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
    ):
        self.temperature_schedule = TimeSchedule(temperature, "temperature")
        self.guidance = TimeSchedule(guidance_scale, "guidance_scale")
        check_sampling_params(tau, self.temperature_schedule(0.0), top_p, top_k)
        check_edit_params(strength, edit_rule, gain_margin, fixed_length, write_order)
        config = model.config
        self.write_order = default_write_order(config) if write_order is None else write_order
        time_conditioned = bool(getattr(config, "time_conditioning", False))
        if reuse_unchanged_rows is None:
            reuse_unchanged_rows = not time_conditioned and self.guidance.is_constant
        elif reuse_unchanged_rows and (time_conditioned or not self.guidance.is_constant):
            raise ValueError(
                "reuse_unchanged_rows=True reuses rates computed at an earlier t: not valid for a time-conditioned "
                "model or a guidance scale that changes with t; leave it None."
            )
        self.model = model
        self.tau = float(tau)
        self.start_time = 1.0 - float(strength)
        self.edit_rule = edit_rule
        self.gain_margin = float(gain_margin)
        self.guided = self.guidance.spec != 0.0
        self.top_p = float(top_p)
        self.top_k = top_k
        self.max_length = max_length
        self.generator = generator
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an integer or None; got {seed!r}.")
        self.seed = seed
        self.suppress_token_ids = sorted({int(i) for i in suppress_token_ids if i is not None})
        self.reuse_unchanged_rows = reuse_unchanged_rows
        self.progress_bar = progress_bar
        self.fixed_length = fixed_length
        self.mask_token_id = config.mask_token_id
        self.compile = bool(compile)
        self._compiled_rates: CompiledEditRates | None = None
        self._suppress_tensor: torch.Tensor | None = None  # suppress_token_ids on the device ([`_suppress_ids`])
        self.compile_seconds = 0.0
        self.scheduler = get_scheduler(config.scheduler, **(config.scheduler_kwargs or {}))
        self.pad_token_id = config.pad_token_id if config.pad_token_id is not None else 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_steps(self) -> int:
        """Steps from the start time (0 unless `strength` < 1) to t = 1."""
        return num_tau_steps(self.tau / (1.0 - self.start_time))

    def step_time(self, step: int) -> float:
        """The time at which step `step` (0-based) starts; `step_time(num_steps)` = 1."""
        return 1.0 if step >= self.num_steps else min(self.start_time + step * self.tau, 1.0)

    def draw_uniforms(self, state: "SamplerState") -> torch.Tensor:
        """This step's uniforms in [0, 1), `[NUM_DRAWS, B, L]`, keyed by each row's key, the step and the position
        ([`counter_uniforms`]): a row's draws do not depend on the batch it is in. Override for deterministic firing."""
        return counter_uniforms(state.row_keys, state.step, state.tokens.shape[1])

    def step_weight(self, t: float, t_next: float) -> float:
        """h * w(t) with h = t_next - t: multiplies the model's rates into firing intensities for this step."""
        w = self.scheduler.weight(torch.tensor([t], dtype=torch.float64))
        return float((t_next - t) * w)

    def _step_weights(self) -> list[float]:
        """[`step_weight`] of every step, computed once (one scheduler call instead of one per step)."""
        if getattr(self, "_weights", None) is None:
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
        """Fire edits with this step's uniforms `draws` (`[NUM_DRAWS, B, L]`, of which u0, u1, u2 are used), returning `(del_fire, sub_fire, ins_fire)`, each
        `[B, L]`:

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

    def frontier(self, tokens: torch.LongTensor, sub_fire: torch.BoolTensor, ins_fire: torch.BoolTensor):
        """[`frontier_edits`] with the columns this model's heads read."""
        columns = torch.arange(tokens.shape[1], device=tokens.device)
        return frontier_edits(
            tokens, sub_fire, ins_fire, self.model.head_columns(columns, self.model.sub_head),
            self.model.head_columns(columns, self.model.ins_head), self.mask_token_id,
        )  # fmt: skip

    def masks_left(self, state: "SamplerState") -> bool:
        """Whether any editable position still holds a mask (what a frontier run's settle steps write)."""
        can_edit = ~state.protected & valid_positions(state.lengths, state.tokens.shape[1])
        return bool(((state.tokens == self.mask_token_id) & can_edit).any())

    def within_max_length(self, ins_fire: torch.BoolTensor, lengths: torch.LongTensor) -> torch.BoolTensor:
        """`ins_fire` without the insertions that would take a row beyond `max_length` (the leftmost ones win)."""
        if self.max_length is None:
            return ins_fire
        room = (torch.as_tensor(self.max_length, device=lengths.device) - lengths).clamp_min(0)
        return ins_fire & (ins_fire.long().cumsum(dim=1) <= room[:, None])

    def gain_edits(self, state: "SamplerState", t: float) -> tuple[torch.BoolTensor, ...]:
        """`edit_rule="gain"`: the edits of this step and their tokens, `(del_fire, sub_fire, ins_fire, sub_tokens,
        ins_tokens)` (each `[B, L]`), chosen where each is expected to shorten the edit distance to the text the
        model believes in.

        The loss is minimised by rates per unit w(t) that are probabilities: sub + del at a token is the
        probability that it still holds an edit, `sub * Q_sub(v)` that it must become v, `del` that it must go,
        and `ins * Q_ins(v)` (about) that v is missing in the gap after it. An edit at a position that holds one
        never lengthens the distance (a wrong token or the other kind leaves one edit there); an edit at a
        position that holds none adds one. So an edit's expected gain is its own probability minus the
        probability that the position needs nothing:

            substitute by v = argmax Q_sub (v != the token)  where  sub * Q_sub(v) > 1 - (sub + del)  and >= del
            delete                                           where  del > 1 - (sub + del)  and > sub * Q_sub(v)
            insert v = argmax Q_ins                          where  ins * Q_ins(v) > 1 - ins

        each by more than `gain_margin`. The token heads run only at the candidates (a token probability is at
        most 1). Suppressed ids are never chosen; probabilities are the model's own (temperature 1, no
        renormalisation after suppression)."""
        rates = state.rate_cache
        sub_rate, del_rate, ins_rate = rates[..., 0], rates[..., 1], rates[..., 2]
        can_edit, can_insert = state.permissions
        # the bar an edit's probability must clear: the probability that it is needless, plus the margin
        needs_nothing = 1.0 - (sub_rate + del_rate).clamp(max=1.0) + self.gain_margin
        gap_needs_nothing = (1.0 - ins_rate).clamp(min=0.0) + self.gain_margin
        sub_gain = torch.zeros_like(sub_rate)
        ins_gain = torch.zeros_like(ins_rate)
        sub_tokens = torch.zeros_like(state.tokens)
        ins_tokens = torch.zeros_like(state.tokens)
        suppress = self._suppress_ids(state.tokens.device)
        for candidates, rate, gain, tokens, head in (
            (can_edit & (sub_rate > needs_nothing), sub_rate, sub_gain, sub_tokens, self.model.sub_head),
            (can_insert & (ins_rate > gap_needs_nothing), ins_rate, ins_gain, ins_tokens, self.model.ins_head),
        ):
            where = candidates.nonzero(as_tuple=True)
            if where[0].numel() == 0:
                continue
            log_q = self.token_logits(head, state.hidden_cache[self.head_positions(where, head)], t).float().log_softmax(-1)
            log_q.index_fill_(1, suppress, float("-inf"))
            if head is self.model.sub_head:  # a substitution changes the token
                log_q.scatter_(1, state.tokens[where][:, None], float("-inf"))
            best, tokens[where] = log_q.max(dim=-1)
            gain[where] = rate[where] * best.exp()
        sub_fire = can_edit & (sub_gain > needs_nothing) & (sub_gain >= del_rate)
        del_fire = can_edit & (del_rate > needs_nothing) & (del_rate > sub_gain)
        ins_fire = can_insert & (ins_gain > gap_needs_nothing)
        return del_fire, sub_fire, self.within_max_length(ins_fire, state.lengths), sub_tokens, ins_tokens

    def temperature_at(self, t: float) -> float:
        """The token temperature of the step that starts at `t` (the one place temperature is decided)."""
        return self.temperature_schedule(t)

    def _model_pass(self, input_ids: torch.LongTensor, attention_mask: torch.BoolTensor, t: float):
        t_rows = torch.full((input_ids.shape[0],), t, device=input_ids.device)
        if not self.compile:
            rates, hidden = self.model.edit_rates(input_ids, attention_mask.long(), t_rows)
            return rates.float(), hidden
        if self._compiled_rates is None:  # looked up once per sampler (the model does not move while it samples)
            self._compiled_rates = CompiledEditRates.for_model(self.model)
        compiled = self._compiled_rates
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

    def head_positions(self, where: tuple[torch.Tensor, torch.Tensor], head) -> tuple[torch.Tensor, torch.Tensor]:
        """The (row, column) positions of the cached hidden states `head` reads for the fired positions `where`:
        the model's [`head_columns`] (with guidance the unconditional half of a column is the unconditional token of
        the same column, so the shift holds for it too)."""
        rows, columns = where
        return rows, self.model.head_columns(columns, head)

    def token_logits(self, head, hidden: torch.Tensor, t: float) -> torch.Tensor:
        """Token logits of the fired positions from their hidden states `[m, H]` (`[m, 2H]` with guidance: the
        conditional and unconditional logits combined as (1 + w) log Q_c - w log Q_u)."""
        if not self.guided:
            return project_tokens(head, hidden)
        cond, uncond = hidden.chunk(2, dim=-1)
        return guided_logits(project_tokens(head, cond), project_tokens(head, uncond), self.guidance(t))

    def _refresh_rates(self, state: SamplerState, t: float) -> None:
        """Run the model on the rows that changed since their last pass (every row when reuse is off) and store
        their rates and hidden states in the state's caches (`[B, width, ...]`; zeros beyond a row's length)."""
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

    def init_state(
        self,
        sequences: Sequence[Sequence[int]],
        protected: Sequence[Sequence[bool]],
        open_end: Sequence[bool],
        row_ids: Sequence[int] | None = None,
    ) -> SamplerState:
        """The state at t = 0 of a batch of start sequences (arguments as in [`sample`]), on the model's device."""
        if len(protected) != len(sequences) or len(open_end) != len(sequences):
            raise ValueError("`sequences`, `protected` and `open_end` must have one entry per row.")
        row_ids = list(range(len(sequences))) if row_ids is None else [int(r) for r in row_ids]
        if len(row_ids) != len(sequences):
            raise ValueError(f"`row_ids` needs one index per row; got {len(row_ids)} for {len(sequences)} rows.")
        if any(len(ids) == 0 or len(ids) != len(flags) for ids, flags in zip(sequences, protected)):
            raise ValueError("Every row needs at least BOS, and one protection flag per token.")
        device = self.device
        batch = len(sequences)
        width = max((len(s) for s in sequences), default=0)
        # built on the host and moved once (one transfer, not one per row)
        tokens = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        protection = torch.zeros((batch, width), dtype=torch.bool)
        for row, (ids, flags) in enumerate(zip(sequences, protected)):
            tokens[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            protection[row, : len(flags)] = torch.tensor(list(flags), dtype=torch.bool)
        if width > 0:
            protection[:, 0] = True  # BOS never changes
        seed = self.seed
        if seed is None:
            seed_source = self.generator.device if self.generator is not None else "cpu"
            seed = int(torch.randint(0, 2**62, (), generator=self.generator, device=seed_source))
        row_keys = torch.tensor([row_seed(seed, row) for row in row_ids], dtype=torch.long, device=device)
        return SamplerState(
            tokens=tokens.to(device),
            lengths=torch.tensor([len(s) for s in sequences], dtype=torch.long, device=device),
            protected=protection.to(device),
            open_end=torch.tensor(list(open_end), dtype=torch.bool, device=device),
            t=self.start_time,
            stale=torch.ones(batch, dtype=torch.bool, device=device),
            row_keys=row_keys,
        )

    def step(self, state: SamplerState) -> SamplerStep:
        """One tau step from `state.t` to min(t + tau, 1): refresh the rates of the rows that changed, fire edits,
        draw their tokens and apply them all at once. Advances `state` in place and returns the step's edits.

        Work follows what happened: the model runs only when some row changed in the last step (one host check),
        edit permissions are recomputed only then, and a step where no edit fires applies nothing. On CPU it runs
        under `torch.inference_mode` (a batch-1 step is ~40 small tensor operations, each cheaper without
        autograd's version counters; benchmarks/RESULTS.md): the state's tensors become inference tensors, read
        anywhere, changed in place only under inference mode. On GPUs, where CUDA graphs replay the model and this
        was not measured, `torch.no_grad`."""
        with torch.inference_mode() if state.tokens.device.type == "cpu" else torch.no_grad():
            return self._step(state)

    def _step(self, state: SamplerState) -> SamplerStep:
        settling = state.step >= self.num_steps  # a frontier run's step after t = 1: the last step's time and scale
        if settling and (self.write_order != "frontier" or not self.masks_left(state)):
            raise ValueError(f"The run is complete: t = 1 after {self.num_steps} steps; start a new one with init_state().")
        last = min(state.step, self.num_steps - 1)
        t, t_next = self.step_time(last), self.step_time(last + 1)
        if not self.reuse_unchanged_rows or state.stale.any():
            self._refresh_rates(state, t)
            state.permissions = edit_permissions(state.protected, state.lengths, state.open_end)
        if self.edit_rule == "gain":
            return self._gain_step(state, t, t_next)
        draws = self.draw_uniforms(state)
        rates = state.rate_cache
        del_fire, sub_fire, ins_fire = self.choose_edits(
            rates[..., 0], rates[..., 1], rates[..., 2], *state.permissions, state.lengths, self._step_weights()[last],
            draws,
        )  # fmt: skip
        if self.fixed_length:  # one event per token, always a substitution; the last step fills every mask left
            sub_fire = sub_fire | del_fire
            if state.step + 1 >= self.num_steps:
                sub_fire |= state.permissions[0] & (state.tokens == self.mask_token_id)
            del_fire, ins_fire = torch.zeros_like(del_fire), torch.zeros_like(ins_fire)
        if self.write_order == "frontier":
            sub_fire, ins_fire = self.frontier(state.tokens, sub_fire, ins_fire)
        del_count, sub_count, ins_count = torch.stack([del_fire, sub_fire, ins_fire]).flatten(1).sum(1).tolist()
        if del_count == sub_count == ins_count == 0:
            return self._quiet_step(state, t_next)

        # the heads at the fired positions only (row-major order); the tokens of both heads in one draw (each
        # row of the logits is drawn alone, so drawing them together gives the tokens of drawing them apart)
        sub_tokens = torch.zeros_like(state.tokens)
        ins_tokens = torch.zeros_like(state.tokens)
        fired = [
            (fire.nonzero(as_tuple=True), head, stream, tokens)
            for count, fire, head, stream, tokens in (
                (sub_count, sub_fire, self.model.sub_head, DRAW_SUB_TOKEN, sub_tokens),
                (ins_count, ins_fire, self.model.ins_head, DRAW_INS_TOKEN, ins_tokens),
            )
            if count
        ]
        if fired:
            logits = [self.token_logits(head, state.hidden_cache[self.head_positions(where, head)], t) for where, head, _, _ in fired]
            uniforms = [draws[stream][where] for where, _, stream, _ in fired]
            drawn = self._sample(torch.cat(logits) if len(logits) > 1 else logits[0], t, torch.cat(uniforms))
            for (where, _, _, tokens), part in zip(fired, drawn.split([len(part) for part in logits])):
                tokens[where] = part
        return self._apply(state, t_next, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens)

    def _gain_step(self, state: SamplerState, t: float, t_next: float) -> SamplerStep:
        del_fire, sub_fire, ins_fire, sub_tokens, ins_tokens = self.gain_edits(state, t)
        if self.write_order == "frontier":
            sub_fire, ins_fire = self.frontier(state.tokens, sub_fire, ins_fire)
        if not (del_fire.any() or sub_fire.any() or ins_fire.any()):
            return self._quiet_step(state, t_next)
        return self._apply(state, t_next, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens)

    def _apply(self, state: SamplerState, t_next: float, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens) -> SamplerStep:
        """Apply the step's fired edits with their tokens to `state`, advance it to `t_next` and return the step."""
        state.step, state.t = state.step + 1, t_next
        edits = apply_edits(
            state.tokens, state.lengths, state.protected, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens,
            self.pad_token_id,
        )  # fmt: skip
        state.tokens, state.lengths, state.protected = edits.tokens, edits.lengths, edits.protected
        state.stale = edits.changed
        return SamplerStep(step=state.step, t=t_next, edits=edits)

    def iter_steps(
        self,
        sequences: Sequence[Sequence[int]],
        protected: Sequence[Sequence[bool]],
        open_end: Sequence[bool],
        row_ids: Sequence[int] | None = None,
    ) -> Iterator[SamplerStep]:
        """Run tau-leaping from the start time (1 - strength) to t = 1, yielding every step's edits (arguments as in
        [`sample`]).
        Stopping the iteration early stops the sampling."""
        state = self.init_state(sequences, protected, open_end, row_ids)
        if state.tokens.shape[0] == 0:
            return
        for _ in tqdm(range(self.num_steps), desc="tau-leaping", disable=not self.progress_bar, leave=False):
            yield self.step(state)
        if self.write_order != "frontier":
            return
        # settle: masks a waiting write left at t = 1 get steps at the last step's time and scale, one per mask at
        # most, until a step changes nothing
        for _ in range(int(state.tokens.shape[1])):
            if not self.masks_left(state):
                return
            settled = self.step(state)
            yield settled
            if not bool(settled.edits.changed.any()):
                return

    def sample(
        self,
        sequences: Sequence[Sequence[int]],
        protected: Sequence[Sequence[bool]],
        open_end: Sequence[bool],
        prompt_lengths: Sequence[int] | None = None,
        return_trace: bool = False,
        row_ids: Sequence[int] | None = None,
    ) -> SamplingResult:
        """Run tau-leaping from the start time (t = 1 - strength, 0 by default) to t = 1 on a batch of start sequences.

        Args:
            sequences: start token ids of each row, BOS first (e.g. BOS + prompt + masks).
            protected: per token, True where no deletion / substitution may happen (BOS is always protected).
            open_end: per row, whether insertions may extend the sequence after a protected last token.
            prompt_lengths: per row, the `prompt_len` recorded in its trace (default 1: BOS).
            return_trace: record a [`DecodeTrace`] of every row.
            row_ids: per row, its global index in the request, which keys its random draws (default 0..B-1): a
                row sampled with the same seed and index gives the same output in any batch.
        """
        traces = DecodeTrace.start(sequences, prompt_lengths) if return_trace else None
        final = [[int(x) for x in ids] for ids in sequences]
        last = None
        for last in self.iter_steps(sequences, protected, open_end, row_ids):
            if traces is not None:
                last.record(traces)
        if last is not None:
            final = last.sequences()
        return SamplingResult(sequences=final, traces=traces)

    def _sample(self, logits: torch.Tensor, t: float, uniforms: torch.Tensor) -> torch.LongTensor:
        return sample_tokens(
            logits, self.temperature_at(t), self.top_p, None, self._suppress_ids(logits.device), self.top_k, uniforms,
            overwrite_logits=True,  # the step's own temporary
        )  # fmt: skip

    def _suppress_ids(self, device: torch.device) -> torch.Tensor:
        """`suppress_token_ids` as a tensor on `device`, made once (not one host-to-device list per step)."""
        cached = self._suppress_tensor
        if cached is None or cached.device != device:
            cached = self._suppress_tensor = torch.tensor(self.suppress_token_ids, dtype=torch.long, device=device)
        return cached

    def _quiet_step(self, state: SamplerState, t_next: float) -> SamplerStep:
        """A step in which no edit fires: only the time moves."""
        state.step, state.t = state.step + 1, t_next
        edits = AppliedEdits.unchanged(state.tokens, state.lengths, state.protected)
        state.stale = edits.changed
        return SamplerStep(step=state.step, t=t_next, edits=edits)


__all__ = [
    "AppliedEdits",
    "COMPILE_WIDTH_BUCKETS",
    "CompiledEditRates",
    "bucket_rows",
    "bucket_width",
    "SamplerState",
    "SamplerStep",
    "SamplingResult",
    "TauLeapSampler",
    "apply_edits",
    "check_edit_params",
    "EDIT_RULES",
    "MAX_TAU_STEPS",
    "MIN_TAU",
    "check_sampling_params",
    "edit_permissions",
    "num_tau_steps",
    "row_seed",
    "sample_tokens",
    "unpadded_rows",
    "valid_positions",
]
