"""The held-out Edit Flow bound per token: a deterministic estimate, with its standard error.

Edit Flows (Havasi et al. 2025, arXiv 2506.09018) train a CTMC whose loss is an evidence bound. For one
sequence x1 with coupling p(x0 | x1) and the aligned pair (z0, z1),

    -log p_theta(x1 | x0)  <=  B(x1) = E_{t ~ U[0, 1)} E_{z_t ~ p_t(. | z0, z1)} [ L(t, x_t) ]
    L(t, x_t) = w(t) * sum_{i in x_t} (total edit rate at i)  -  w(t) * sum_{remaining edits e} log(rate_e * p_e(token_e))

with w(t) = kappa'(t) / (1 - kappa(t)): `EditFlowLoss` with `normalize="none"` is L(t, x_t), and B(x1) is its
expectation over t and the path (an ELBO-like quantity: E_t[loss]; unlike training, w is not clamped here, so
the estimate is the bound itself and not the clamped training objective). The bound per token is

    bound = sum_i B(x1_i) / sum_i n_i

with n_i the tokens the model must produce: x1 after BOS (pt) or the answer after the prompt (sft).

Estimator (`edit_flow_bound`): t on the fixed midpoint grid t_k = (k + 1/2) / K, k = 0..K-1 (a midpoint rule
for the integral over t), one draw of x0, alignment tie-breaks and z_t per (sequence, t_k) from an
`EditFlowCollator` seeded with `seed`: the same model, data and seed give the same number exactly. The
standard error is the delta-method error of the ratio over sequences,
se = sqrt(sum_i (B_i - bound * n_i)^2 / (N (N - 1))) / mean(n), which holds the spread over sequences and over
the draws (one per grid point and sequence).
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..path.collator import DRAW_KEY, EditFlowBatch, EditFlowCollator
from .loss import EditFlowLoss


@dataclass
class BoundEstimate:
    """The bound per token (nats), its standard error, and what it was computed on."""

    bound: float
    stderr: float
    num_sequences: int
    num_tokens: int
    num_t: int

    def to_dict(self) -> dict:
        return {
            "per_token": self.bound,
            "stderr": self.stderr,
            "num_sequences": self.num_sequences,
            "num_tokens": self.num_tokens,
            "num_t": self.num_t,
        }


def _stack(batches: list[EditFlowBatch], pad_token_id: int) -> EditFlowBatch:
    """One batch of the rows of `batches` (x_t right-padded to the widest, edit rows renumbered)."""
    width = max(b.input_ids.shape[1] for b in batches)
    pad = lambda x, value: torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)  # noqa: E731
    offsets = np.cumsum([0] + [b.input_ids.shape[0] for b in batches[:-1]])
    return EditFlowBatch(
        input_ids=torch.cat([pad(b.input_ids, pad_token_id) for b in batches]),
        attention_mask=torch.cat([pad(b.attention_mask, 0) for b in batches]),
        edit_batch=torch.cat([b.edit_batch + int(o) for b, o in zip(batches, offsets)]),
        **{name: torch.cat([b[name] for b in batches]) for name in ("t", "x1_len", "prompt_len", "edit_pos", "edit_kind", "edit_token")},
    )


@torch.no_grad()
def sequence_bounds(
    model,
    features: list[dict],
    collator: EditFlowCollator,
    *,
    num_t: int = 16,
    batch_size: int = 32,
    draw_keys: list[tuple[int, ...]] | None = None,
) -> np.ndarray:
    """B(x1_i) of every feature (`{"input_ids": x1, "prompt_len": p}`) in nats: the bound on -log p(x1 | x0) of
    the whole sequence, estimated on the midpoint grid of `num_t` times (see the module docstring).

    `collator` decides the coupling, the scheduler and the tie-break (build it with `seed` for a deterministic
    estimate); its scheduler must be the model's. The model is put in eval mode.

    `draw_keys` (one tuple of non-negative ints per feature): each row then draws its x0, alignment and x_t from
    its own Generator, seeded with (key, grid index), instead of the collator's shared stream, so its estimate
    does not depend on the other rows of the batch, and rows with equal keys share their random numbers (common
    random numbers: the choices of one multiple-choice question, keyed by their context, differ by what differs
    in the sequences far more than by the draws). A corrupting coupling then draws its noise tokens from the row.
    """
    if num_t < 1:
        raise ValueError(f"num_t must be >= 1; got {num_t}.")
    if draw_keys is not None and len(draw_keys) != len(features):
        raise ValueError(f"draw_keys must hold one key per feature; got {len(draw_keys)} for {len(features)}.")
    model.eval()
    device = next(model.parameters()).device
    loss = EditFlowLoss(scheduler=collator.scheduler, max_w=None, normalize="none")
    grid = ((np.arange(num_t) + 0.5) / num_t).astype(np.float32)
    per_sequence = np.zeros(len(features))
    for k, t in enumerate(grid):
        for start in range(0, len(features), batch_size):
            chunk = features[start : start + batch_size]
            if draw_keys is None:
                batch = collator(chunk, t=np.full(len(chunk), t))
            else:
                keys = draw_keys[start : start + batch_size]
                batch = _stack([collator([{**f, DRAW_KEY: (*key, k)}], t=np.full(1, t)) for f, key in zip(chunk, keys)],
                               collator.pad_token_id)  # fmt: skip
            batch = batch.to(device)
            outputs = model(**batch.model_inputs())
            per_sequence[start : start + len(chunk)] += loss(outputs, batch).row_loss.double().cpu().numpy() / num_t
    return per_sequence


def edit_flow_bound(
    model,
    features: list[dict],
    collator: EditFlowCollator,
    *,
    num_t: int = 16,
    batch_size: int = 32,
) -> BoundEstimate:
    """The held-out bound per token of `model` on `features` (`{"input_ids": x1, "prompt_len": p}`): the
    `sequence_bounds` summed over sequences, divided by their tokens after the prompt, with its standard error."""
    if len(features) < 2:
        raise ValueError(f"The bound needs at least 2 sequences (for its standard error); got {len(features)}.")
    tokens = np.array([len(f["input_ids"]) - int(f.get("prompt_len", 1)) for f in features], dtype=np.float64)
    if (tokens <= 0).any():
        raise ValueError("Every sequence needs at least one token after its prompt for a per-token bound.")
    per_sequence = sequence_bounds(model, features, collator, num_t=num_t, batch_size=batch_size)
    bound = per_sequence.sum() / tokens.sum()
    n = len(features)
    stderr = np.sqrt(((per_sequence - bound * tokens) ** 2).sum() / (n * (n - 1))) / tokens.mean()
    return BoundEstimate(float(bound), float(stderr), n, int(tokens.sum()), num_t)


__all__ = ["BoundEstimate", "edit_flow_bound", "sequence_bounds"]
