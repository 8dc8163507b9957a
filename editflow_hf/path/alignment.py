"""Minimum-edit alignment of x0 and x1 into equal-length z0, z1 with a blank symbol, and the remaining edits.

Edit Flows (Havasi et al. 2025, arXiv 2506.09018) train on an aligned pair (z0, z1): both have the same number
of columns, a column holds a token or `BLANK` on each side, and removing the blanks gives back x0 and x1. A
column with `z0 = BLANK` is an insertion, one with `z1 = BLANK` a deletion, one with two different tokens a
substitution. At time t each column of z_t shows z1 with probability kappa(t), else z0; x_t is z_t without
blanks, and every column where z_t != z1 is one edit still to make on x_t.

Alignment
---------
`align(x0, x1)` is a minimum edit (unit-cost Levenshtein) alignment. The longest common prefix is matched
column to column (always optimal, and it is what keeps BOS and an SFT prompt out of every edit); the rest comes
from `rapidfuzz.distance.Levenshtein.opcodes`. Between two runs of matched tokens, an optimal alignment has a
block of n source and m target tokens with no match, costing exactly max(n, m): min(n, m) substitution columns
and |n - m| blank columns. Any placement of those blank columns inside the block is optimal, so the block is
laid out again by the tie-break:

- ``"spread"``: the blank columns are evenly spaced over the block. When x1 is longer than x0 the
  insertions then fall into many different gaps of x_t, so a tau-leaping sampler, which fires at most one
  insertion per gap per step, can grow the text everywhere at once; and the model learns to insert between
  masks, where the sampler needs it, instead of only right after BOS.
- ``"left"``: all blank columns at the start of the block, i.e. every surplus insertion right after the last
  matched token (BOS) and the first surplus masks deleted: the reference implementation (dLLM's
  Needleman-Wunsch back-trace, which prefers the diagonal from the end).
- ``"right"``: all blank columns at the end of the block: the first masks become the text and the surplus masks
  at the end are deleted (or every surplus insertion goes after the last mask). The i-th mask after the prompt
  then always becomes the i-th answer token, whatever has been deleted, so the model reads its target from its
  offset to the prompt instead of counting the masks to its right (the measured SFT default, see
  `collator.AUTO_TIE_BREAK`).
- ``"random"``: the blank columns are a uniformly random subset of the block's columns (needs `rng`).

x0 = BOS + prompt + N masks is the case training uses: masks never equal data tokens, so after the common
prefix it is a single block of max(N, M) columns. `align_masks` builds it in closed form with a few vectorised
numpy operations, without any dynamic program; it gives the same alignment as `align` for every tie-break.
"""

import numpy as np
from rapidfuzz.distance import Levenshtein

from ..modeling.edits_editflow import EditKind

BLANK = -1
# Plain ints: an IntEnum member costs a slow attribute lookup and conversion in every numpy call of the collator.
_SUB, _DEL, _INS = int(EditKind.SUB), int(EditKind.DEL), int(EditKind.INS)
TIE_BREAKS = ("spread", "left", "right", "random")


def check_tie_break(tie_break, choices: tuple[str, ...] = TIE_BREAKS, *, name: str = "tie_break") -> None:
    """ValueError naming `name` (a flag: `--tie_break`) unless `tie_break` is one of `choices`: the layouts
    `TIE_BREAKS`, or the collator's `TIE_BREAK_CHOICES` ("auto" beside them)."""
    if tie_break not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {tie_break!r}.")


def _check_tie_break(tie_break: str, rng) -> None:
    check_tie_break(tie_break)
    if tie_break == "random" and rng is None:
        raise ValueError('tie_break="random" needs a numpy Generator: pass rng=np.random.default_rng(seed).')


def _as_ids(x, name: str) -> np.ndarray:
    ids = np.asarray(x, dtype=np.int64).reshape(-1)
    if (ids == BLANK).any():
        raise ValueError(f"{name} contains the blank id {BLANK}; token ids must be non-negative.")
    return ids


def _blank_columns(n_columns: int, n_blanks: int, tie_break: str, rng) -> np.ndarray:
    """Indices (sorted) of the `n_blanks` blank columns among `n_columns` columns of a block.

    spread: column floor((k + 1/2) * C / K) for k = 0..K-1 (distinct because C / K >= 1).
    """
    if n_blanks == 0:
        return np.zeros(0, dtype=np.int64)
    if tie_break == "left":
        return np.arange(n_blanks, dtype=np.int64)
    if tie_break == "right":
        return np.arange(n_columns - n_blanks, n_columns, dtype=np.int64)
    if tie_break == "spread":
        return ((np.arange(n_blanks) + 0.5) * (n_columns / n_blanks)).astype(np.int64)
    return np.sort(rng.choice(n_columns, size=n_blanks, replace=False))


def _block_layout(n_src: int, n_dst: int, tie_break: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """(source index, target index) of each column of a block of `n_src` vs `n_dst` unmatched tokens; -1 = blank.

    The block has C = max(n_src, n_dst) columns: the longer side fills every column in order, the shorter side
    the C - |n_src - n_dst| columns that are not blank, in order.
    """
    n_columns = max(n_src, n_dst)
    is_blank = np.zeros(n_columns, dtype=bool)
    is_blank[_blank_columns(n_columns, n_columns - min(n_src, n_dst), tie_break, rng)] = True
    shorter = np.where(is_blank, -1, np.cumsum(~is_blank) - 1)
    longer = np.arange(n_columns)
    return (shorter, longer) if n_src <= n_dst else (longer, shorter)


def _take(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """ids[index] with BLANK where index is -1."""
    return np.where(index >= 0, ids[np.maximum(index, 0)] if len(ids) else BLANK, BLANK)


def common_prefix_length(x0: np.ndarray, x1: np.ndarray) -> int:
    n = min(len(x0), len(x1))
    differs = np.flatnonzero(x0[:n] != x1[:n])
    return int(differs[0]) if len(differs) else n


def align(x0, x1, *, tie_break: str = "spread", rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Minimum edit alignment of two id sequences: (z0, z1), equal-length int64 arrays with `BLANK` (-1) gaps.

    The number of columns with z0 != z1 is the Levenshtein distance d(x0, x1); z0 and z1 without blanks are x0
    and x1; the common prefix (BOS, prompt) is matched. `tie_break` places the blank columns of each unmatched
    block (see the module docstring).
    """
    _check_tie_break(tie_break, rng)
    x0, x1 = _as_ids(x0, "x0"), _as_ids(x1, "x1")
    prefix = common_prefix_length(x0, x1)
    src_pieces, dst_pieces = [np.arange(prefix)], [np.arange(prefix)]
    block_src = block_dst = prefix

    def flush(src_end: int, dst_end: int) -> None:
        src_index, dst_index = _block_layout(src_end - block_src, dst_end - block_dst, tie_break, rng)
        src_pieces.append(np.where(src_index >= 0, src_index + block_src, -1))
        dst_pieces.append(np.where(dst_index >= 0, dst_index + block_dst, -1))

    opcodes = Levenshtein.opcodes(x0[prefix:].tolist(), x1[prefix:].tolist())
    for op in opcodes:
        if op.tag != "equal":
            continue
        flush(prefix + op.src_start, prefix + op.dest_start)
        src_pieces.append(np.arange(op.src_start, op.src_end) + prefix)
        dst_pieces.append(np.arange(op.dest_start, op.dest_end) + prefix)
        block_src, block_dst = prefix + op.src_end, prefix + op.dest_end
    flush(len(x0), len(x1))
    return _take(x0, np.concatenate(src_pieces)), _take(x1, np.concatenate(dst_pieces))


def align_masks(
    x1,
    prefix_len: int,
    n_masks: int,
    mask_token_id: int,
    *,
    tie_break: str = "spread",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form alignment of x0 = x1[:prefix_len] + [mask] * n_masks with x1 (mask never in x1[prefix_len:]).

    Columns: the prefix matched, then one block of max(N, M) columns (N = n_masks, M = len(x1) - prefix_len)
    with min(N, M) substitutions mask -> token and |N - M| insertions (N < M) or mask deletions (N > M).
    """
    _check_tie_break(tie_break, rng)
    x1 = _as_ids(x1, "x1")
    if not 0 <= prefix_len <= len(x1):
        raise ValueError(f"prefix_len must be in [0, len(x1)] = [0, {len(x1)}]; got {prefix_len}.")
    if n_masks < 0:
        raise ValueError(f"n_masks must be >= 0; got {n_masks}.")
    data = x1[prefix_len:]
    mask_index, data_index = _block_layout(n_masks, len(data), tie_break, rng)
    block0 = np.where(mask_index >= 0, mask_token_id, BLANK)
    block1 = _take(data, data_index)
    prefix = x1[:prefix_len]
    return np.concatenate([prefix, block0]), np.concatenate([prefix, block1])


def sample_zt(z0: np.ndarray, z1: np.ndarray, kappa: float, rng: np.random.Generator) -> np.ndarray:
    """z_t: each column independently takes z1 with probability kappa, else z0."""
    z0, z1 = np.asarray(z0), np.asarray(z1)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape; got {z0.shape} and {z1.shape}.")
    return np.where(rng.random(z0.shape) < kappa, z1, z0)


def remaining_edits(zt, z1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The edits that turn x_t = z_t without blanks into x1: (x_t, pos, kind, token), int64 arrays.

    One edit per column where z_t != z1, in column order, `kind` an `EditKind` code:
      EditKind.SUB (0): x_t[pos] becomes `token`;
      EditKind.DEL (1): x_t[pos] is removed (`token` = BLANK);
      EditKind.INS (2): `token` goes into the gap right after x_t[pos]. Several insertions may share a gap;
                        applied in the order given they rebuild x1.
    `pos` of a column is (number of kept columns up to and including it) - 1: the token itself when it is kept,
    the previous kept token (the left end of its gap) when it is blank.
    """
    zt, z1 = np.asarray(zt, dtype=np.int64), np.asarray(z1, dtype=np.int64)
    if zt.shape != z1.shape or zt.ndim != 1:
        raise ValueError(f"zt and z1 must be 1-D of the same length; got shapes {zt.shape} and {z1.shape}.")
    kept = zt != BLANK
    column_pos = np.cumsum(kept) - 1
    edit_columns = np.flatnonzero(zt != z1)
    kind = np.where(~kept[edit_columns], _INS, np.where(z1[edit_columns] == BLANK, _DEL, _SUB))
    pos = column_pos[edit_columns]
    if len(pos) and pos[0] < 0:
        raise ValueError("An insertion precedes every kept token: z_t must start with a kept column (BOS).")
    token = np.where(kind == _DEL, BLANK, z1[edit_columns])
    return zt[kept], pos, kind, token


__all__ = ["BLANK", "TIE_BREAKS", "align", "check_tie_break", "align_masks", "common_prefix_length", "sample_zt", "remaining_edits"]
