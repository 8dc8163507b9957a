"""The frontier write order (`write_order="frontier"`): a write whose token head would read a mask's hidden state
waits for that mask to be written. A converted decoder's shifted substitution head (j reads j - 1) wrote the word of
j - 1 at j while j - 1 was still a mask ("The capital capital of Germany Germany")."""

import pytest
import torch

from builders import BOS, MASK, PAD, tiny_editflow_model
from editflow_hf.modeling.generation_editflow import EditFlowGenerationConfig
from editflow_hf.modeling.sampling_editflow import TauLeapSampler, default_write_order, frontier_edits


def reference_frontier(tokens, sub_fire, ins_fire, shifted, del_fire=None):
    """Plain loops: a substitution at j waits while j - 1 is a mask (shifted head only; BOS reads itself); an
    insertion after j waits while j is a mask, and (shifted head) while j + 1 is a mask, whose substitution reads
    j's state too. A mask's deletion that would wait as its substitution does fires only when it is the first
    drawn mask deletion of its run of masks (one per run and step)."""
    sub_out, ins_out = [row[:] for row in sub_fire], [row[:] for row in ins_fire]
    del_out = [row[:] for row in del_fire] if del_fire is not None else None
    for b, row in enumerate(tokens):
        run_has_a_deletion = False
        for j in range(len(row)):
            if row[j] != MASK:
                run_has_a_deletion = False  # a real token ends the run of masks before it
            waits = shifted and j > 0 and row[j - 1] == MASK
            if waits:
                sub_out[b][j] = False
            if del_out is not None and row[j] == MASK and del_fire[b][j]:
                if waits and run_has_a_deletion:
                    del_out[b][j] = False
                run_has_a_deletion = True
            if row[j] == MASK or (shifted and j + 1 < len(row) and row[j + 1] == MASK):
                ins_out[b][j] = False
    return (sub_out, ins_out) if del_out is None else (del_out, sub_out, ins_out)


@pytest.mark.parametrize("shifted", [True, False])
def test_frontier_edits_equal_the_plain_reference(shifted):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.tensor([[BOS, MASK, MASK, 7, MASK, 9, MASK], [BOS, 5, MASK, MASK, MASK, 8, PAD], [MASK, MASK, 4, 5, 6, MASK, MASK]])
    for _ in range(20):
        sub_fire = torch.rand(tokens.shape, generator=generator) < 0.6
        ins_fire = torch.rand(tokens.shape, generator=generator) < 0.6
        columns = torch.arange(tokens.shape[1])
        sub_columns = (columns - 1).clamp_min(0) if shifted else columns
        sub, ins = frontier_edits(tokens, sub_fire, ins_fire, sub_columns, columns, MASK)
        expected_sub, expected_ins = reference_frontier(tokens.tolist(), sub_fire.tolist(), ins_fire.tolist(), shifted)
        assert sub.tolist() == expected_sub and ins.tolist() == expected_ins
        del_fire = torch.rand(tokens.shape, generator=generator) < 0.6
        got = frontier_edits(tokens, sub_fire, ins_fire, sub_columns, columns, MASK, del_fire)
        expected = reference_frontier(tokens.tolist(), sub_fire.tolist(), ins_fire.tolist(), shifted, del_fire.tolist())
        assert [part.tolist() for part in got] == list(expected)


def masks_only_rates(model):
    """`model.edit_rates` with hand-made rates: a substitution rate of 30 per unit w at every mask, nothing
    elsewhere (every mask fires in the first step under the parallel order)."""
    edit_rates = model.edit_rates

    def rates_at_masks(input_ids, attention_mask, t=None, **kwargs):
        rates, hidden = edit_rates(input_ids, attention_mask, t, **kwargs)
        rates = torch.zeros_like(rates)
        rates[..., 0] = 30.0 * (input_ids == MASK)
        return rates, hidden

    return rates_at_masks


def certain_model(shifted: bool):
    """A tiny model whose rates are [`masks_only_rates`]: what a run writes is decided by the write order alone."""
    model = tiny_editflow_model(seed=0, vocab_size=48, hidden_size=16, num_hidden_layers=1).eval()
    model.config.sub_head_shift = shifted
    model.edit_rates = masks_only_rates(model)
    return model


def run(model, write_order, masks=6, tau=0.25):
    sampler = TauLeapSampler(model, tau=tau, seed=0, suppress_token_ids=[PAD, BOS, MASK], write_order=write_order)
    start = [BOS, 11] + [MASK] * masks
    return sampler, sampler.sample([start], [[True, True] + [False] * masks], [True], return_trace=True)


def test_frontier_writes_each_run_of_masks_from_its_left_end_and_settles_after_t_1():
    """Four tau steps, six masks: the parallel order writes all six in the first step, each (shifted head) from a
    mask's state; the frontier order writes one per step, always right of a real token, and finishes the two left
    at t = 1 in settle steps."""
    model = certain_model(shifted=True)
    _, parallel = run(model, "parallel")
    assert len(parallel.traces[0].steps) == 1 and MASK not in parallel.sequences[0]
    sampler, frontier = run(model, "frontier")
    assert sampler.firing.write_order == "frontier" and sampler.num_steps == 4
    steps = frontier.traces[0].steps
    assert len(steps) == 6 and MASK not in frontier.sequences[0]
    before = [BOS, 11] + [MASK] * 6
    for step in steps:
        assert len(step.substituted) == 1
        (j,) = step.substituted
        assert before[j - 1] != MASK and before[j] == MASK  # written right of a real token
        before = step.tokens


def test_frontier_is_the_default_for_a_shifted_head_only():
    assert default_write_order(certain_model(shifted=True).config) == "frontier"
    assert default_write_order(certain_model(shifted=False).config) == "parallel"
    assert TauLeapSampler(certain_model(shifted=True)).firing.write_order == "frontier"
    assert TauLeapSampler(certain_model(shifted=False)).firing.write_order == "parallel"
    # without a shift the substitution head reads the mask itself: nothing waits, the run is the parallel one
    model = certain_model(shifted=False)
    assert run(model, "frontier")[1].sequences == run(model, "parallel")[1].sequences


def test_write_order_reaches_the_sampler_from_generate_and_bad_values_are_refused():
    model = certain_model(shifted=True)
    seen = []
    original = TauLeapSampler.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.firing.write_order)

    TauLeapSampler.__init__ = spy
    try:
        out = model.generate(torch.tensor([[BOS, 11]]), mask_length=6, tau=0.25, seed=0, write_order="parallel")
        model.generate(torch.tensor([[BOS, 11]]), mask_length=6, tau=0.25, seed=0)
    finally:
        TauLeapSampler.__init__ = original
    assert seen == ["parallel", "frontier"] and MASK not in out[0].tolist()
    with pytest.raises(ValueError, match="`write_order` must be one of 'parallel', 'frontier'"):
        EditFlowGenerationConfig(write_order="left_to_right")
    with pytest.raises(ValueError, match="`write_order` must be one of"):
        TauLeapSampler(model, write_order="banana")


def test_pipeline_steps_end_with_the_settle_steps_and_carry_the_outputs_on_the_last(tiny_editflow_dir):
    from builders import make_pipe

    pipe = make_pipe(tiny_editflow_dir)
    pipe.model.config.sub_head_shift = True
    pipe.model.edit_rates = masks_only_rates(pipe.model)
    steps = list(pipe.iter_steps("", mask_length=6, tau=0.25, seed=0, progress_bar=False))
    assert [s.outputs is not None for s in steps] == [False] * (len(steps) - 1) + [True]
    assert len(steps) > steps[-1].num_steps  # settle steps after t = 1
    called = pipe("", mask_length=6, tau=0.25, seed=0, progress_bar=False)
    assert steps[-1].outputs[0][0]["generated_text"] == called[0]["generated_text"]
