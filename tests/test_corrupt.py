"""`corrupt[p:P]` and mixture couplings: the corruption law, the exact `max_x0_len` cap, the spec grammar, and the
collator's general minimum-edit alignment of corrupted pairs (its edits rebuild x1 and number d(x0, x1))."""

import math

import numpy as np
import pytest
import torch
from rapidfuzz.distance import Levenshtein

from editflow_hf.path.couplings import Corrupt, FixedMasks, Mixture, parse_x0_sampler
from test_alignment import apply_edits
from test_collator import BOS, MASK, make_collator, random_features, rows


def test_corrupt_rate_and_kinds():
    corrupt = parse_x0_sampler("corrupt[p:0.3]")
    assert isinstance(corrupt, Corrupt) and corrupt.p == 0.3 and not corrupt.masks_only
    rng = np.random.default_rng(0)
    x1 = np.arange(1000, 1200)
    pool = np.arange(5000, 5100)
    distances, lengths = [], []
    for _ in range(200):
        x0 = corrupt.corrupt(x1, rng, pool)
        distances.append(Levenshtein.distance(x0.tolist(), x1.tolist()))
        lengths.append(len(x0))
        assert set(x0.tolist()) <= set(x1.tolist()) | set(pool.tolist())
        assert len(x0) <= corrupt.max_x0_len(len(x1))
    # Every corrupted token is one edit (sub, del or ins), each kind a third: d ~ p * n, length ~ n.
    assert np.mean(distances) == pytest.approx(0.3 * 200, rel=0.05)
    assert np.mean(lengths) == pytest.approx(200, abs=2.0)


def test_corrupt_max_x0_len_is_exact_and_reached():
    corrupt = Corrupt(1.0)  # every token corrupted: the insertion cap ceil(p * n) is what bounds the length
    rng = np.random.default_rng(1)
    for n in (0, 1, 3, 10):
        longest = max(len(corrupt.corrupt(np.arange(n), rng, np.array([7, 8]))) for _ in range(300))
        assert longest <= corrupt.max_x0_len(n) == n + math.ceil(n)
    assert Corrupt(0.2).max_x0_len(10) == 12 and Corrupt(0.2).max_x0_len(11) == 14
    assert parse_x0_sampler("masks[length:64]").max_x0_len(500) == 64
    assert parse_x0_sampler("masks[min:8,max:20]").max_x0_len(5) == 20
    assert parse_x0_sampler("empty").max_x0_len(5) == 0
    assert parse_x0_sampler("masks[length:8] + corrupt[p:0.5]").max_x0_len(10) == 15
    assert parse_x0_sampler("masks[length:30] + corrupt[p:0.5]").max_x0_len(10) == 30


def test_corrupt_without_noise_pool_only_deletes():
    x0 = Corrupt(1.0).corrupt(np.arange(50), np.random.default_rng(0), np.zeros(0, np.int64))
    assert set(x0.tolist()) <= set(range(50)) and len(x0) < 50 and x0.tolist() == sorted(x0.tolist())


def test_mixture_grammar_and_draws():
    mix = parse_x0_sampler("0.25*masks[length:4] + 0.75*corrupt[p:0.2]")
    assert isinstance(mix, Mixture) and not mix.masks_only
    assert mix.spec == "0.25*masks[length:4] + 0.75*corrupt[p:0.2]" and parse_x0_sampler(mix.spec) == mix
    rng = np.random.default_rng(0)
    draws = [mix.draw(rng) for _ in range(4000)]
    assert np.mean([isinstance(d, Corrupt) for d in draws]) == pytest.approx(0.75, abs=0.03)
    assert isinstance(parse_x0_sampler("masks[length:4] + masks[length:8]").draw(rng), FixedMasks)
    assert parse_x0_sampler("masks[length:4] + empty").masks_only
    assert parse_x0_sampler("1*corrupt[p:0.1]") == Corrupt(0.1)  # a single weighted term is that sampler
    assert parse_x0_sampler(" masks[length:64] ") == FixedMasks(64)  # old specs unchanged


@pytest.mark.parametrize(
    "spec, message",
    [
        ("corrupt", "exactly one argument p"),
        ("corrupt[p:0]", "p must be in"),
        ("corrupt[p:1.5]", "p must be in"),
        ("corrupt[p:x]", "must be a number"),
        ("corrupt[p:0.1,q:2]", "exactly one argument p"),
        ("0*masks[length:4] + corrupt[p:0.1]", "weights must be positive"),
        ("masks[length:4] + ", "mixture term"),
        ("masks[length:4] + bogus", "unknown sampler name"),
        ("x*masks[length:4] + corrupt[p:0.1]", "not a number"),
    ],
)
def test_bad_specs_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_x0_sampler(spec)
    assert "Valid forms" in str(err.value) and "corrupt[p:P]" in str(err.value)


@pytest.mark.parametrize("x0_sampler", ["corrupt[p:0.3]", "masks[length:6] + corrupt[p:0.3]"])
@pytest.mark.parametrize("tie_break", ["spread", "left", "right", "random"])
def test_collator_aligns_corrupted_pairs_minimally(x0_sampler, tie_break):
    rng = np.random.default_rng(0)
    collator = make_collator(x0_sampler=x0_sampler, tie_break=tie_break, seed=3)
    saw_corrupt = saw_masks = False
    for _ in range(5):
        features = random_features(rng, prompt=True)
        near_zero = collator(features, t=np.zeros(len(features)))  # x_t = x0: the edits are the whole alignment
        for b, x_t, pos, kind, token in rows(near_zero):
            x1, prompt_len = features[b]["input_ids"], features[b]["prompt_len"]
            assert apply_edits(x_t, pos, kind, token) == x1
            assert x_t[:prompt_len].tolist() == x1[:prompt_len]
            assert (pos[kind != 2] >= prompt_len).all() and (pos[kind == 2] >= prompt_len - 1).all()
            if MASK in x_t.tolist():
                saw_masks = True
                continue
            saw_corrupt = True
            # The general alignment is a minimum one: as many edits as the Levenshtein distance x0 -> x1.
            assert len(pos) == Levenshtein.distance(x_t.tolist(), x1)
            assert set(x_t.tolist()) <= {BOS} | {i for f in features for i in f["input_ids"]}
        for b, x_t, pos, kind, token in rows(collator(features)):
            assert apply_edits(x_t, pos, kind, token) == features[b]["input_ids"]
    assert saw_corrupt and (saw_masks or "masks" not in x0_sampler)


def test_auto_tie_break_resolves_per_regime():
    from editflow_hf.path.collator import AUTO_TIE_BREAK
    from editflow_hf.training.args import EditFlowTrainingArguments

    assert EditFlowTrainingArguments(output_dir="x", use_cpu=True).tie_break == "auto"
    with pytest.raises(ValueError, match="--tie_break must be one of auto, spread, left, right, random"):
        EditFlowTrainingArguments(output_dir="x", use_cpu=True, tie_break="middle")
    auto = make_collator(seed=0)
    assert auto.tie_break == "auto" and auto.tie_breaks_by_regime == {"sft": "right", "pt": "left"}
    assert auto.resolve_tie_break(1) == AUTO_TIE_BREAK["pt"] == "left"
    assert auto.resolve_tie_break(5) == AUTO_TIE_BREAK["sft"] == "right"
    # A recorded per-regime choice (what checkpoints store for "auto") aligns like "auto" did.
    recorded = make_collator(seed=0, tie_break={"sft": "spread", "pt": "random"})
    assert recorded.resolve_tie_break(5) == "spread" and recorded.resolve_tie_break(1) == "random"
    with pytest.raises(ValueError, match="keys 'sft' and 'pt'"):
        make_collator(tie_break={"sft": "right"})
    # The same draws as the explicit tie-break of each regime (random draws nothing extra for left/spread).
    features = [{"input_ids": [BOS, 1001, 1002, 1003], "prompt_len": 2}, {"input_ids": [BOS] + list(range(1100, 1120))}]
    for feature, regime in zip(features, ("sft", "pt")):
        explicit = make_collator(seed=0, tie_break=AUTO_TIE_BREAK[regime], x0_sampler="masks[length:8]")
        resolved = make_collator(seed=0, x0_sampler="masks[length:8]")
        a, b = explicit([feature]), resolved([feature])
        assert all(torch.equal(a[key], b[key]) for key in a)
