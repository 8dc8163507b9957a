"""Time conditioning (`config.time_conditioning`): the model reads t through a zero-initialised embedding added to
the encoder's last hidden states before the heads (the encoder never reads t); a time-conditioned checkpoint saves,
reloads and needs t."""

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
        _give_time_weights(model)
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


def _give_time_weights(model, std: float = 0.5) -> None:
    with torch.no_grad():
        model.time_embedding.output.weight.normal_(0.0, std, generator=torch.Generator().manual_seed(0))


def _encoder_outputs(model, ids, mask, times):
    """The encoder's last hidden states (caught by a hook) and the rates of one forward pass per t in `times`."""
    seen = []
    hook = model.encoder.register_forward_hook(lambda module, args, out: seen.append(out[0].detach().clone()))
    try:
        with torch.no_grad():
            outs = [model(ids, mask, t=torch.full((len(ids),), t)) for t in times]
    finally:
        hook.remove()
    return seen, outs


def test_the_encoder_does_not_read_t_the_heads_do():
    model = tiny_editflow_model(seed=0)
    model.enable_time_conditioning()
    _give_time_weights(model)
    ids, mask = _ids()
    (early_hidden, late_hidden), (early, late) = _encoder_outputs(model, ids, mask, (0.1, 0.9))
    torch.testing.assert_close(early_hidden, late_hidden, rtol=0, atol=0)  # the pretrained encoder's inputs as ever
    assert not torch.allclose(early.ins_rate, late.ins_rate)
    assert not torch.allclose(early.sub_logits, late.sub_logits)


def test_zero_initialised_time_conditioning_is_exactly_the_unconditioned_model():
    model = tiny_editflow_model(seed=0)
    ids, mask = _ids()
    with torch.no_grad():
        before = model(ids, mask)
        model.enable_time_conditioning()
        after = model(ids, mask, t=torch.tensor([0.3, 0.8]))
    for name in ("sub_rate", "del_rate", "ins_rate", "sub_logits", "ins_logits", "last_hidden_state"):
        torch.testing.assert_close(getattr(after, name), getattr(before, name), rtol=0, atol=0, msg=name)


def _spread(hidden, mask):
    """Standard deviation across the valid positions of each row, averaged over features and rows."""
    return torch.stack([h[m.bool()].std(dim=0).mean() for h, m in zip(hidden, mask)]).mean()


def test_a_large_time_embedding_cannot_drown_the_tokens():
    """The collapse of issue J item 6: a time embedding grown far beyond a token embedding's norm. Added to the input
    embeddings (before the embedding LayerNorm) it shrank the spread of the hidden states across positions to
    nothing; added after the encoder it is the same vector at every position, so the encoder's states and the
    spread of the heads' input across positions (hence the rate head's contrast between positions) are unchanged."""
    model = tiny_editflow_model(seed=0)
    ids, mask = _ids()
    with torch.no_grad():
        plain = model(ids, mask)
    model.enable_time_conditioning()
    token_norm = model.get_input_embeddings().weight.norm(dim=-1).mean()
    _give_time_weights(model, std=1.0)
    with torch.no_grad():
        scale = 50 * token_norm / model.time_embedding(torch.tensor([0.5])).norm()
        model.time_embedding.output.weight.mul_(scale)
    (encoded,), (out,) = _encoder_outputs(model, ids, mask, (0.5,))
    torch.testing.assert_close(encoded, plain.last_hidden_state, rtol=0, atol=0)
    assert out.last_hidden_state.sub(plain.last_hidden_state).norm(dim=-1).min() > 10 * token_norm  # really large
    torch.testing.assert_close(_spread(out.last_hidden_state, mask), _spread(plain.last_hidden_state, mask), rtol=1e-4, atol=0)
    contrast = (out.ins_rate[:, 1:] > out.ins_rate[:, :-1]) == (plain.ins_rate[:, 1:] > plain.ins_rate[:, :-1])
    assert contrast[mask[:, 1:].bool()].all()  # the rate head ranks the positions as before


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
