"""Launchers: torchrun with two CPU processes (gloo), accelerate launch with the shipped configs."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "training" / "accelerate_configs"


def _pt_flags(model_dir, data_file, out) -> list[str]:
    return [
        "--model_name_or_path", str(model_dir),
        "--dataset_args", f"{data_file}[train:200]",
        "--max_length", "32", "--max_steps", "3", "--per_device_train_batch_size", "2", "--logging_steps", "1",
        "--x0_sampler", "masks[length:16]", "--use_cpu", "True",
        "--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no", "--output_dir", str(out),
    ]


def _run(cmd, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_torchrun_two_processes_train_and_save(tiny_editflow_dir, shared_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(REPO_ROOT / "training" / "pt.py")]
    proc = _run(cmd + _pt_flags(tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", out))
    assert "pt.py: rank 0 of world size 2" in proc.stdout and "pt.py: rank 1 of world size 2" in proc.stdout
    final = out / "checkpoint-final"
    assert (final / "model.safetensors").is_file()
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    # Logged components are averaged over both ranks in one reduction: present and finite at every log.
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(logs) == 3 and all(entry["survival"] >= 0 and entry["n_edits"] > 0 for entry in logs)


def test_accelerate_launch_ddp_config_one_process(tiny_editflow_dir, shared_data, tmp_path):
    out = tmp_path / "accelerate"
    env = {**os.environ, "PYTHONPATH": "."}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "ddp.yaml"),
        "--num_processes", "1", "training/pt.py",
    ]
    proc = _run(cmd + _pt_flags(tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", out), env=env)
    assert "pt.py: rank 0 of world size 1" in proc.stdout
    assert (out / "checkpoint-final" / "model.safetensors").is_file()


@pytest.mark.parametrize(("name", "distributed_type"), [("ddp", "MULTI_GPU"), ("zero2", "DEEPSPEED"), ("fsdp2", "FSDP")])
def test_accelerate_configs_are_valid(name, distributed_type):
    from accelerate.commands.config.config_args import ClusterConfig

    path = CONFIGS / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["distributed_type"] == distributed_type and raw["num_machines"] == 1
    config = ClusterConfig.from_yaml_file(str(path))
    assert config.distributed_type.value == distributed_type
    if name == "zero2":
        assert config.deepspeed_config["zero_stage"] == 2
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2
