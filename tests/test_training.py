"""EditFlowTrainer and the training scripts, run as a user would (subprocesses, offline, CPU)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from conftest import REPO_ROOT, run_without_editflow_hf
from editflow_hf import EditFlowForEditing
from editflow_hf.training.args import EditFlowTrainingArguments
from editflow_hf.objective.loss import EditFlowLoss
from editflow_hf.path.collator import EditFlowBatch
from editflow_hf.training.trainer import EditFlowTrainer

COMMON_FLAGS = ["--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no", "--use_cpu", "True"]


def run_script(script: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / script), *map(str, args), *COMMON_FLAGS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def log_history(checkpoint: Path) -> list[dict]:
    return json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]


def assert_loads_standalone(checkpoint: Path, scheduler: str = "linear") -> None:
    """The checkpoint loads with trust_remote_code where editflow_hf cannot be imported, and runs."""
    proc = run_without_editflow_hf(
        f"""
        import torch
        from transformers import AutoModel, AutoTokenizer
        model = AutoModel.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(checkpoint)!r})
        assert type(model).__name__ == "EditFlowForEditing" and "editflow_hf" not in type(model).__module__
        assert model.config.scheduler == {scheduler!r}, model.config.scheduler
        text = tokenizer("To be, or not to be", add_special_tokens=False, return_tensors="pt").input_ids
        ids = torch.cat([torch.tensor([[tokenizer.bos_token_id, tokenizer.mask_token_id]]), text], dim=1)
        out = model(input_ids=ids)
        length, vocab = ids.shape[1], model.config.vocab_size
        assert out.sub_rate.shape == out.del_rate.shape == out.ins_rate.shape == (1, length)
        assert out.sub_logits.shape == out.ins_logits.shape == (1, length, vocab)
        assert out.sub_rate[0, 0] == 0 and bool((out.ins_rate > 0).all())
        print("standalone ok")
        """
    )
    assert "standalone ok" in proc.stdout


def test_trainer_logs_component_means_sets_scheduler_and_saves(tiny_editflow_dir, tmp_path):
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_editflow_dir)
    texts = [f"line {i}: to be or not to be, that is the question" for i in range(16)]
    ids = [[tokenizer.bos_token_id] + tokenizer.encode(t, add_special_tokens=False) for t in texts]
    train = Dataset.from_dict({"input_ids": ids, "prompt_len": [1 + i % 3 for i in range(16)], "note": texts})
    args = EditFlowTrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=4, logging_steps=2, per_device_train_batch_size=2,
        learning_rate=1e-3, report_to="none", disable_tqdm=True, save_strategy="no", use_cpu=True,
        scheduler_cls="cubic", scheduler_kwargs='{"a": 2.0, "b": 0.5}', max_w=7.0,
    )
    loss = EditFlowLoss(scheduler="cubic", scheduler_kwargs={"a": 2.0, "b": 0.5}, max_w=7.0)
    seen = []

    def recording_loss(outputs, batch):
        # the Trainer moved the collator's EditFlowBatch to the device as a Mapping and kept its type
        assert isinstance(batch, EditFlowBatch) and "note" not in batch  # the collator drops text columns
        assert outputs.sub_logits.shape[0] == int(batch.logits_at()[0].sum())  # the trainer asked for the edit rows only
        out = loss(outputs, batch)
        seen.append(float(out.survival))
        return out

    trainer = EditFlowTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer, loss_fn=recording_loss)
    assert args.remove_unused_columns is False
    collator_scheduler = trainer.data_collator.scheduler
    assert (collator_scheduler.name, collator_scheduler.a, collator_scheduler.b) == ("cubic", 2.0, 0.5)
    default_loss = EditFlowTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer).loss_fn
    assert (default_loss.scheduler.name, default_loss.scheduler.a, default_loss.scheduler.b, default_loss.max_w) == ("cubic", 2.0, 0.5, 7.0)
    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and len(seen) == 4
    for entry, window in zip(logs, (seen[:2], seen[2:])):
        assert entry["survival"] == pytest.approx(sum(window) / 2, rel=1e-4)
        assert {"edit_nll", "token_nll", "rate_nll", "n_edits"} <= set(entry)

    saved = tmp_path / "saved"
    trainer.save_model(str(saved))
    config = json.loads((saved / "config.json").read_text())
    assert (config["scheduler"], config["scheduler_kwargs"]) == ("cubic", {"a": 2.0, "b": 0.5})
    for name in ("model.safetensors", "tokenizer.json", "modeling_editflow.py", "pipeline_editflow.py"):
        assert (saved / name).is_file(), name


def test_trainer_default_loss_uses_training_options(tiny_editflow_dir, tmp_path):
    args = EditFlowTrainingArguments(output_dir=str(tmp_path), scheduler_cls="cosine", max_w=5.0, report_to="none", use_cpu=True)
    trainer = EditFlowTrainer(
        model=EditFlowForEditing.from_pretrained(tiny_editflow_dir),
        args=args,
        processing_class=AutoTokenizer.from_pretrained(tiny_editflow_dir),
    )
    assert trainer.loss_fn.scheduler.name == "cosine" and trainer.loss_fn.max_w == 5.0
    assert trainer.model.config.scheduler == "cosine"
    with pytest.raises(ValueError, match="Unknown kappa scheduler"):
        EditFlowTrainingArguments(output_dir=str(tmp_path), scheduler_cls="quadratic")
    with pytest.raises(ValueError, match="JSON object"):
        EditFlowTrainingArguments(output_dir=str(tmp_path), scheduler_kwargs="{a: 2}")


def test_pt_acceptance_loss_falls_and_checkpoint_is_standalone(tiny_editflow_dir, shared_data, tmp_path):
    model_dir = shutil.copytree(tiny_editflow_dir, tmp_path / "model")
    out = tmp_path / "pt"
    proc = run_script(
        "pt.py",
        "--model_name_or_path", model_dir,
        "--dataset_args", shared_data / "tiny-shakespeare.txt",
        "--text_field", "text",
        "--insert_eos", "False",
        "--max_length", 64,
        "--max_steps", 60,
        "--x0_sampler", "masks[length:32]",
        "--learning_rate", 5e-3,
        "--per_device_train_batch_size", 8,
        "--logging_steps", 2,
        "--output_dir", out,
    )
    assert_ok(proc)
    final = out / "checkpoint-final"
    losses = [entry["loss"] for entry in log_history(final) if "loss" in entry]
    assert len(losses) == 30
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, f"loss did not fall by 20%: {first:.3f} -> {last:.3f} ({losses})"
    assert "survival" in log_history(final)[0]
    recorded = json.loads((final / "training_args.json").read_text())
    assert recorded["x0_sampler"] == "masks[length:32]" and recorded["max_length"] == 64
    # "auto" is recorded spelled out, so a later change of the measured defaults leaves its evaluation alone.
    assert json.loads((final / "config.json").read_text())["tie_break"] == {"sft": "right", "pt": "left"}
    generation = json.loads((final / "generation_config.json").read_text())
    assert generation["mask_length"] == 32 and generation["chat_template"] is False  # pretrained: raw text
    assert_loads_standalone(final)


def test_sft_runs_with_eval_and_checkpoint_is_standalone(tiny_editflow_dir, shared_data, tmp_path):
    out = tmp_path / "sft"
    proc = run_script(
        "sft.py",
        "--model_name_or_path", tiny_editflow_dir,
        "--dataset_args", f"{shared_data / 'qa-tiny.jsonl'}[train:48,test:8]",
        "--max_length", 128,
        "--max_steps", 4,
        "--x0_sampler", "masks[length:32]",
        "--scheduler_cls", "cosine",
        "--learning_rate", 1e-3,
        "--per_device_train_batch_size", 4,
        "--per_device_eval_batch_size", 4,
        "--eval_strategy", "steps",
        "--eval_steps", 2,
        "--logging_steps", 2,
        "--output_dir", out,
    )
    assert_ok(proc)
    final = out / "checkpoint-final"
    history = log_history(final)
    assert [e["step"] for e in history if "eval_loss" in e] == [2, 4]
    assert all(torch.isfinite(torch.tensor(e["eval_loss"])) and "eval_survival" in e for e in history if "eval_loss" in e)
    assert "text_field" not in json.loads((final / "training_args.json").read_text())
    generation = json.loads((final / "generation_config.json").read_text())
    assert generation["mask_length"] == 32 and generation["chat_template"] is True  # fine-tuned on chats
    assert_loads_standalone(final, scheduler="cosine")


def test_plain_encoder_is_converted_on_the_fly(tiny_mlm_dir, shared_data, tmp_path):
    out = tmp_path / "from-mlm"
    proc = run_script(
        "pt.py",
        "--model_name_or_path", tiny_mlm_dir,
        "--dataset_args", f"{shared_data / 'tiny-shakespeare.txt'}[train:50]",
        "--max_length", 32, "--max_steps", 1, "--per_device_train_batch_size", 2,
        "--output_dir", out,
    )
    assert_ok(proc)
    assert "is a plain modernbert encoder: converting it to an Edit Flow model" in proc.stderr
    assert json.loads((out / "converted" / "config.json").read_text())["model_type"] == "editflow"
    assert (out / "checkpoint-final" / "model.safetensors").is_file()


def test_missing_text_field_is_one_clear_error(tiny_editflow_dir, shared_data, tmp_path):
    proc = run_script(
        "pt.py",
        "--model_name_or_path", tiny_editflow_dir,
        "--dataset_args", shared_data / "tiny-shakespeare.txt",
        "--text_field", "Text",
        "--max_steps", 1,
        "--output_dir", tmp_path / "bad",
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pt.py: error:")]
    assert len(errors) == 1 and "no column 'Text'; available columns: text" in errors[0] and "--text_field" in errors[0]


def test_push_offline_fails_cleanly_and_keeps_the_model(tiny_editflow_dir, shared_data, tmp_path):
    pytest.importorskip("editflow_hf.apps.push")
    out = tmp_path / "push"
    proc = run_script(
        "pt.py",
        "--model_name_or_path", tiny_editflow_dir,
        "--dataset_args", f"{shared_data / 'tiny-shakespeare.txt'}[train:50]",
        "--max_length", 32, "--max_steps", 1, "--per_device_train_batch_size", 2,
        "--push_to_hub", "--hub_model_id", "someone/tiny-editflow",
        "--output_dir", out,
    )
    final = out / "checkpoint-final"
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pt.py: error:")]
    assert len(errors) == 1 and "push to the Hub failed" in errors[0] and f"saved at {final}" in errors[0]
    assert (final / "model.safetensors").is_file() and (final / "trainer_state.json").is_file()
    assert_loads_standalone(final)


@pytest.mark.parametrize(
    "task, x0_sampler, mask_length",
    [("pt", "masks[length:24]", 24), ("sft", "masks[min:8,max:48]", 48), ("sft", "empty", 0), ("pt", "corrupt[p:0.2]", 0),
     ("pt", "0.5*masks[length:24] + 0.5*corrupt[p:0.2]", 24), ("pt", "0.5*corrupt[p:0.2] + 0.5*corrupt_words[p:0.3]", 0)],
)
def test_generation_config_records_the_x0_length_and_the_chat_flag(tiny_editflow_dir, tmp_path, task, x0_sampler, mask_length):
    """... and a model trained only to revise (corrupt) records the gain rule with the measured margin; one that
    also writes from masks keeps tau-leaping."""
    from editflow_hf.modeling.generation_editflow import EditFlowGenerationConfig
    from editflow_hf.training.cli import REVISER_GAIN_MARGIN, save_generation_config

    start = shutil.copytree(tiny_editflow_dir, tmp_path / "start")
    EditFlowGenerationConfig(tau=0.05, top_p=0.9).save_pretrained(start)  # the starting checkpoint's own settings
    save_generation_config(tmp_path, str(start), task, x0_sampler)
    defaults = EditFlowGenerationConfig.from_pretrained(tmp_path).summary()
    assert defaults["mask_length"] == mask_length and defaults["chat_template"] is (task == "sft")
    assert defaults["tau"] == 0.05 and defaults["top_p"] == 0.9  # carried over
    revises = "corrupt" in x0_sampler and "masks" not in x0_sampler  # every component revises
    saved = EditFlowGenerationConfig.from_pretrained(tmp_path)
    assert saved.edit_rule == ("gain" if revises else "sample")
    assert saved.gain_margin == (REVISER_GAIN_MARGIN if revises else 0.0)
