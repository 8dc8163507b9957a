"""The tau-leaping sampler: vectorised step vs a plain Python reference, protection, caps, determinism, padding,
step-by-step iteration, per-row draws (a row's output does not depend on its batch), and outputs identical to the
recorded reference."""

import copy
import json
import math
import pickle
from pathlib import Path

import pytest
import torch

from builders import BOS, MASK, PAD, tiny_editflow_model
from editflow_hf.modeling.edits_editflow import DecodeTrace, TraceStep
from editflow_hf.modeling.sampling_editflow import (
    CompiledEditRates,
    NUM_DRAWS,
    SamplerStep,
    TauLeapSampler,
    apply_edits,
    bucket_rows,
    bucket_width,
    edit_permissions,
    num_tau_steps,
    project_tokens,
    row_seed,
    sample_tokens,
)

VOCAB = 48


def tiny_model(rate_bias: float = -2.0, seed: int = 0):
    """A very small random Edit Flow model; `rate_bias` sets how often edits fire (softplus(bias) per unit w)."""
    return tiny_editflow_model(seed=seed, rate_bias=rate_bias, vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1)


def reference_apply(tokens, n, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens, protected):
    """Plain loop: token i is kept (substituted if fired) unless deleted, then the insertion after it."""
    out, out_protected, inserted, substituted, deleted = [], [], [], [], []
    for i in range(n):
        if del_fire[i]:
            deleted.append(i)
        else:
            value = sub_tokens[i] if sub_fire[i] else tokens[i]
            if value != tokens[i]:
                substituted.append(len(out))
            out.append(value)
            out_protected.append(protected[i])
        if ins_fire[i]:
            inserted.append(len(out))
            out.append(ins_tokens[i])
            out_protected.append(False)
    return out, out_protected, inserted, substituted, deleted


def reference_permissions(protected, n, open_end):
    can_edit = [not protected[i] for i in range(n)]
    can_insert = []
    for i in range(n):
        if i + 1 < n:
            can_insert.append(not protected[i] or not protected[i + 1])
        else:
            can_insert.append(not protected[i] or open_end)
    return can_edit, can_insert


@pytest.mark.parametrize("seed", range(5))
def test_apply_edits_matches_python_reference(seed):
    g = torch.Generator().manual_seed(seed)
    batch, width = 6, 12
    lengths = torch.randint(1, width + 1, (batch,), generator=g)
    tokens = torch.randint(4, VOCAB, (batch, width), generator=g)
    protected = torch.rand(batch, width, generator=g) < 0.3
    del_fire = torch.rand(batch, width, generator=g) < 0.3
    sub_fire = torch.rand(batch, width, generator=g) < 0.3
    ins_fire = torch.rand(batch, width, generator=g) < 0.3
    sub_tokens = torch.randint(4, VOCAB, (batch, width), generator=g)
    sub_tokens[0] = tokens[0]  # substitutions to the same token are no change
    ins_tokens = torch.randint(4, VOCAB, (batch, width), generator=g)

    result = apply_edits(tokens, lengths, protected, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens, PAD)
    for b in range(batch):
        n = int(lengths[b])
        args = [x[b].tolist() for x in (tokens, del_fire, sub_fire, sub_tokens, ins_fire, ins_tokens, protected)]
        out, out_protected, inserted, substituted, deleted = reference_apply(args[0], n, *args[1:])
        new_n = int(result.lengths[b])
        assert new_n == len(out)
        assert result.tokens[b, :new_n].tolist() == out
        assert (result.tokens[b, new_n:] == PAD).all()
        assert result.protected[b, :new_n].tolist() == out_protected
        assert result.inserted[b].nonzero().flatten().tolist() == inserted
        assert result.substituted[b].nonzero().flatten().tolist() == substituted
        assert result.deleted[b].nonzero().flatten().tolist() == deleted
        assert bool(result.changed[b]) == bool(inserted or substituted or deleted)


@pytest.mark.parametrize("seed", range(3))
def test_edit_permissions_match_reference(seed):
    g = torch.Generator().manual_seed(seed)
    batch, width = 8, 10
    lengths = torch.randint(1, width + 1, (batch,), generator=g)
    protected = torch.rand(batch, width, generator=g) < 0.5
    open_end = torch.rand(batch, generator=g) < 0.5
    can_edit, can_insert = edit_permissions(protected, lengths, open_end)
    for b in range(batch):
        n = int(lengths[b])
        ref_edit, ref_insert = reference_permissions(protected[b].tolist(), n, bool(open_end[b]))
        assert can_edit[b, :n].tolist() == ref_edit
        assert can_insert[b, :n].tolist() == ref_insert
        assert not can_edit[b, n:].any() and not can_insert[b, n:].any()


def test_prompt_gaps_closed_and_gap_after_prompt_open():
    protected = torch.tensor([[True, True, True, False, False]])
    can_edit, can_insert = edit_permissions(protected, torch.tensor([5]), torch.tensor([True]))
    assert can_edit.tolist() == [[False, False, False, True, True]]
    assert can_insert.tolist() == [[False, False, True, True, True]]
    # prompt with every mask deleted: the end of the prompt stays open only with an open end
    _, closed = edit_permissions(protected[:, :3], torch.tensor([3]), torch.tensor([False]))
    _, opened = edit_permissions(protected[:, :3], torch.tensor([3]), torch.tensor([True]))
    assert closed.tolist() == [[False, False, False]] and opened.tolist() == [[False, False, True]]


def test_num_tau_steps_reaches_one():
    assert num_tau_steps(0.01) == 100
    assert num_tau_steps(0.1) == 10
    assert num_tau_steps(0.3) == 4
    assert num_tau_steps(1.0) == 1


def test_sample_tokens_greedy_suppression_and_distribution():
    logits = torch.tensor([[5.0, 1.0, 0.0, 0.0], [0.0, 0.0, 3.0, 2.0]])
    assert sample_tokens(logits, temperature=0).tolist() == [0, 2]
    assert sample_tokens(logits, temperature=0, suppress_token_ids=[0, 2]).tolist() == [1, 3]
    # top_p tiny keeps only the top token
    g = torch.Generator().manual_seed(0)
    assert (sample_tokens(logits.repeat(50, 1), temperature=1.0, top_p=1e-3, generator=g) == torch.tensor([0, 2] * 50)).all()
    # frequencies follow softmax(logits / T)
    row = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    draws = sample_tokens(row.repeat(40000, 1), temperature=2.0, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert torch.allclose(freq, torch.softmax(row[0] / 2.0, -1), atol=0.01)
    # nucleus: top_p=0.7 over probs [0.5, 0.3, 0.15, 0.05] keeps the first two, renormalised
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    draws = sample_tokens(probs.log().repeat(40000, 1), top_p=0.7, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.01)
    assert sample_tokens(torch.zeros(0, 4)).shape == (0,)


def reference_token_distribution(scores: list[float], temperature: float, top_k: int, top_p: float) -> list[float]:
    """Plain Python: softmax(scores / T), keep the top_k best (ties with the k-th stay), then the smallest
    most-likely set whose mass reaches top_p, renormalised."""
    weights = [math.exp(s / temperature) for s in scores]
    if 0 < top_k <= len(scores):
        kth = sorted(scores, reverse=True)[top_k - 1]
        weights = [w if s >= kth else 0.0 for w, s in zip(weights, scores)]
    total = sum(weights)
    probs = [w / total for w in weights]
    kept, mass = set(), 0.0
    for index in sorted(range(len(probs)), key=lambda i: -probs[i]):
        if probs[index] == 0.0 or mass >= top_p:
            break
        kept.add(index)
        mass += probs[index]
    probs = [p if i in kept else 0.0 for i, p in enumerate(probs)]
    return [p / sum(probs) for p in probs]


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(1.0, 2, 1.0), (0.7, 3, 1.0), (1.0, 4, 0.6), (2.0, 1, 1.0), (1.0, 0, 1.0), (1.3, 10, 1.0)],
)
def test_sample_tokens_top_k_matches_a_plain_reference(temperature, top_k, top_p):
    scores = [0.3, 2.0, -1.0, 1.2, 0.9, -0.4]
    expected = torch.tensor(reference_token_distribution(scores, temperature, top_k, top_p))
    g = torch.Generator().manual_seed(1)
    draws = sample_tokens(torch.tensor([scores]).repeat(60000, 1), temperature, top_p, g, top_k=top_k)
    freq = torch.bincount(draws, minlength=len(scores)).float() / draws.numel()
    assert torch.all(freq[expected == 0] == 0), "a token outside the top-k / nucleus set was drawn"
    assert torch.allclose(freq, expected, atol=0.01)


def test_top_k_keeps_ties_and_sampler_validates_it():
    g = torch.Generator().manual_seed(0)
    draws = sample_tokens(torch.tensor([[1.0, 1.0, 0.0]]).repeat(4000, 1), top_k=1, generator=g)
    assert set(draws.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="top_k"):
        TauLeapSampler(tiny_model(), top_k=-1)


def test_choose_edits_probabilities_and_kind_split():
    model = tiny_model()
    sampler = TauLeapSampler(model, tau=0.1, generator=torch.Generator().manual_seed(0))
    n = 200000
    sub = torch.full((1, n), 3.0)
    dele = torch.full((1, n), 1.0)
    ins = torch.full((1, n), 2.0)
    everywhere = torch.ones((1, n), dtype=torch.bool)
    draws = torch.rand((NUM_DRAWS, 1, n), generator=torch.Generator().manual_seed(0))
    del_fire, sub_fire, ins_fire = sampler.firing.choose_edits(sub, dele, ins, everywhere, everywhere, torch.tensor([n]), 0.1, draws)
    # P(event) = min(1, 0.1 * 4) = 0.4, split 3:1; P(ins) = 0.2
    assert abs(sub_fire.float().mean().item() - 0.3) < 0.005
    assert abs(del_fire.float().mean().item() - 0.1) < 0.005
    assert abs(ins_fire.float().mean().item() - 0.2) < 0.005
    assert not (sub_fire & del_fire).any()
    # clamped at 1 when the scaled rate exceeds it
    del_fire, sub_fire, ins_fire = sampler.firing.choose_edits(sub, dele, ins, everywhere, everywhere, torch.tensor([n]), 10.0, draws)
    assert (sub_fire | del_fire).all() and ins_fire.all()


def test_step_weight_linear_last_step_is_finite():
    weights = TauLeapSampler(tiny_model(), tau=0.01).firing.step_weights()
    assert weights[0] == pytest.approx(0.01) and weights[-1] == pytest.approx(1.0)
    fine = TauLeapSampler(tiny_model(), tau=0.001).firing.step_weights()  # the last step starts at t = 0.999
    assert all(math.isfinite(w) for w in fine) and fine[-1] == pytest.approx(1.0)


def test_strength_starts_at_one_minus_strength_and_weights_the_rest_of_the_path():
    model = tiny_model(rate_bias=0.0)
    sampler = TauLeapSampler(model, tau=0.1, strength=0.3, reuse_unchanged_rows=False, seed=0)
    assert sampler.num_steps == 3 and TauLeapSampler(model, tau=0.1).num_steps == 10
    # linear schedule, w = 1 / (1 - t): h * w over 0.7 -> 0.8 -> 0.9 -> 1
    assert sampler.firing.step_weights() == pytest.approx([0.1 / 0.3, 0.1 / 0.2, 1.0])
    state = sampler.init_state([[BOS, 10, 11, 12]], [[True, False, False, False]], [True])
    assert state.t == pytest.approx(0.7)
    times = [sampler.step(state).t for _ in range(sampler.num_steps)]
    assert times == pytest.approx([0.8, 0.9, 1.0]) and times[-1] == 1.0
    assert state.tokens[0, 0] == BOS


def test_threshold_rule_fires_where_an_edit_is_more_likely_than_not():
    sampler = TauLeapSampler(tiny_model(), tau=0.1, edit_rule="threshold")
    sub = torch.tensor([[0.2, 0.6, 0.3, 0.05, 0.9]])
    dele = torch.tensor([[0.2, 0.1, 0.3, 0.05, 0.9]])
    ins = torch.tensor([[0.6, 0.4, 0.0, 0.49, 0.9]])
    everywhere = torch.ones((1, 5), dtype=torch.bool)
    blocked = everywhere.clone()
    blocked[0, 4] = False
    for scale, draws in ((0.01, torch.zeros((NUM_DRAWS, 1, 5))), (100.0, torch.full((NUM_DRAWS, 1, 5), 0.99))):
        del_fire, sub_fire, ins_fire = sampler.firing.choose_edits(sub, dele, ins, blocked, blocked, torch.tensor([5]), scale, draws)
        assert sub_fire.tolist() == [[False, True, True, False, False]]  # sub + del > 1/2; a tie goes to sub
        assert del_fire.tolist() == [[False] * 5]
        assert ins_fire.tolist() == [[True, False, False, False, False]]
    del_fire, _, _ = sampler.firing.choose_edits(sub, dele * 8, ins, everywhere, everywhere, torch.tensor([5]), 1.0, draws)
    assert del_fire.tolist() == [[True, True, True, False, True]]


def test_threshold_rule_leaves_text_alone_where_tau_leaping_integrates_a_small_rate():
    """A model that gives every position the same small rate (0.1 per unit w: an edit unlikely anywhere) rewrites
    text under tau-leaping, about n * 3 * 0.1 * (ln(1 / tau) + 1) edits, and leaves it unchanged under the threshold
    rule; at rate 0.9 the threshold rule edits."""
    model = tiny_model()
    text = [[BOS, *range(10, 40)]]
    protected = [[True] + [False] * 30]

    def edits(rate: float, rule: str) -> int:
        with torch.no_grad():
            model.rate_head.weight.zero_()
            model.rate_head.bias.fill_(math.log(math.expm1(rate)))  # softplus(bias) = rate
        sampler = TauLeapSampler(model, tau=0.01, seed=0, edit_rule=rule, max_length=40, suppress_token_ids=[PAD, BOS, MASK])
        final = sampler.sample(text, protected, [True]).sequences[0]
        return sum(a != b for a, b in zip(final, text[0])) + abs(len(final) - len(text[0]))

    assert edits(0.1, "sample") > 10
    assert edits(0.1, "threshold") == 0
    assert edits(0.9, "threshold") > 10


def test_gain_rule_fires_the_edits_more_likely_right_than_needless():
    """edit_rule="gain" at designed rates and token distributions: an edit fires where its probability (rate times
    its token's probability; a deletion's rate) beats the probability that the position needs nothing, token and kind
    chosen together; the threshold rule, which ignores the tokens, fires at every one of positions 1-4."""
    sampler = TauLeapSampler(tiny_model(), tau=0.1, edit_rule="gain", suppress_token_ids=[PAD, BOS, MASK])
    tokens = [BOS, 10, 11, 12, 13, 14]
    state = sampler.init_state([tokens], [[True] + [False] * 5], [True])
    sampler.runner.refresh(state, 0.0)
    state.permissions = edit_permissions(state.protected, state.lengths, state.open_end)
    # per position: sub, del, ins rate
    state.rate_cache = torch.tensor([[[0, 0, 0], [0.5, 0.1, 0.6], [0.5, 0.1, 0], [0.35, 0.35, 0], [0.9, 0, 0], [0.2, 0, 0.9]]])
    state.hidden_cache = torch.eye(6)[None]  # position i reads row i of the designed distributions below

    def distribution(choices: dict[int, float]) -> torch.Tensor:  # log-probabilities (the choices sum to 1)
        probs = torch.full((VOCAB,), 1e-9)
        for token, p in choices.items():
            probs[token] = p
        return probs.log()

    designed = {
        sampler.model.sub_head: torch.stack([
            distribution({}),
            distribution({20: 0.9, 40: 0.1}),  # 0.5 * 0.9 = 0.45 > 1 - 0.6: substitute by 20
            distribution({21: 0.5, 22: 0.5}),  # 0.5 * 0.5 < 0.4: keep, though sub + del > 1/2
            distribution({23: 0.5, 24: 0.5}),  # sub 0.35 * 0.5 < del 0.35 > 1 - 0.7: delete
            distribution({13: 0.95, 25: 0.04, 41: 0.01}),  # its own token is no substitution: 0.9 * 0.04 < 0.1, keep
            distribution({MASK: 0.99, 26: 0.01}),  # suppressed ids are never chosen
        ]),
        sampler.model.ins_head: torch.stack([
            distribution({}),
            distribution({30: 0.5, 31: 0.5}),  # 0.6 * 0.5 < 1 - 0.6: no insertion
            *[distribution({}) for _ in range(3)],
            distribution({MASK: 0.15, 32: 0.8, 42: 0.05}),  # 0.9 * 0.8 > 0.1: insert 32 after the last token
        ]),
    }
    sampler.runner.token_logits = lambda head, hidden, t: hidden @ designed[head]
    rates, permissions = state.rate_cache.clone(), state.permissions
    sampler.firing.gain_margin = 0.1  # the substitution and the deletion win by 0.05 only; the insertion by 0.62
    del_fire, sub_fire, ins_fire, _, _ = sampler.gain_edits(state, 0.0)
    assert not sub_fire.any() and not del_fire.any() and ins_fire.tolist() == [[False] * 5 + [True]]
    sampler.firing.gain_margin = 0.0
    del_fire, sub_fire, ins_fire, sub_tokens, ins_tokens = sampler.gain_edits(state, 0.0)
    assert sub_fire.tolist() == [[False, True, False, False, False, False]] and sub_tokens[0, 1] == 20
    assert del_fire.tolist() == [[False, False, False, True, False, False]]
    assert ins_fire.tolist() == [[False] * 5 + [True]] and ins_tokens[0, 5] == 32
    state.stale[:] = False  # keep the designed rates for the step
    step = sampler.step(state)
    assert state.tokens[0, : state.lengths[0]].tolist() == [BOS, 20, 11, 13, 14, 32]
    assert step.trace_steps()[0].substituted == [1] and step.trace_steps()[0].deleted == [3]
    threshold = TauLeapSampler(tiny_model(), tau=0.1, edit_rule="threshold")
    _, threshold_sub, _ = threshold.firing.choose_edits(*rates.unbind(-1), *permissions, torch.tensor([6]), 1.0, torch.zeros((NUM_DRAWS, 1, 6)))
    assert threshold_sub.tolist() == [[False, True, True, True, True, False]]


def test_gain_rule_leaves_unlikely_edits_and_runs_end_to_end():
    """Through sample(): at a rate of 0.1 per unit w everywhere (an edit unlikely anywhere) the gain rule changes
    nothing where tau-leaping rewrites; at 0.9 it edits, deterministically (no draws), within max_length."""
    model = tiny_model()
    text = [[BOS, *range(10, 40)]]
    protected = [[True] + [False] * 30]

    def run(rate: float, rule: str, seed: int = 0) -> list[int]:
        with torch.no_grad():
            model.rate_head.weight.zero_()
            model.rate_head.bias.fill_(math.log(math.expm1(rate)))  # softplus(bias) = rate
            model.sub_head.decoder.weight.mul_(0.0).add_(torch.eye(VOCAB, 16) * 50)  # confident token heads
            model.ins_head.decoder.weight.copy_(model.sub_head.decoder.weight)
        sampler = TauLeapSampler(model, tau=0.05, seed=seed, edit_rule=rule, max_length=40, suppress_token_ids=[PAD, BOS, MASK])
        return sampler.sample(text, protected, [True]).sequences[0]

    assert run(0.1, "sample") != text[0]
    assert run(0.1, "gain") == text[0]
    edited = run(0.9, "gain")
    assert edited != text[0] and edited[0] == BOS and len(edited) <= 40
    assert run(0.9, "gain", seed=1) == edited
    with pytest.raises(ValueError, match="fixed-length infill"):
        TauLeapSampler(model, edit_rule="gain", fixed_length=True)


def start_rows(prompts, mask_length):
    sequences = [[BOS, *p] + [MASK] * mask_length for p in prompts]
    protected = [[True] * (1 + len(p)) + [False] * mask_length for p in prompts]
    return sequences, protected


def test_prompt_is_protected_and_bos_kept():
    model = tiny_model(rate_bias=1.0)
    prompts = [[10, 11, 12], [20, 21], [30, 31, 32, 33, 34]]
    sequences, protected = start_rows(prompts, 6)
    sampler = TauLeapSampler(model, tau=0.05, generator=torch.Generator().manual_seed(0), suppress_token_ids=[PAD, BOS, MASK])
    result = sampler.sample(sequences, protected, [True] * 3, prompt_lengths=[4, 3, 6], return_trace=True)
    for prompt, final, trace in zip(prompts, result.sequences, result.traces):
        assert final[: 1 + len(prompt)] == [BOS, *prompt]
        assert len(trace.steps) > 3  # plenty happened
        for step in trace.steps:
            assert step.tokens[: 1 + len(prompt)] == [BOS, *prompt]
            assert all(i > len(prompt) for i in step.inserted + step.substituted)
            assert all(i > len(prompt) for i in step.deleted)
        assert BOS not in final[1:]  # suppressed: never inserted or substituted in


def test_bos_never_edited_even_when_everything_else_is_editable():
    model = tiny_model(rate_bias=2.0)
    sequences = [[BOS, 10, 11, 12, 13], [BOS, MASK, MASK]]
    protected = [[True, False, False, False, False], [True, False, False]]
    sampler = TauLeapSampler(model, tau=0.1, generator=torch.Generator().manual_seed(1), suppress_token_ids=[PAD, BOS, MASK])
    result = sampler.sample(sequences, protected, [True, True], return_trace=True)
    for final, trace in zip(result.sequences, result.traces):
        assert final[0] == BOS
        assert all(step.tokens[0] == BOS and 0 not in step.deleted + step.substituted for step in trace.steps)
        assert any(step.deleted or step.substituted for step in trace.steps)


def test_max_length_caps_insertions():
    model = tiny_model()
    with torch.no_grad():
        model.rate_head.bias.copy_(torch.tensor([-4.0, -4.0, 3.0]))  # mostly insertions
    sequences, protected = start_rows([[10], [11, 12, 13]], 4)
    sampler = TauLeapSampler(model, tau=0.1, max_length=12, generator=torch.Generator().manual_seed(0))
    result = sampler.sample(sequences, protected, [True, True], return_trace=True)
    for trace in result.traces:
        assert all(len(step.tokens) <= 12 for step in trace.steps)
    assert [len(s) for s in result.sequences] == [12, 12]  # strong insertion rates fill up to the cap


def test_same_seed_same_output_different_seed_differs():
    model = tiny_model(rate_bias=0.0)
    sequences, protected = start_rows([[10, 11], [12]], 8)

    def run(seed):
        sampler = TauLeapSampler(model, tau=0.05, generator=torch.Generator().manual_seed(seed))
        return sampler.sample(sequences, protected, [True, True]).sequences

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_reusing_unchanged_rows_matches_recomputing_all():
    model = tiny_model(rate_bias=-1.0)
    sequences, protected = start_rows([[10, 11], [12], [13, 14, 15]], 5)

    def run(reuse):
        sampler = TauLeapSampler(model, tau=0.02, generator=torch.Generator().manual_seed(7), reuse_unchanged_rows=reuse)
        return sampler.sample(sequences, protected, [True] * 3, return_trace=True)

    cached, full = run(True), run(False)
    assert cached.sequences == full.sequences
    assert cached.traces == full.traces
    assert len(cached.traces[0].steps) < num_tau_steps(0.02)  # some steps changed nothing, so reuse happened


class FixedDrawSampler(TauLeapSampler):
    """Deterministic firing: every draw is the same constant, so an edit fires iff its probability exceeds it."""

    def draw_uniforms(self, state):
        return torch.full((NUM_DRAWS, *state.tokens.shape), 0.08, device=self.device)


def test_row_result_does_not_depend_on_batch_padding():
    model = tiny_model(rate_bias=-1.0)
    prompts = [[10, 11, 12, 13, 14, 15], [20], [30, 31, 32]]
    sequences, protected = start_rows(prompts, 5)

    def run(rows):
        sampler = FixedDrawSampler(model, tau=0.05, temperature=0.0, suppress_token_ids=[PAD, BOS, MASK])
        return sampler.sample([sequences[i] for i in rows], [protected[i] for i in rows], [True] * len(rows), return_trace=True)

    together = run([0, 1, 2])
    for i in range(3):
        alone = run([i])
        assert alone.sequences[0] == together.sequences[i]
        assert alone.traces[0].steps == together.traces[i].steps
    assert any(len(t.steps) > 0 for t in together.traces)


def test_trace_steps_replay_the_edits():
    model = tiny_model(rate_bias=0.5)
    sequences, protected = start_rows([[10, 11], [12]], 6)
    sampler = TauLeapSampler(model, tau=0.05, generator=torch.Generator().manual_seed(5))
    result = sampler.sample(sequences, protected, [True, True], prompt_lengths=[3, 2], return_trace=True)
    for initial, final, trace in zip(sequences, result.sequences, result.traces):
        assert trace.initial == initial
        previous = initial
        last_t = 0.0
        for step in trace.steps:
            assert 0 < step.t <= 1.0 and step.t > last_t
            last_t = step.t
            assert step.inserted or step.substituted or step.deleted
            kept_before = [tok for i, tok in enumerate(previous) if i not in step.deleted]
            kept_after_idx = [i for i in range(len(step.tokens)) if i not in step.inserted]
            assert len(kept_before) == len(kept_after_idx)
            for before, after_index in zip(kept_before, kept_after_idx):
                changed = step.tokens[after_index] != before
                assert changed == (after_index in step.substituted)
            previous = step.tokens
        assert previous == final


def test_iter_steps_yields_every_step_and_sample_is_its_trace():
    model = tiny_model(rate_bias=0.0)
    sequences, protected = start_rows([[10], [11, 12]], 4)

    def sampler():
        return TauLeapSampler(model, tau=0.1, generator=torch.Generator().manual_seed(0))

    steps = list(sampler().iter_steps(sequences, protected, [True, True]))
    result = sampler().sample(sequences, protected, [True, True], prompt_lengths=[2, 3], return_trace=True)
    assert all(isinstance(step, SamplerStep) for step in steps)
    assert [step.step for step in steps] == list(range(1, 11))
    assert steps[-1].t == pytest.approx(1.0)
    assert steps[-1].sequences() == result.sequences
    for row in range(2):
        from_steps = [step.trace_steps()[row] for step in steps if step.trace_steps()[row] is not None]
        assert all(isinstance(step, TraceStep) for step in from_steps)
        assert from_steps == result.traces[row].steps
    assert [trace.prompt_len for trace in result.traces] == [2, 3]


def test_step_by_step_with_a_state_and_early_stop():
    model = tiny_model(rate_bias=0.0)
    sequences, protected = start_rows([[10], [11, 12]], 4)
    run = TauLeapSampler(model, tau=0.25, generator=torch.Generator().manual_seed(1))
    state = run.init_state(sequences, protected, [True, True])
    manual = [run.step(state) for _ in range(run.num_steps)]
    assert (state.step, state.t) == (4, 1.0) and state.sequences() == manual[-1].sequences()
    with pytest.raises(ValueError, match="complete"):
        run.step(state)
    again = TauLeapSampler(model, tau=0.25, generator=torch.Generator().manual_seed(1)).sample(sequences, protected, [True, True])
    assert again.sequences == state.sequences()
    # breaking out of the loop stops the sampling: no further model call
    calls = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    for _ in TauLeapSampler(model, tau=0.1).iter_steps(sequences, protected, [True, True]):
        break
    assert len(calls) == 1


def test_decode_trace_round_trips_through_its_dict_form():
    trace = DecodeTrace(prompt_len=2, initial=[BOS, 10, MASK], steps=[TraceStep(1, 0.5, [BOS, 10, 11], [], [2], [])])
    assert DecodeTrace.from_dict(trace.to_dict()) == trace
    assert DecodeTrace.from_dict(trace) is trace
    json.dumps(trace.to_dict())
    with pytest.raises(ValueError, match="decode trace"):
        DecodeTrace.from_dict({"initial": [1], "steps": [{"tokens": [1]}]})


REFERENCE = Path(__file__).parent / "data" / "sampler_reference.json"


def run_reference_case(case: dict):
    sequences, protected = start_rows(case["prompts"], case["masks"])
    sampler = TauLeapSampler(
        tiny_model(rate_bias=case["rate_bias"]), tau=case["tau"], temperature=case["temperature"], top_p=case["top_p"],
        max_length=case["max_length"], seed=case["seed"], suppress_token_ids=[PAD, BOS, MASK],
    )  # fmt: skip
    return sampler.sample(
        sequences, protected, case["open_end"], prompt_lengths=[1 + len(p) for p in case["prompts"]], return_trace=True
    )


def test_outputs_match_the_recorded_reference():
    """Same seeds, same outputs and traces as recorded in tests/data/sampler_reference.json (several seeds, batch
    sizes, temperatures, top_p, a length cap): a change that alters what a seed samples must be deliberate. The file
    was last re-recorded when draws became counter-based (a hash of the row's key, the step and the position);
    `python tests/test_sampling.py --record` re-records it."""
    for recorded in json.loads(REFERENCE.read_text()):
        result = run_reference_case(recorded["case"])
        assert result.sequences == recorded["sequences"]
        assert [trace.to_dict() for trace in result.traces] == recorded["traces"]


def test_seeded_generator_and_seed_agree():
    """A sampler given a seeded torch.Generator draws its run seed from it: reproducible, and seed-like."""
    model = tiny_model(rate_bias=0.0)
    sequences, protected = start_rows([[10, 11], [12]], 6)

    def run(**kwargs):
        return TauLeapSampler(model, tau=0.1, **kwargs).sample(sequences, protected, [True, True]).sequences

    assert run(generator=torch.Generator().manual_seed(5)) == run(generator=torch.Generator().manual_seed(5))
    assert run(seed=5) == run(seed=5) != run(seed=6)
    with pytest.raises(ValueError, match="seed"):
        TauLeapSampler(model, seed=1.5)


def test_row_output_depends_on_seed_and_row_index_only():
    """Each row draws from its own generator keyed by (seed, row index), sized by the row: sampled alone with its
    index, or in batches of other sizes and orders, a row gives the same sequence and trace (random draws, full
    temperature, unequal lengths so the padded width differs)."""
    model = tiny_model(rate_bias=0.0)
    prompts = [[10, 11, 12, 13, 14, 15], [20], [30, 31, 32], [40, 41]]
    sequences, protected = start_rows(prompts, 5)

    def run(rows):
        sampler = TauLeapSampler(model, tau=0.05, seed=11, max_length=20, suppress_token_ids=[PAD, BOS, MASK])
        pick = lambda values: [values[i] for i in rows]  # noqa: E731
        return sampler.sample(pick(sequences), pick(protected), [True] * len(rows), row_ids=rows, return_trace=True)

    together = run([0, 1, 2, 3])
    assert len({len(s) for s in together.sequences}) > 1 and all(t.steps for t in together.traces)
    for rows in ([0], [1], [2], [3], [3, 1], [2, 0, 3]):
        part = run(rows)
        for position, row in enumerate(rows):
            assert part.sequences[position] == together.sequences[row]
            assert part.traces[position].steps == together.traces[row].steps
    # the index matters: the same start at another index samples differently
    moved = TauLeapSampler(model, tau=0.05, seed=11, max_length=20, suppress_token_ids=[PAD, BOS, MASK])
    assert moved.sample([sequences[0]], [protected[0]], [True], row_ids=[7]).sequences[0] != together.sequences[0]


def test_row_seeds_are_mixed():
    """Neighbouring seeds and rows get unrelated generator seeds (seed s row r + 1 is not seed s + 1 row r)."""
    seeds = {row_seed(seed, row) for seed in range(20) for row in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    assert row_seed(0, 1) != row_seed(1, 0)


def test_width_and_row_buckets():
    assert [bucket_width(w) for w in (1, 16, 17, 65, 257, 1025, 8192, 8193)] == [16, 16, 32, 80, 320, 1280, 8192, 9216]
    assert bucket_width(250, cap=252) == 252 and bucket_width(300, cap=260) == 300  # at most the cap, never below the width
    assert [bucket_rows(n) for n in (1, 2, 3, 5, 64, 65)] == [1, 2, 4, 8, 64, 128]


def compile_case(compile: bool, seed: int, rows: list[int], model):
    prompts = [[10, 11, 12], [20], [30, 31]]
    sequences, protected = start_rows([prompts[i] for i in rows], 6)
    sampler = TauLeapSampler(
        model, tau=0.1, seed=seed, max_length=16, suppress_token_ids=[PAD, BOS, MASK], compile=compile
    )  # fmt: skip
    return sampler, sampler.sample(sequences, protected, [True] * len(rows), row_ids=rows, return_trace=True)


def test_bucketed_shapes_give_the_eager_result(monkeypatch):
    """The compiled step's padding on CUDA (rows to a power of two, width to a bucket) and trimming, with the
    compiler replaced by the eager function: same sequences and traces as the eager sampler, at bucketed shapes only."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    model = tiny_model(rate_bias=0.0)
    model._compiled_edit_rates = CompiledEditRates(model, bucketed=True)  # as on CUDA
    for seed in range(3):
        _, eager = compile_case(False, seed, [0, 1, 2], model)
        bucketed, padded = compile_case(True, seed, [0, 1, 2], model)
        assert padded.sequences == eager.sequences and padded.traces == eager.traces
    shapes = model.compiled_edit_rates().shapes
    assert shapes and all(rows in (1, 2, 4) and width == 16 for rows, width in shapes)
    assert (4, 16) in shapes  # three rows ran as four


def test_compiled_step_equals_eager_for_the_same_seed():
    """torch.compile (default CPU backend), at the sequences' own widths: the same sequences and traces as eager
    for the same seeds; one graph (its width dynamic) serves every width and every sampler of the model, called
    without torch.compile's per-call guard check; the compilation is counted in compile_seconds, only where it
    happened."""
    model = tiny_model(rate_bias=0.0)
    first = None
    for seed in range(3):
        _, eager = compile_case(False, seed, [1], model)
        sampler, compiled = compile_case(True, seed, [1], model)
        assert compiled.sequences == eager.sequences and compiled.traces == eager.traces
        first = sampler.compile_seconds if first is None else first
        if seed > 0:
            assert sampler.compile_seconds == 0.0  # the graph is reused across samplers of the same model
    assert first > 0.0
    compiled_rates = model.compiled_edit_rates()
    assert len({width for _, width in compiled_rates.shapes}) > 1 and all(rows == 1 for rows, _ in compiled_rates.shapes)
    if hasattr(torch.compile(lambda x: x), "aot_compile"):  # torch >= 2.9: ahead of time, no guards per call
        assert compiled_rates.ahead_of_time and len(compiled_rates.graphs) == 1 and compiled_rates.compilations == 1


def test_compile_falls_back_to_plain_torch_compile_where_ahead_of_time_fails(monkeypatch):
    """A backbone torch cannot compile ahead of time (e.g. a graph break) runs under plain torch.compile: the same
    output as eager, and no second attempt."""
    attempts = []

    class NoAheadOfTime:
        def __init__(self, fn, **kwargs):
            self.fn = fn

        def __call__(self, *args):
            return self.fn(*args)

        def aot_compile(self, example):
            attempts.append(example)
            raise RuntimeError("graph break")

    monkeypatch.setattr(torch, "compile", NoAheadOfTime)
    model = tiny_model(rate_bias=0.0)
    _, eager = compile_case(False, 0, [1], model)
    _, compiled = compile_case(True, 0, [1], model)
    assert compiled.sequences == eager.sequences and compiled.traces == eager.traces
    rates = model.compiled_edit_rates()
    assert len(attempts) == 1 and not rates.ahead_of_time and not rates.graphs and len(rates.shapes) > 1


def test_a_model_that_sampled_compiled_still_copies_and_pickles():
    """The compiled graphs stay with the model (`compiled_edit_rates`) but do not travel: deepcopy and pickle give a
    model that compiles its own."""
    model = tiny_model(rate_bias=0.0)
    compile_case(True, 0, [1], model)
    assert model.compiled_edit_rates().shapes
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin.__dict__.get("_compiled_edit_rates") is None
        assert twin.compiled_edit_rates().model is twin


def test_project_tokens_equals_the_head_and_follows_its_weights():
    """The fired rows' logits through the transposed vocabulary projection equal the head's own (float rounding),
    also after the weights change in place (a training step) or are replaced, and for many rows (the head itself)."""
    model = tiny_model()
    head = model.sub_head
    hidden = torch.randn(3, head.decoder.in_features)
    with torch.no_grad():
        torch.testing.assert_close(project_tokens(head, hidden), head(hidden))
        head.decoder.weight.mul_(-2.0)  # in place, as an optimizer step
        torch.testing.assert_close(project_tokens(head, hidden), head(hidden))
        head.decoder.weight.data = torch.randn_like(head.decoder.weight)  # replaced
        torch.testing.assert_close(project_tokens(head, hidden), head(hidden))
        many = torch.randn(40, head.decoder.in_features)
        torch.testing.assert_close(project_tokens(head, many), head(many))
    # the transposed copy is the head's own and does not travel with a copy of it
    assert "_transposed_decoder" in head.__dict__
    assert all("_transposed_decoder" not in twin.__dict__ for twin in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))))


def test_bad_sampler_arguments_raise_value_error():
    model = tiny_model()
    for kwargs in (dict(tau=0.0), dict(tau=1.5), dict(temperature=-1.0), dict(top_p=0.0), dict(top_p=1.2), dict(strength=0),
                   dict(strength=1.01), dict(edit_rule="argmax")):  # fmt: skip
        with pytest.raises(ValueError):
            TauLeapSampler(model, **kwargs)
    sampler = TauLeapSampler(model)
    with pytest.raises(ValueError, match="protection flag"):
        sampler.sample([[BOS, MASK]], [[True]], [True])
    with pytest.raises(ValueError, match="one entry per row"):
        sampler.sample([[BOS, MASK]], [[True, False]], [True, True])


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--record"]:  # re-record tests/data/sampler_reference.json with the current sampler
        cases = [recorded["case"] for recorded in json.loads(REFERENCE.read_text())]
        records = []
        for case in cases:
            result = run_reference_case(case)
            records.append({"case": case, "sequences": result.sequences, "traces": [t.to_dict() for t in result.traces]})
        REFERENCE.write_text(json.dumps(records))
        print(f"re-recorded {len(records)} cases in {REFERENCE}")


def test_ahead_of_time_guards_leave_out_type_checks_on_classes_made_inside_functions():
    """transformers >= 5.25 gives each ModernBERT attention layer a rotary wrapper whose class is made inside a
    function (the `kernels` package's `Func`); torch cannot save a type guard on it, and ahead-of-time compilation
    failed, so every call went through torch.compile's guard check again. Such guards are left out; the rest kept."""
    from torch._dynamo.types import GuardFilterEntry

    from editflow_hf.modeling.compiling_editflow import _serialisable_guards

    def make_local():
        class Func(torch.nn.Module):
            pass

        return Func()

    def entry(value, guard_type="TYPE_MATCH", is_global=False):
        return GuardFilterEntry(
            name="L['self']._kernel_funcs['x']", has_value=True, value=value, guard_type=guard_type,
            derived_guard_types=(), is_global=is_global, orig_guard=None,
        )  # fmt: skip

    kept = _serialisable_guards(
        [entry(make_local()), entry(torch.nn.Linear(1, 1)), entry(make_local(), "TENSOR_MATCH"), entry(1, is_global=True)]
    )  # fmt: skip
    assert kept == [False, True, True, False]


def test_plain_torch_compile_counts_only_the_calls_that_compiled(monkeypatch):
    """Where ahead-of-time compilation is not to be had, compile_seconds adds up only calls in which torch.compile
    compiled a graph (its own counter), not every new width (the second width makes the graph dynamic, the rest
    reuse it)."""
    model = tiny_model(rate_bias=0.0)
    rates = model.compiled_edit_rates()
    rates.ahead_of_time = False
    samplers = [compile_case(True, seed, [1], model)[0] for seed in range(3)]
    assert samplers[0].compile_seconds > 0
    assert all(sampler.compile_seconds == 0.0 for sampler in samplers[1:])
    assert 1 <= rates.compilations <= 2 < len(rates.shapes)


def plain_uniform(row_key: int, step: int, draw: int, position: int) -> float:
    """The number of `counter_uniforms` from Python integers: SplitMix64 twice, the top 24 bits."""
    from editflow_hf.modeling.firing_editflow import _splitmix64

    mask = (1 << 64) - 1
    base = _splitmix64((row_key + step * 0x9E3779B97F4A7C15) & mask)
    return (_splitmix64(base ^ ((draw << 32) | position)) >> 40) / 2**24


def test_counter_uniforms_equal_a_plain_reference_and_do_not_depend_on_the_batch():
    from editflow_hf.modeling.sampling_editflow import counter_uniforms

    keys = [row_seed(seed, row) for seed, row in ((0, 0), (0, 1), (7, 3), (2**64 - 1, 12))]
    together = counter_uniforms(torch.tensor(keys), step=5, width=9)
    for b, key in enumerate(keys):
        for d in range(NUM_DRAWS):
            for i in range(9):
                assert together[d, b, i].item() == plain_uniform(key, 5, d, i)
        alone = counter_uniforms(torch.tensor([key]), step=5, width=4)  # narrower: the same numbers where both are
        assert torch.equal(alone[:, 0], together[:, b, :4])


def test_counter_uniforms_are_uniform_and_independent_across_rows_steps_draws_and_positions():
    """Chi-square of 64 bins over 2.6M numbers; correlation of neighbouring rows, steps, draws and positions; pairs
    of consecutive positions uniform over an 8 x 8 grid (no joint structure)."""
    from editflow_hf.modeling.sampling_editflow import counter_uniforms

    keys = torch.tensor([row_seed(3, row) for row in range(64)])
    draws = torch.stack([counter_uniforms(keys, step, 1024) for step in range(8)])  # [steps, draws, rows, positions]
    values = draws.flatten().double()
    assert 0.0 <= values.min() and values.max() < 1.0
    assert abs(values.mean() - 0.5) < 0.002 and abs(values.var() - 1 / 12) < 0.001
    counts = torch.bincount((values * 64).long(), minlength=64).double()
    expected = values.numel() / 64
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 120  # 63 degrees of freedom: p < 1e-5 beyond ~120

    def correlation(a, b):
        a, b = a.flatten().double() - 0.5, b.flatten().double() - 0.5
        return ((a * b).mean() / (a.std() * b.std())).item()

    for dim in range(4):  # steps, draws, rows, positions: each against its neighbour
        first, second = draws.narrow(dim, 0, draws.shape[dim] - 1), draws.narrow(dim, 1, draws.shape[dim] - 1)
        assert abs(correlation(first, second)) < 0.01, dim
    pairs = (draws[..., :-1] * 8).long() * 8 + (draws[..., 1:] * 8).long()
    grid = torch.bincount(pairs.flatten(), minlength=64).double()
    chi2 = ((grid - grid.mean()) ** 2 / grid.mean()).sum().item()
    assert chi2 < 120
