"""Applying the edits of one tau step to a right-padded batch `[B, L]` at once ([`apply_edits`]), and the padded
batch's rows: no Python loop over positions. Remote code: imports only torch."""

from dataclasses import dataclass

import torch


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


__all__ = ["AppliedEdits", "apply_edits", "unpadded_rows", "valid_positions"]
