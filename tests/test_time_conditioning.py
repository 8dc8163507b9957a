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


def test_recipe_training_gives_a_standalone_time_conditioned_checkpoint(tiny_editflow_dir, shared_data, tmp_path):
    """pt.py with the paper's options (time conditioning, localized path, prefix conditioning, t^3 scheduler):
    the checkpoint records them, and loads and samples (guided, with a temperature schedule) where editflow_hf
    cannot be imported."""
    import json
    import shutil

    from conftest import run_without_editflow_hf
    from test_training import assert_ok, run_script

    model_dir = shutil.copytree(tiny_editflow_dir, tmp_path / "model")
    out = tmp_path / "pt"
    proc = run_script(
        "pt.py", "--model_name_or_path", model_dir, "--dataset_args", shared_data / "tiny-shakespeare.txt",
        "--text_field", "text", "--insert_eos", "False", "--max_length", 48, "--max_steps", 6,
        "--x0_sampler", "masks[length:16]", "--per_device_train_batch_size", 4, "--output_dir", out,
        "--scheduler_cls", "power", "--time_conditioning", "True", "--path", "localized", "--lambda_prop", 2.0,
        "--prefix_conditioning", "True", "--prefix_drop_prob", 0.2,
    )  # fmt: skip
    assert_ok(proc)
    final = out / "checkpoint-final"
    config = json.loads((final / "config.json").read_text())
    assert config["time_conditioning"] is True and config["scheduler"] == "power"
    assert config["path"] == "localized" and config["lambda_prop"] == 2.0
    assert config["prefix_conditioning"] == {"drop_prob": 0.2}
    proc = run_without_editflow_hf(f"""
        import torch
        from transformers import AutoModel, pipeline
        model = AutoModel.from_pretrained({str(final)!r}, trust_remote_code=True).eval()
        assert "editflow_hf" not in type(model).__module__ and model.time_embedding is not None
        assert torch.count_nonzero(model.time_embedding.output.weight) > 0  # trained, saved, reloaded
        generate = pipeline("editflow-generation", model={str(final)!r}, trust_remote_code=True)
        for kwargs in ({{}}, {{"guidance_scale": 0.5, "temperature_schedule": "0.8*t + 1.0*(1-t)"}}):
            out = generate("To be, or not", tau=0.1, mask_length=8, seed=0, max_new_tokens=12, **kwargs)
            assert isinstance(out[0]["generated_text"], str)
        print("standalone recipe ok")
    """)
    assert "standalone recipe ok" in proc.stdout
