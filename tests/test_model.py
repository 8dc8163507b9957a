"""Issue A: the Edit Flow model, conversion from MLM / headless encoders, standalone Hub loading."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

import editflow_hf
from editflow_hf import EditFlowConfig, EditFlowForEditing
from editflow_hf.conversion import convert, prepare_tokenizer
from editflow_hf.errors import EditFlowError

from builders import build_tiny_mlm
from conftest import REPO_ROOT, run_without_editflow_hf


def _batch(vocab_size, bos_id, rows=3, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab_size, (rows, length), generator=g)
    ids[:, 0] = bos_id
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    return ids, mask


@pytest.mark.parametrize("kind", ["modernbert", "roberta", "bert", "distilbert"])
def test_converted_mlm_starts_as_the_source(kind, tmp_path):
    src = build_tiny_mlm(kind, tmp_path / "src", seed=1)
    out = convert(str(src), tmp_path / "editflow")
    mlm = AutoModelForMaskedLM.from_pretrained(src).eval()
    model = EditFlowForEditing.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ids, mask = _batch(model.config.vocab_size, tok.bos_token_id)
    with torch.no_grad():
        ref_logits = mlm(input_ids=ids, attention_mask=mask).logits
        ref_hidden = mlm.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = model(ids, mask)
    valid = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[valid], ref_hidden[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.sub_logits[valid], ref_logits[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.ins_logits[valid], ref_logits[valid], rtol=1e-5, atol=1e-5)
    # The two heads are independent copies, not one shared module.
    assert model.sub_head.decoder.weight.data_ptr() != model.ins_head.decoder.weight.data_ptr()


def test_headless_minilm_converts_with_heads_from_its_embeddings(minilm_path, minilm_editflow_dir):
    tok = AutoTokenizer.from_pretrained(minilm_editflow_dir)
    assert tok.mask_token == "[MASK]" and tok.bos_token == "[CLS]"
    assert tok.mask_token_id is not None and tok.bos_token_id == tok.cls_token_id
    assert tok.chat_template, "a chat template is added where the tokenizer has none"
    config = json.loads((minilm_editflow_dir / "config.json").read_text())
    assert config["mask_token_id"] == tok.mask_token_id and config["bos_token_id"] == tok.bos_token_id
    assert config["auto_map"]["AutoModel"] == "modeling_editflow.EditFlowForEditing"
    assert config["auto_map"]["AutoConfig"] == "configuration_editflow.EditFlowConfig"

    encoder = AutoModel.from_pretrained(minilm_path).eval()
    model = EditFlowForEditing.from_pretrained(minilm_editflow_dir).eval()
    enc = tok(["to be or not to be", "that is the question"], return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = encoder(**enc).last_hidden_state
        got = model(enc["input_ids"], enc["attention_mask"])
    valid = enc["attention_mask"].bool()
    torch.testing.assert_close(got.last_hidden_state[valid], ref[valid], rtol=1e-5, atol=1e-5)
    assert model.encoder.pooler is None
    # The vocabulary projections start as the input embeddings (as a tied MLM head does), the transform fresh.
    embeddings = encoder.get_input_embeddings().weight
    for head in (model.sub_head, model.ins_head):
        torch.testing.assert_close(head.decoder.weight, embeddings)
        assert not head.decoder.bias.any()
        assert abs(head.dense.weight.std().item() - model.config.initializer_range) < 0.005
    torch.testing.assert_close(model.rate_head.bias.data, torch.full((3,), model.config.rate_head_bias_init))


def test_headless_random_head_init_on_request(minilm_path, tmp_path):
    out = convert(str(minilm_path), tmp_path / "model", headless_head_init="random")
    model = EditFlowForEditing.from_pretrained(out)
    assert abs(model.sub_head.decoder.weight.std().item() - model.config.initializer_range) < 0.005
    with pytest.raises(EditFlowError, match="headless_head_init"):
        convert(str(minilm_path), tmp_path / "other", headless_head_init="zeros")


def test_checkpoint_is_a_complete_hub_repo(tiny_editflow_dir):
    from editflow_hf.checkpoints import required_code_files

    files = {p.name for p in tiny_editflow_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= files
    # the remote code the config's auto_map and pipeline reach (with their imports) is every file of modeling/
    present, missing = required_code_files(tiny_editflow_dir, json.loads((tiny_editflow_dir / "config.json").read_text()))
    remote_code = {path.name for path in (REPO_ROOT / "modeling").glob("*_editflow.py")}
    assert not missing and present == remote_code and remote_code <= files
    assert not any(name.endswith(".bin") for name in files), "weights are safetensors only"
    config = json.loads((tiny_editflow_dir / "config.json").read_text())
    assert config["custom_pipelines"]["editflow-generation"]["impl"] == "pipeline_editflow.EditFlowGenerationPipeline"


@pytest.mark.parametrize("fixture", ["tiny_editflow_dir", "minilm_editflow_dir"])
def test_loads_standalone_with_trust_remote_code(fixture, request):
    path = request.getfixturevalue(fixture)
    proc = run_without_editflow_hf(f"""
        import torch
        from transformers import AutoModel, AutoTokenizer
        try:
            import editflow_hf
            raise SystemExit("editflow_hf must not be importable here")
        except ImportError:
            pass
        model = AutoModel.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained({str(path)!r})
        assert type(model).__name__ == "EditFlowForEditing", type(model)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        ids = torch.tensor([[tok.bos_token_id] + [tok.mask_token_id] * 5])
        out = model(ids, logits_at=torch.ones_like(ids, dtype=torch.bool))
        assert out.sub_rate.shape == (1, 6) and out.ins_logits.shape == (6, model.config.vocab_size)
        print("OK", tok.mask_token_id, tok.bos_token_id)
    """)
    assert "OK" in proc.stdout


def test_logits_at_rows_equal_full_logits(tiny_editflow_dir):
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir).eval()
    ids, mask = _batch(model.config.vocab_size, model.config.bos_token_id, seed=3)
    g = torch.Generator().manual_seed(4)
    at = (torch.rand(ids.shape, generator=g) < 0.4) & mask.bool()
    ins_at = (torch.rand(ids.shape, generator=g) < 0.3) & mask.bool()
    with torch.no_grad():
        full = model(ids, mask)
        rows = model(ids, mask, logits_at=at)
        split = model(ids, mask, logits_at=at, ins_logits_at=ins_at)
    assert rows.sub_logits.shape == (int(at.sum()), model.config.vocab_size)
    torch.testing.assert_close(rows.sub_logits, full.sub_logits[at])
    torch.testing.assert_close(rows.ins_logits, full.ins_logits[at])
    torch.testing.assert_close(split.sub_logits, full.sub_logits[at])
    torch.testing.assert_close(split.ins_logits, full.ins_logits[ins_at])
    torch.testing.assert_close(rows.ins_rate, full.ins_rate)


def test_rates_respect_bos_and_padding(tiny_editflow_dir):
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir).eval()
    ids, mask = _batch(model.config.vocab_size, model.config.bos_token_id, seed=5)
    with torch.no_grad():
        out = model(ids, mask, t=torch.rand(3, 1))
        alone = model(ids[2:, :5], mask[2:, :5])
    for rate in (out.sub_rate, out.del_rate, out.ins_rate):
        assert rate.dtype == torch.float32 and (rate >= 0).all()
        assert (rate[mask == 0] == 0).all()
    assert (out.sub_rate[:, 0] == 0).all() and (out.del_rate[:, 0] == 0).all()
    assert (out.ins_rate[:, 0] > 0).all(), "insertion right after BOS is allowed"
    # Padding does not leak into a row's outputs.
    torch.testing.assert_close(out.ins_rate[2, :5], alone.ins_rate[0], rtol=1e-4, atol=1e-5)


def test_registered_with_auto_classes(tiny_editflow_dir):
    assert isinstance(AutoModel.from_pretrained(tiny_editflow_dir), EditFlowForEditing)
    config = EditFlowConfig.from_pretrained(tiny_editflow_dir)
    assert config.encoder_config.model_type == "modernbert"
    assert editflow_hf.EditFlowForEditing is EditFlowForEditing


def test_bad_time_shape_is_a_clear_error(tiny_editflow_dir):
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir)
    ids = torch.full((2, 4), model.config.mask_token_id)
    with pytest.raises(ValueError, match="`t` must have shape"):
        model(ids, t=torch.rand(3))


def test_tokenizer_without_mask_token_is_refused(minilm_path):
    tok = AutoTokenizer.from_pretrained(minilm_path)
    tok.mask_token = None
    with pytest.raises(EditFlowError, match="no mask token"):
        prepare_tokenizer(tok)


def test_convert_cli(tiny_mlm_dir, tiny_editflow_dir, tmp_path):
    out = tmp_path / "cli-out"
    ok = subprocess.run([sys.executable, "-m", "editflow_hf.apps.convert", "--model_name_or_path", str(tiny_mlm_dir),
                         "--output_dir", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (out / "model.safetensors").exists() and (out / "modeling_editflow.py").exists()

    again = subprocess.run([sys.executable, "-m", "editflow_hf.apps.convert", "--model_name_or_path", str(tiny_editflow_dir),
                            "--output_dir", str(tmp_path / "again")], capture_output=True, text=True)
    assert again.returncode == 2 and "already an Edit Flow checkpoint" in again.stderr
    assert "Traceback" not in again.stderr

    missing = subprocess.run([sys.executable, "-m", "editflow_hf.apps.convert", "--model_name_or_path",
                              str(tmp_path / "nope"), "--output_dir", str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and missing.stderr.count("\n") == 1


def test_save_roundtrip_keeps_outputs(tiny_editflow_dir, tmp_path):
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir).eval()
    with torch.no_grad():
        model.rate_head.bias.add_(0.5)
    model.save_pretrained(tmp_path / "m")
    reloaded = EditFlowForEditing.from_pretrained(tmp_path / "m").eval()
    ids, mask = _batch(model.config.vocab_size, model.config.bos_token_id)
    with torch.no_grad():
        a, b = model(ids, mask), reloaded(ids, mask)
    torch.testing.assert_close(a.sub_rate, b.sub_rate)
    torch.testing.assert_close(a.ins_logits, b.ins_logits)
    assert (tmp_path / "m" / "pipeline_editflow.py").exists()


def test_source_checkout_imports_without_install(tmp_path):
    """`PYTHONPATH=. python training/pt.py` from a checkout that was never pip-installed finds editflow_hf.modeling."""
    import os
    import transformers
    from conftest import REPO_ROOT

    shutil.copytree(REPO_ROOT / "editflow_hf", tmp_path / "editflow_hf")
    site_packages = os.path.dirname(os.path.dirname(transformers.__file__))
    # -S: no site processing, so the editable install's import hook is absent, as on a machine without it.
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import editflow_hf.modeling.modeling_editflow as m; print(m.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{site_packages}"},
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "editflow_hf" / "modeling" / "modeling_editflow.py")
