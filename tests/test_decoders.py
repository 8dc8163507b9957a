"""Decoder LMs (Llama, Qwen2, Qwen3) as Edit Flow backbones: conversion to bidirectional attention, added special
tokens, token heads cloned from the LM head, loading without editflow_hf, training, sampling and the push check."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from conftest import REPO_ROOT, run_without_editflow_hf
from editflow_hf import EditFlowForEditing
from editflow_hf.conversion import ADDED_BOS_TOKEN, ADDED_MASK_TOKEN, ADDED_PAD_TOKEN, convert, prepare_tokenizer
from editflow_hf.hub.upload import push_checkpoint
from editflow_hf.errors import EditFlowError
from editflow_hf.modeling.sampling_editflow import TauLeapSampler
from tiny_decoders import bpe_tokenizer, build_tiny_causal_lm, corpus


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def converted(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(kind, source causal LM folder, converted Edit Flow folder)."""
    root = tmp_path_factory.mktemp(f"tiny-{request.param}")
    source = build_tiny_causal_lm(request.param, root / "source")
    return request.param, source, convert(str(source), root / "editflow")


def test_config_records_bidirectional_added_tokens_and_linear_heads(converted):
    kind, source, folder = converted
    config = json.loads((folder / "config.json").read_text())
    assert config["bidirectional"] is True and config["head_type"] == "linear"
    expected = {"mask_token": ADDED_MASK_TOKEN, "pad_token": ADDED_PAD_TOKEN}
    if kind == "qwen3":
        expected["bos_token"] = ADDED_BOS_TOKEN
    assert config["added_special_tokens"] == expected
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.mask_token == ADDED_MASK_TOKEN and tokenizer.pad_token == ADDED_PAD_TOKEN != tokenizer.eos_token
    assert config["mask_token_id"] == tokenizer.mask_token_id and config["bos_token_id"] == tokenizer.bos_token_id
    assert config["encoder_config"]["vocab_size"] == len(tokenizer) == len(AutoTokenizer.from_pretrained(source)) + len(expected)
    if kind == "llama":
        assert tokenizer.bos_token == "<s>"  # an existing BOS is kept


def test_token_heads_are_the_lm_head_and_the_backbone_is_copied(converted):
    _, source, folder = converted
    lm = AutoModelForCausalLM.from_pretrained(source)
    model = EditFlowForEditing.from_pretrained(folder)
    vocab = lm.config.vocab_size
    lm_head = lm.get_output_embeddings().weight
    for head in (model.sub_head, model.ins_head):
        assert not hasattr(head, "dense") and head.decoder.bias is None  # a plain Linear, as the LM head
        torch.testing.assert_close(head.decoder.weight[:vocab], lm_head)
        # Added tokens start at the mean of the existing rows (mean resizing), not at random.
        torch.testing.assert_close(head.decoder.weight[vocab:], lm_head.mean(0, keepdim=True).expand(model.config.vocab_size - vocab, -1))
    torch.testing.assert_close(model.get_input_embeddings().weight[:vocab], lm.get_input_embeddings().weight)
    source_state = lm.base_model.state_dict()
    for name, tensor in model.encoder.state_dict().items():
        if "embed_tokens" not in name:
            torch.testing.assert_close(tensor, source_state[name])


def test_convert_records_a_valid_scheduler_name(tmp_path):
    source = build_tiny_causal_lm("qwen2", tmp_path / "source")
    folder = convert(str(source), tmp_path / "editflow", scheduler="cubickappascheduler")
    assert json.loads((folder / "config.json").read_text())["scheduler"] == "CubicKappaScheduler"
    with pytest.raises(ValueError, match="Unknown kappa scheduler"):
        convert(str(source), tmp_path / "other", scheduler="quadratic")


def test_tied_embeddings_start_the_heads_too(tmp_path):
    source = build_tiny_causal_lm("qwen2", tmp_path / "source", tie_word_embeddings=True)
    model = EditFlowForEditing.from_pretrained(convert(str(source), tmp_path / "editflow"))
    embeddings = AutoModelForCausalLM.from_pretrained(source).get_input_embeddings().weight
    vocab = embeddings.shape[0]
    torch.testing.assert_close(model.sub_head.decoder.weight[:vocab], embeddings)
    assert model.sub_head.decoder.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()


def test_loads_without_editflow_hf_and_attends_bidirectionally(converted):
    """In a process that cannot import editflow_hf: changing token j > i changes position i's rates and logits, for
    eager and sdpa attention; padding does not change the valid positions."""
    _, _, folder = converted
    proc = run_without_editflow_hf(
        f"""
        import torch
        from transformers import AutoModel
        for attn in ("eager", "sdpa"):
            model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True, attn_implementation=attn).eval()
            assert "editflow_hf" not in type(model).__module__
            assert model.encoder.config._attn_implementation == attn
            vocab = model.config.vocab_size
            ids = torch.tensor([[model.config.bos_token_id, 5, 17, 42, 9, 31, 12, 8]])
            changed = ids.clone()
            changed[0, 6] = 77
            with torch.no_grad():
                a, b = model(ids), model(changed)
                for i in range(1, 6):
                    assert (a.ins_rate[0, i] - b.ins_rate[0, i]).abs() > 1e-6, (attn, i)
                    assert (a.sub_logits[0, i] - b.sub_logits[0, i]).abs().max() > 1e-6, (attn, i)
                padded = torch.cat([ids, torch.full((1, 3), model.config.pad_token_id)], dim=1)
                mask = torch.cat([torch.ones(1, 8, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)], dim=1)
                c = model(padded, attention_mask=mask)
                torch.testing.assert_close(c.ins_rate[:, :8], a.ins_rate, rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(c.sub_logits[:, :8], a.sub_logits, rtol=1e-4, atol=1e-4)
        print("bidirectional ok")
        """
    )
    assert "bidirectional ok" in proc.stdout


def test_trains_with_pt_samples_and_passes_the_push_check(converted, tmp_path):
    kind, _, folder = converted
    data = tmp_path / "text.txt"
    data.write_text(corpus(3000, seed=1))
    out = tmp_path / "run"
    command = [
        sys.executable, str(REPO_ROOT / "training" / "pt.py"), "--model_name_or_path", str(folder),
        "--dataset_args", str(data), "--max_length", "32", "--max_steps", "30", "--logging_steps", "5",
        "--learning_rate", "3e-3", "--per_device_train_batch_size", "8", "--x0_sampler", "masks[length:16]",
        "--eval_split_size", "0", "--scheduler_cls", "CubicKappaScheduler", "--scheduler_kwargs", '{"a": 1, "b": 1}',
        "--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no", "--use_cpu", "True",
        "--output_dir", str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    final = out / "checkpoint-final"
    losses = [e["loss"] for e in json.loads((final / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 6 and sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
    config = json.loads((final / "config.json").read_text())
    assert config["bidirectional"] is True and config["scheduler"] == "CubicKappaScheduler"
    assert config["scheduler_kwargs"] == {"a": 1, "b": 1}

    proc = run_without_editflow_hf(
        f"""
        from transformers import AutoModel, pipeline
        model = AutoModel.from_pretrained({str(final)!r}, trust_remote_code=True)
        assert model.config.bidirectional and not model.encoder.config.is_causal
        generate = pipeline("editflow-generation", model={str(final)!r}, trust_remote_code=True)
        [out] = generate("to be or", tau=0.05, mask_length=8, seed=0)
        assert isinstance(out["generated_text"], str)
        print("sampled:", repr(out["generated_text"]))
        """
    )
    assert "sampled:" in proc.stdout
    # The sampler rebuilds the schedule the model was trained with: dLLM's cubic, not this project's `cubic`.
    t = torch.linspace(0, 1, 11)
    sampler = TauLeapSampler(EditFlowForEditing.from_pretrained(final))
    torch.testing.assert_close(sampler.firing.scheduler.kappa(t), 2 * t**3 - 3 * t**2 + 2 * t)
    listed = push_checkpoint(final, f"someone/tiny-{kind}-editflow", dry_run=True)
    assert "model.safetensors" in listed and "modeling_editflow.py" in listed


def test_tokenizer_without_any_special_token_gets_mask_bos_and_pad():
    tokenizer = bpe_tokenizer({})
    vocab = len(tokenizer)
    added = prepare_tokenizer(tokenizer, add_missing=True)
    assert added == {"mask_token": ADDED_MASK_TOKEN, "bos_token": ADDED_BOS_TOKEN, "pad_token": ADDED_PAD_TOKEN}
    assert len(tokenizer) == vocab + 3 and tokenizer.pad_token_id == vocab + 2
    with pytest.raises(EditFlowError, match="no mask token"):
        prepare_tokenizer(bpe_tokenizer({"eos_token": "</s>"}))  # an encoder's tokenizer is never given a mask


class TinyRNNConfig(PretrainedConfig):
    model_type = "tiny-rnn-lm"

    def __init__(self, vocab_size=300, hidden_size=16, **kwargs):
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        super().__init__(**kwargs)


class TinyRNNModel(PreTrainedModel):
    """A recurrent LM: causal by construction, which no attention flag can change."""

    config_class = TinyRNNConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rnn = nn.GRU(config.hidden_size, config.hidden_size, batch_first=True)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return BaseModelOutput(last_hidden_state=self.rnn(self.embed_tokens(input_ids))[0])


class TinyRNNForCausalLM(PreTrainedModel):
    config_class = TinyRNNConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = TinyRNNModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return CausalLMOutput(logits=self.lm_head(self.model(input_ids)[0]))


def test_a_backbone_that_stays_causal_is_refused(tmp_path):
    AutoConfig.register(TinyRNNConfig.model_type, TinyRNNConfig, exist_ok=True)
    AutoModel.register(TinyRNNConfig, TinyRNNModel, exist_ok=True)
    AutoModelForCausalLM.register(TinyRNNConfig, TinyRNNForCausalLM, exist_ok=True)
    tokenizer = bpe_tokenizer({"eos_token": "</s>"})
    source = tmp_path / "rnn"
    TinyRNNForCausalLM(TinyRNNConfig(vocab_size=len(tokenizer), architectures=["TinyRNNForCausalLM"])).save_pretrained(source)
    tokenizer.save_pretrained(source)
    with pytest.raises(EditFlowError, match="still attends causally") as err:
        convert(str(source), tmp_path / "editflow")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "editflow").exists()


def test_the_space_serves_a_converted_decoder(converted):
    import importlib.util

    _, _, folder = converted
    spec = importlib.util.spec_from_file_location("editflow_space_app_decoder", REPO_ROOT / "space" / "app.py")
    space_app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(space_app)
    space = space_app.EditFlowSpace(space_app.load_generator(str(folder)), str(folder))
    text, trace = space.generate("to be or", 0.1, 8, 1.0, 0)
    assert isinstance(text, str) and len(trace["initial"]) == 1 + len(space.tokenizer("to be or", add_special_tokens=False)["input_ids"]) + 8


def test_conversion_is_the_same_on_every_run_whatever_the_global_seed(tmp_path):
    """The added tokens' embeddings start at the exact mean of the old rows: two conversions of one source, with the
    global generator in different states, write the same weights (transformers' mean_resizing draws them around the
    mean, so the same command gave a different model on another machine)."""
    from safetensors.torch import load_file

    source = build_tiny_causal_lm("qwen3", tmp_path / "source")
    weights = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        folder = convert(str(source), tmp_path / f"editflow-{seed}")
        weights.append(load_file(folder / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    lm = AutoModelForCausalLM.from_pretrained(source)
    vocab = lm.config.vocab_size
    model = EditFlowForEditing.from_pretrained(tmp_path / "editflow-1")
    assert torch.equal(model.get_input_embeddings().weight[vocab:][0], lm.get_input_embeddings().weight.mean(0))
