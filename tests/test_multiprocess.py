"""Launchers: torchrun with two CPU processes (gloo), two nodes on loopback, accelerate launch with the shipped configs."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

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


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_nodes_end_with_the_weights_of_one_node_two_processes(tiny_editflow_dir, shared_data, tmp_path):
    """A real 2-node job on this machine: two torchrun launchers (`--nnodes 2 --node_rank k`, one process each)
    meeting at 127.0.0.1, gloo on the loopback interface. Every rank writes its weights after training
    (tests/pt_with_rank_weights.py = pt.py + that); both must equal those of a 1-node, 2-process run with the
    same seed and data, rank for rank."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    script = str(REPO_ROOT / "tests" / "pt_with_rank_weights.py")

    def launch(launcher: list[str], name: str) -> subprocess.Popen:
        (tmp_path / name).mkdir()
        flags = _pt_flags(tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", tmp_path / name / "out")
        return subprocess.Popen(
            ["torchrun", *launcher, "--master_addr", "127.0.0.1", script, *flags], cwd=REPO_ROOT,
            env={**env, "DUMP_DIR": str(tmp_path / name)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def finish(process: subprocess.Popen) -> str:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"exit {process.returncode}\n{out[-6000:]}"
        return out

    port = _free_loopback_port()
    nodes = [launch(["--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank), "--master_port", str(port)],
                    f"node{rank}") for rank in (0, 1)]  # fmt: skip
    for rank, node in enumerate(nodes):
        assert f"pt.py: rank {rank} of world size 2" in finish(node)
    finish(launch(["--nnodes", "1", "--nproc_per_node", "2", "--master_port", str(_free_loopback_port())], "one-node"))

    initial = load_file(tiny_editflow_dir / "model.safetensors")
    expected = load_file(tmp_path / "one-node" / "rank0.safetensors")
    assert load_file(tmp_path / "one-node" / "rank1.safetensors").keys() == expected.keys()
    assert any(not torch.equal(initial[name], expected[name]) for name in initial)  # it did train
    for rank in (0, 1):
        for run in (f"node{rank}", "one-node"):
            weights = load_file(tmp_path / run / f"rank{rank}.safetensors")
            assert all(torch.equal(weights[name], tensor) for name, tensor in expected.items()), f"{run} rank {rank}"
    assert (tmp_path / "node0" / "out" / "checkpoint-final" / "model.safetensors").is_file()


def _worker_pids(launcher_pid: int) -> dict[int, int]:
    """{rank: pid} of the worker processes torchrun started (their RANK environment variable)."""
    workers = {}
    for child in Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        rank = next((int(entry[5:]) for entry in environ if entry.startswith(b"RANK=")), None)
        if rank is not None:
            workers[rank] = int(child)
    return workers


@pytest.mark.skipif(shutil.which("torchrun") is None or not Path("/proc").is_dir(), reason="torchrun and /proc needed")
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(tiny_editflow_dir, shared_data, tmp_path):
    """SIGTERM reaching only rank 1: the ranks agree at the step's end (one reduction), save one complete
    checkpoint together and stop; no checkpoint-final."""
    from editflow_hf.checkpoints import checkpoint_problem

    out = tmp_path / "run"
    flags = _pt_flags(tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", out)
    flags[flags.index("--max_steps") + 1] = "30"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONUNBUFFERED": "1"}
    launcher = subprocess.Popen(
        ["torchrun", "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_loopback_port()), str(REPO_ROOT / "training" / "pt.py"), *flags],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    for line in launcher.stdout:
        lines.append(line)
        if "'loss'" in line:
            os.kill(_worker_pids(launcher.pid)[1], signal.SIGTERM)
            break
    output = "".join(lines) + launcher.communicate(timeout=300)[0]
    stopped = re.search(r"stopped by SIGTERM at step (\d+)", output)
    assert stopped and int(stopped[1]) < 30, output[-4000:]
    checkpoints = sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint"))
    assert checkpoints == [f"checkpoint-{stopped[1]}"] and checkpoint_problem(out / checkpoints[0]) is None
    state = json.loads((out / checkpoints[0] / "trainer_state.json").read_text())
    assert state["global_step"] == int(stopped[1])


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
