"""Alignment properties on many random sequences, checked against plain reference implementations."""

from collections import defaultdict

import numpy as np
import pytest

from editflow_hf.path.alignment import BLANK, align, align_masks, remaining_edits, sample_zt

BOS, MASK = 1, 3
TIE_BREAKS = ("spread", "left", "random")


def edit_distance(a, b) -> int:
    """Plain O(nm) Levenshtein dynamic program with unit costs."""
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return prev[-1]


def apply_edits(x_t, pos, kind, token) -> list[int]:
    """Plain reference: substitute / delete tokens of x_t, then insert each gap's tokens in the order given."""
    substitutions, deletions, insertions = {}, set(), defaultdict(list)
    for p, k, tok in zip(pos.tolist(), kind.tolist(), token.tolist()):
        if k == 0:
            assert p not in substitutions and p not in deletions
            substitutions[p] = tok
        elif k == 1:
            assert p not in substitutions and p not in deletions
            deletions.add(p)
        else:
            insertions[p].append(tok)
    out = []
    for i, tok in enumerate(x_t.tolist()):
        if i not in deletions:
            out.append(substitutions.get(i, tok))
        out.extend(insertions[i])
    return out


def strip(z):
    return [int(v) for v in z if v != BLANK]


def random_pair(rng, alphabet=(4, 5, 6, 7)):
    """x0, x1 sharing BOS + a random prompt, then random tails over a small alphabet (many ties and matches)."""
    prompt = [BOS] + rng.choice(alphabet, size=rng.integers(0, 3)).tolist()
    x0 = prompt + rng.choice(alphabet, size=rng.integers(0, 9)).tolist()
    x1 = prompt + rng.choice(alphabet, size=rng.integers(0, 9)).tolist()
    return x0, x1, len(prompt)


def check_edits_protect_prefix(pos, kind, prefix_len):
    sub_del = kind != 2
    assert (pos[sub_del] >= prefix_len).all(), "a prompt token was substituted or deleted"
    assert (pos[~sub_del] >= prefix_len - 1).all(), "an insertion landed inside the prompt"


@pytest.mark.parametrize("tie_break", TIE_BREAKS)
def test_general_alignment_properties(tie_break):
    rng = np.random.default_rng(1234)
    for _ in range(400):
        x0, x1, prefix_len = random_pair(rng)
        z0, z1 = align(x0, x1, tie_break=tie_break, rng=rng)
        assert z0.shape == z1.shape and z0.dtype == np.int64
        assert strip(z0) == x0 and strip(z1) == x1
        assert not ((z0 == BLANK) & (z1 == BLANK)).any()
        assert int((z0 != z1).sum()) == edit_distance(x0, x1)
        assert (z0[:prefix_len] == x1[:prefix_len]).all() and (z1[:prefix_len] == x1[:prefix_len]).all()
        for kappa in (0.0, 0.3, 0.7, 1.0):
            zt = sample_zt(z0, z1, kappa, rng)
            x_t, pos, kind, token = remaining_edits(zt, z1)
            assert x_t.tolist() == strip(zt)
            assert len(pos) == int((zt != z1).sum())
            assert apply_edits(x_t, pos, kind, token) == x1
            assert (token[kind == 1] == BLANK).all() and (token[kind != 1] >= 0).all()
            check_edits_protect_prefix(pos, kind, prefix_len)


def test_kappa_endpoints():
    rng = np.random.default_rng(0)
    z0, z1 = align([BOS, 4, 5, 6], [BOS, 6, 7])
    x_t, pos, *_ = remaining_edits(sample_zt(z0, z1, 0.0, rng), z1)
    assert x_t.tolist() == [BOS, 4, 5, 6] and len(pos) == edit_distance([BOS, 4, 5, 6], [BOS, 6, 7])
    x_t, pos, *_ = remaining_edits(sample_zt(z0, z1, 1.0, rng), z1)
    assert x_t.tolist() == [BOS, 6, 7] and len(pos) == 0


def masks_and_data(rng):
    prompt = [BOS] + rng.integers(4, 50, size=rng.integers(0, 4)).tolist()
    data = rng.integers(4, 50, size=rng.integers(0, 20)).tolist()
    return prompt, data, int(rng.integers(0, 20))


@pytest.mark.parametrize("tie_break", ("spread", "left", "right"))
def test_closed_form_equals_general_alignment(tie_break):
    rng = np.random.default_rng(7)
    for _ in range(300):
        prompt, data, n_masks = masks_and_data(rng)
        x0, x1 = prompt + [MASK] * n_masks, prompt + data
        z0, z1 = align_masks(x1, len(prompt), n_masks, MASK, tie_break=tie_break)
        g0, g1 = align(x0, x1, tie_break=tie_break)
        np.testing.assert_array_equal(z0, g0)
        np.testing.assert_array_equal(z1, g1)
        assert int((z0 != z1).sum()) == edit_distance(x0, x1) == max(n_masks, len(data))


def test_closed_form_random_tie_break_is_optimal_and_rebuilds_x1():
    rng = np.random.default_rng(8)
    for _ in range(300):
        prompt, data, n_masks = masks_and_data(rng)
        x1 = prompt + data
        z0, z1 = align_masks(x1, len(prompt), n_masks, MASK, tie_break="random", rng=rng)
        assert strip(z0) == prompt + [MASK] * n_masks and strip(z1) == x1
        assert int((z0 != z1).sum()) == max(n_masks, len(data))
        x_t, pos, kind, token = remaining_edits(sample_zt(z0, z1, rng.random(), rng), z1)
        assert apply_edits(x_t, pos, kind, token) == x1
        check_edits_protect_prefix(pos, kind, len(prompt))


def insertion_gaps(z0, z1):
    _, pos, kind, _ = remaining_edits(z0, z1)
    return pos[kind == 2]


def test_left_puts_every_insertion_right_after_bos_and_deletes_first_masks():
    z0, z1 = align_masks([BOS] + list(range(10, 20)), 1, 4, MASK, tie_break="left")
    assert insertion_gaps(z0, z1).tolist() == [0] * 6
    z0, z1 = align_masks([BOS, 10, 11], 1, 5, MASK, tie_break="left")
    _, pos, kind, _ = remaining_edits(z0, z1)
    assert pos[kind == 1].tolist() == [1, 2, 3]


def test_right_turns_the_first_masks_into_text_and_deletes_or_inserts_at_the_end():
    # More masks than text: mask i becomes token i, the surplus masks at the end are deleted.
    z0, z1 = align_masks([BOS, 7, 10, 11], 2, 5, MASK, tie_break="right")
    assert z0.tolist() == [BOS, 7, MASK, MASK, MASK, MASK, MASK]
    assert z1.tolist() == [BOS, 7, 10, 11, BLANK, BLANK, BLANK]
    _, pos, kind, _ = remaining_edits(z0, z1)
    assert pos[kind == 1].tolist() == [4, 5, 6]
    # More text than masks: every surplus insertion goes after the last mask.
    z0, z1 = align_masks([BOS] + list(range(10, 20)), 1, 4, MASK, tie_break="right")
    assert insertion_gaps(z0, z1).tolist() == [4] * 6


def test_spread_insertions_use_distinct_gaps():
    # 64 masks, 127 data tokens: 63 insertions, one per gap between/after the masks.
    z0, z1 = align_masks([BOS] + list(range(100, 227)), 1, 64, MASK, tie_break="spread")
    gaps = insertion_gaps(z0, z1)
    assert len(gaps) == 63 and len(set(gaps.tolist())) == 63
    # Deletions are spread too: 64 masks for 16 tokens -> deleted masks are not one contiguous run.
    z0, z1 = align_masks([BOS] + list(range(100, 116)), 1, 64, MASK, tie_break="spread")
    deleted = np.flatnonzero(z1 == BLANK)
    assert len(deleted) == 48 and deleted.max() - deleted.min() > 48


def test_random_tie_break_varies_and_is_reproducible():
    x1 = [BOS] + list(range(100, 120))
    draws = [tuple(align_masks(x1, 1, 8, MASK, tie_break="random", rng=np.random.default_rng(s))[0]) for s in range(10)]
    assert len(set(draws)) > 1
    again = tuple(align_masks(x1, 1, 8, MASK, tie_break="random", rng=np.random.default_rng(0))[0])
    assert again == draws[0]


def test_edge_cases():
    z0, z1 = align([], [])
    assert len(z0) == len(z1) == 0
    z0, z1 = align([BOS], [BOS, 4, 5])
    assert z0.tolist() == [BOS, BLANK, BLANK] and z1.tolist() == [BOS, 4, 5]
    z0, z1 = align_masks([BOS], 1, 3, MASK)
    assert z0.tolist() == [BOS, MASK, MASK, MASK] and z1.tolist() == [BOS, BLANK, BLANK, BLANK]
    x_t, pos, kind, token = remaining_edits(np.array([BOS, 4, BLANK]), np.array([BOS, 5, 6]))
    assert x_t.tolist() == [BOS, 4] and pos.tolist() == [1, 1] and kind.tolist() == [0, 2] and token.tolist() == [5, 6]


def test_errors():
    with pytest.raises(ValueError, match="tie_break must be one of"):
        align([BOS], [BOS], tie_break="middle")
    with pytest.raises(ValueError, match="rng="):
        align([BOS], [BOS, 4], tie_break="random")
    with pytest.raises(ValueError, match="blank id"):
        align([BOS, -1], [BOS])
    with pytest.raises(ValueError, match="prefix_len"):
        align_masks([BOS, 4], 3, 2, MASK)
    with pytest.raises(ValueError, match="kept column"):
        remaining_edits(np.array([BLANK, 4]), np.array([5, 4]))
    with pytest.raises(ValueError, match="same shape"):
        sample_zt(np.array([1, 2]), np.array([1]), 0.5, np.random.default_rng(0))
