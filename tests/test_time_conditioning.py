"""Time conditioning (`config.time_conditioning`): the model reads t through a zero-initialised embedding added to
its input embeddings; a time-conditioned checkpoint saves, reloads and needs t."""

import pytest
import torch

from builders import BOS, MASK, tiny_editflow_config, tiny_editflow_model
from editflow_hf.modeling.modeling_editflow import EditFlowForEditing


def _ids():
    ids = torch.tensor([[BOS, MASK, 7, 9, MASK, 11], [BOS, 12, MASK, 5, 0, 0]])
    return ids, (ids != 0).long().index_fill_(1, torch.tensor([0]), 1)


def test_enabling_starts_from_the_same_outputs_then_reads_t(tmp_path):
    model = tiny_editflow_model(seed=0)
    ids, mask = _ids()
    with torch.no_grad():
        before = model(ids, mask).sub_rate
        model.enable_time_conditioning()
        assert model.config.time_conditioning and model.time_embedding is not None
        torch.testing.assert_close(model(ids, mask, t=torch.tensor([0.1, 0.9])).sub_rate, before)  # zero init
        model.time_embedding.output.weight.normal_(0.0, 0.5)
        early = model(ids, mask, t=torch.tensor([0.1, 0.1]))
        late = model(ids, mask, t=torch.tensor([0.9, 0.9]))
        mixed = model(ids, mask, t=torch.tensor([0.1, 0.9]))
    assert not torch.allclose(early.ins_rate, late.ins_rate)
    torch.testing.assert_close(mixed.ins_rate[0], early.ins_rate[0])  # each row reads its own t
    torch.testing.assert_close(mixed.ins_rate[1], late.ins_rate[1])
    with pytest.raises(ValueError, match="time-conditioned"):
        model(ids, mask)

    model.save_pretrained(tmp_path)
    reloaded = EditFlowForEditing.from_pretrained(tmp_path).eval()
    assert reloaded.config.time_conditioning
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids, mask, t=torch.tensor([0.1, 0.9])).ins_rate, mixed.ins_rate)


def test_fresh_time_conditioned_model_has_zero_time_output():
    config = tiny_editflow_config()
    config.time_conditioning = True
    torch.manual_seed(1)
    model = EditFlowForEditing(config)
    assert torch.count_nonzero(model.time_embedding.output.weight) == 0
    assert torch.count_nonzero(model.time_embedding.hidden.weight) > 0
