"""Token sampling of a tau step: the substituted and inserted tokens are drawn from the token heads' logits at the
fired positions only ([`sample_tokens`], with the settings of a [`TokenRule`]). Remote code: imports only torch."""

from collections.abc import Sequence

import torch

from .guidance_editflow import TimeSchedule


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


def neighbour_tokens(tokens: torch.LongTensor, lengths: torch.LongTensor, where: tuple[torch.Tensor, torch.Tensor],
                     substitution: bool) -> torch.LongTensor:  # fmt: skip
    """`[m, 2]`: the tokens beside each fired write at `where` (rows, columns) of the padded batch `tokens`: for a
    substitution at j those at j - 1 and j + 1, for an insertion after j those at j and j + 1; -1 where the row
    has no such token."""
    rows, columns = where
    left = columns - 1 if substitution else columns
    right = columns + 1
    inside = right < lengths[rows]
    right_tokens = tokens[rows, right.clamp(max=tokens.shape[1] - 1)].masked_fill(~inside, -1)
    return torch.stack([tokens[rows, left.clamp(min=0)], right_tokens], dim=1)


def ban_neighbours(logits: torch.Tensor, neighbours: torch.LongTensor) -> torch.Tensor:
    """`logits` `[m, V]` (changed in place) with each row's neighbour tokens (`[m, 2]` from [`neighbour_tokens`],
    -1 for none) at -inf: a write never repeats the token beside it (`no_repeat_adjacent`)."""
    present = neighbours >= 0
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None].expand_as(neighbours)
    logits[rows[present], neighbours[present]] = float("-inf")
    return logits


def default_no_repeat_adjacent(config) -> bool:
    """True for a model whose substitution head reads its left neighbour (`sub_head_shift`, a converted decoder):
    its insertion head is the decoder's LM head, which predicts the token that already follows, and the converted
    SmolLM2 wrote "Germany is is Tokyo" in a quarter of its answers; False otherwise."""
    return bool(getattr(config, "sub_head_shift", False))


def project_tokens(head, hidden: torch.Tensor) -> torch.Tensor:
    """`head(hidden)` for a few rows of hidden states `[m, H]` (the fired positions of a step): the head's own
    `project_rows` where it has one (an [`EditFlowTokenHead`]: on CPU, from a transposed copy of its vocabulary
    projection that the head keeps), else the head itself."""
    project_rows = getattr(head, "project_rows", None)
    return head(hidden) if project_rows is None else project_rows(hidden)


class TokenRule:
    """How the tokens of fired edits are drawn: the temperature (a number or a function of t), nucleus `top_p`,
    `top_k`, and the ids never written.

    Args:
        temperature: 0 = greedy tokens; 1 = the model's distributions; or a function of t: a pair (at t=0, at t=1)
            or a formula such as "0.8*t + 1.0*(1-t)" (the paper's code sampler), see `guidance_editflow.TimeSchedule`.
        top_p: nucleus mass in (0, 1].
        top_k: keep the k most likely tokens before top_p (None or 0: all).
        suppress_token_ids: ids never produced by a substitution or insertion (mask, BOS, padding).
        no_repeat_adjacent: a written token never equals a token beside it: for a substitution at j the tokens at
            j - 1 and j + 1, for an insertion after j those at j and j + 1 ([`ban_neighbours`]).
    """

    def __init__(self, temperature=1.0, top_p: float = 1.0, top_k: int | None = None, suppress_token_ids: Sequence[int] = (),
                 no_repeat_adjacent: bool = False):  # fmt: skip
        if not isinstance(no_repeat_adjacent, bool):
            raise ValueError(f"`no_repeat_adjacent` must be True or False; got {no_repeat_adjacent!r}.")
        self.no_repeat_adjacent = no_repeat_adjacent
        self.temperature_schedule = TimeSchedule(temperature, "temperature")
        self.top_p = float(top_p)
        self.top_k = top_k
        self.suppress_token_ids = sorted({int(i) for i in suppress_token_ids if i is not None})
        self._suppress_tensor: torch.Tensor | None = None  # suppress_token_ids on the device ([`suppress_ids`])

    def temperature_at(self, t: float) -> float:
        """The token temperature of the step that starts at `t` (the one place temperature is decided)."""
        return self.temperature_schedule(t)

    def suppress_ids(self, device: torch.device) -> torch.Tensor:
        """`suppress_token_ids` as a tensor on `device`, made once (not one host-to-device list per step)."""
        cached = self._suppress_tensor
        if cached is None or cached.device != device:
            cached = self._suppress_tensor = torch.tensor(self.suppress_token_ids, dtype=torch.long, device=device)
        return cached

    def without_repeats(self, logits: torch.Tensor, state, where: tuple[torch.Tensor, torch.Tensor], substitution: bool) -> torch.Tensor:
        """`logits` (or log-probabilities) `[m, V]` of the writes at `where` in `state` (its padded `tokens` and
        `lengths`), changed in place: with `no_repeat_adjacent`, each write's neighbour tokens at -inf."""
        if self.no_repeat_adjacent:
            ban_neighbours(logits, neighbour_tokens(state.tokens, state.lengths, where, substitution))
        return logits

    def draw(self, logits: torch.Tensor, t: float, uniforms: torch.Tensor) -> torch.LongTensor:
        """One token per row of `logits` `[N, V]` (the step's own temporary, worked on in place) at time `t`, row n
        drawn with `uniforms[n]`."""
        return sample_tokens(
            logits, self.temperature_at(t), self.top_p, None, self.suppress_ids(logits.device), self.top_k, uniforms,
            overwrite_logits=True,
        )  # fmt: skip


__all__ = ["TokenRule", "ban_neighbours", "default_no_repeat_adjacent", "neighbour_tokens", "project_tokens", "sample_tokens"]
