"""The shifted substitution head (`config.sub_head_shift`, Dream's shift for converted decoders): the substitution
head at position i reads the hidden state of i - 1, in the forward, in the sampler, and as the converter sets it."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from builders import BOS, MASK, PAD, build_tiny_mlm, tiny_editflow_model
from editflow_hf import EditFlowForEditing
from editflow_hf.conversion import convert
from editflow_hf.modeling.guidance_editflow import guided_logits
from editflow_hf.modeling.sampling_editflow import TauLeapSampler
from tiny_decoders import build_tiny_causal_lm


def shifted_model():
    model = tiny_editflow_model(seed=0, hidden_size=16, num_hidden_layers=1)
    model.config.sub_head_shift = True
    return model


def test_forward_reads_the_previous_position_for_substitutions_only():
    model = shifted_model()
    ids = torch.tensor([[BOS, 10, MASK, 11, MASK, MASK], [BOS, MASK, 12, MASK, PAD, PAD]])
    attention = (ids != PAD).long()
    at = ids == MASK
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=attention, logits_at=at)
        full = model(input_ids=ids, attention_mask=attention)
    hidden = out.last_hidden_state
    rows, columns = at.nonzero(as_tuple=True)
    # the plain reference: the head applied to the hidden state one position to the left
    torch.testing.assert_close(out.sub_logits, model.sub_head(hidden[rows, columns - 1]))
    torch.testing.assert_close(full.sub_logits[:, 1:], model.sub_head(hidden[:, :-1]))
    torch.testing.assert_close(out.ins_logits, model.ins_head(hidden[rows, columns]))  # insertions: not shifted
    assert not torch.allclose(out.sub_logits, model.sub_head(hidden[rows, columns]), atol=1e-3)


@pytest.mark.parametrize("guidance_scale", [0.0, 1.5])
def test_sampler_fired_substitutions_use_the_shifted_logits(guidance_scale):
    """One tau step of 1 with fixed_length fills every mask by substitution; the logits the sampler draws them from
    are the sub head's at the hidden state left of each mask, as the forward gives them (with guidance: the
    conditional and the unconditional row, x_t without its prompt, each shifted in its own frame)."""
    model = shifted_model()
    sequences = [[BOS, 10, 11, MASK, MASK, MASK], [BOS, 12, MASK, MASK]]
    protected = [[token != MASK for token in row] for row in sequences]
    sampler = TauLeapSampler(model, tau=1.0, temperature=0.0, fixed_length=True, seed=0, guidance_scale=guidance_scale,
                             suppress_token_ids=[PAD, BOS, MASK], write_order="parallel")  # every mask at once  # fmt: skip
    seen = []
    token_logits = sampler.runner.token_logits

    def spy(head, hidden, t):
        logits = token_logits(head, hidden, t)
        seen.append((head, logits.clone()))  # the draw suppresses ids in place
        return logits

    sampler.runner.token_logits = spy
    sampler.step(sampler.init_state(sequences, protected, [False, False]))
    sub_logits = [logits for head, logits in seen if head is model.sub_head]
    assert len(sub_logits) == 1

    def shifted_reference(rows):
        ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True, padding_value=PAD)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=(ids != PAD).long(), logits_at=ids == MASK)
            rows_at, columns = (ids == MASK).nonzero(as_tuple=True)
            plain = model.sub_head(out.last_hidden_state[rows_at, columns - 1])
        torch.testing.assert_close(out.sub_logits, plain)
        return plain

    reference = shifted_reference(sequences)
    if guidance_scale:
        unconditional = shifted_reference([[BOS] + [t for t in row if t == MASK] for row in sequences])
        reference = guided_logits(reference, unconditional, guidance_scale)
    torch.testing.assert_close(sub_logits[0], reference)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift-llama")
    source = build_tiny_causal_lm("llama", root / "source")
    return source, convert(str(source), root / "editflow")


def test_converted_decoder_substitutes_with_the_lm_head_of_the_previous_position(tiny_llama):
    """At 0 steps, the substitution logits at a mask at i are the source LM head's next-token logits from the
    converted model's hidden state at i - 1 (the LM's prediction of token i), not at i (its prediction of i + 1)."""
    source, folder = tiny_llama
    assert json.loads((folder / "config.json").read_text())["sub_head_shift"] is True
    lm = AutoModelForCausalLM.from_pretrained(source)
    model = EditFlowForEditing.from_pretrained(folder).eval()
    assert model.config.sub_head_shift
    config = model.config
    ids = torch.tensor([[config.bos_token_id, 40, 41, config.mask_token_id, 42, 43]])
    at = ids == config.mask_token_id
    with torch.no_grad():
        out = model(input_ids=ids, logits_at=at)
        vocab = lm.config.vocab_size
        predicted = lm.lm_head(out.last_hidden_state[:, 2])
        torch.testing.assert_close(out.sub_logits[:, :vocab], predicted)
        assert not torch.allclose(out.sub_logits[:, :vocab], lm.lm_head(out.last_hidden_state[:, 3]), atol=1e-3)
        torch.testing.assert_close(out.ins_logits[:, :vocab], lm.lm_head(out.last_hidden_state[:, 3]))


def test_encoder_conversion_keeps_the_substitution_head_unshifted(tmp_path):
    folder = convert(str(build_tiny_mlm("bert", tmp_path / "source")), tmp_path / "editflow")
    assert json.loads((folder / "config.json").read_text())["sub_head_shift"] is False
    assert EditFlowForEditing.from_pretrained(folder).config.sub_head_shift is False
