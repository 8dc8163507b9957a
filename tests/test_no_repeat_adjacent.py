"""`no_repeat_adjacent`: a written token never equals a token beside it. A converted decoder's insertion head is its
LM head, which predicts the token that already follows ("Germany is is Tokyo"); the setting is on by default for
such checkpoints (a shifted substitution head) and off otherwise."""

import pytest
import torch

from builders import BOS, MASK, PAD, tiny_editflow_model
from editflow_hf.modeling.generation_editflow import EditFlowGenerationConfig
from editflow_hf.modeling.sampling_editflow import TauLeapSampler, default_no_repeat_adjacent
from editflow_hf.modeling.tokens_editflow import ban_neighbours, neighbour_tokens


def reference_banned(tokens, lengths, where, substitution):
    """Plain loops: the tokens beside each write, within its row's length."""
    banned = []
    for row, column in zip(*where):
        sides = (column - 1, column + 1) if substitution else (column, column + 1)
        banned.append({tokens[row][j] for j in sides if 0 <= j < lengths[row]})
    return banned


@pytest.mark.parametrize("substitution", [True, False])
def test_the_banned_tokens_equal_the_plain_reference(substitution):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, 12, (3, 7), generator=generator)
    tokens[:, 0] = BOS
    lengths = torch.tensor([7, 5, 2])
    for _ in range(10):
        fire = torch.rand(tokens.shape, generator=generator) < 0.5
        fire &= torch.arange(7)[None] < lengths[:, None]
        if substitution:
            fire[:, 0] = False  # BOS is never substituted
        where = fire.nonzero(as_tuple=True)
        logits = torch.zeros(len(where[0]), 16)
        ban_neighbours(logits, neighbour_tokens(tokens, lengths, where, substitution))
        got = [set(torch.isinf(row).nonzero().flatten().tolist()) for row in logits]
        assert got == reference_banned(tokens.tolist(), lengths.tolist(), [w.tolist() for w in where], substitution)


def parrot_model(shifted: bool):
    """A tiny model whose token heads always rank token 11 first and 12 second, with insertion and substitution
    rates everywhere: left alone, it writes 11 beside 11."""
    model = tiny_editflow_model(seed=0, vocab_size=48, hidden_size=16, num_hidden_layers=1).eval()
    model.config.sub_head_shift = shifted
    edit_rates = model.edit_rates

    def rates(input_ids, attention_mask, t=None, **kwargs):
        rates, hidden = edit_rates(input_ids, attention_mask, t, **kwargs)
        rates = torch.zeros_like(rates)
        rates[..., 0] = 30.0 * (input_ids == MASK)  # substitute every mask
        rates[..., 2] = 0.5  # and insert here and there
        return rates, hidden

    model.edit_rates = rates
    for head in (model.sub_head, model.ins_head):
        head.project_rows = lambda hidden: torch.zeros(hidden.shape[0], 48).index_fill_(1, torch.tensor([11]), 9.0).index_fill_(1, torch.tensor([12]), 5.0)
    return model


def adjacent_repeats(ids):
    return sum(a == b for a, b in zip(ids, ids[1:]))


@pytest.mark.parametrize("write_order", ["parallel", "frontier"])
def test_a_run_that_repeats_tokens_writes_none_beside_a_token_that_stood_before(write_order):
    """The ban reads the tokens as they stand before the step: under the frontier order (the default where the
    setting is on) no two neighbours are written in one step, so no token ends beside its equal; under the parallel
    order two masks side by side may still draw the same token in one step."""
    model = parrot_model(shifted=True)
    start, protected = [BOS, 11] + [MASK] * 6, [True, True] + [False] * 6
    outputs = {}
    for setting in (False, True):
        sampler = TauLeapSampler(model, tau=0.25, seed=0, top_k=1, suppress_token_ids=[PAD, BOS, MASK],
                                 write_order=write_order, no_repeat_adjacent=setting)  # fmt: skip
        outputs[setting] = sampler.sample([start], [protected], [True]).sequences[0]
    assert adjacent_repeats(outputs[False]) > adjacent_repeats(outputs[True])
    if write_order == "frontier":
        assert adjacent_repeats(outputs[True]) == 0 and MASK not in outputs[True]


def test_on_by_default_for_a_shifted_head_only_and_reached_from_generate():
    assert default_no_repeat_adjacent(parrot_model(shifted=True).config) is True
    assert default_no_repeat_adjacent(parrot_model(shifted=False).config) is False
    assert TauLeapSampler(parrot_model(shifted=True)).token_rule.no_repeat_adjacent is True
    assert TauLeapSampler(parrot_model(shifted=False)).token_rule.no_repeat_adjacent is False
    model = parrot_model(shifted=True)
    prompt = torch.tensor([[BOS, 11]])
    banned = model.generate(prompt, mask_length=6, tau=0.25, seed=0, top_k=1)[0].tolist()
    allowed = model.generate(prompt, mask_length=6, tau=0.25, seed=0, top_k=1, no_repeat_adjacent=False)[0].tolist()
    assert adjacent_repeats([t for t in banned if t != PAD]) == 0 < adjacent_repeats([t for t in allowed if t != PAD])
    with pytest.raises(ValueError, match="`no_repeat_adjacent` must be True or False"):
        EditFlowGenerationConfig(no_repeat_adjacent="yes")
