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


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TORCHRUN_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
needs_torchrun = pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")


def _launch_pt_with_rank_weights(launcher: list[str], model_dir, data_file, folder: Path) -> subprocess.Popen:
    """torchrun (all on 127.0.0.1, gloo on the loopback interface) of pt.py + every rank writing its weights to
    folder/rank<k>.safetensors (tests/pt_with_rank_weights.py); the run's output_dir is folder/out."""
    folder.mkdir(parents=True)
    return subprocess.Popen(
        ["torchrun", *launcher, "--master_addr", "127.0.0.1", str(REPO_ROOT / "tests" / "pt_with_rank_weights.py"),
         *_pt_flags(model_dir, data_file, folder / "out")],
        cwd=REPO_ROOT, env={**TORCHRUN_ENV, "DUMP_DIR": str(folder)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"exit {process.returncode}\n{out[-6000:]}"
    return out


@pytest.fixture(scope="module")
def one_node_two_processes(tiny_editflow_dir, shared_data, tmp_path_factory) -> tuple[Path, str]:
    """A 1-node, 2-process torchrun pt run (3 steps): its folder (rank<k>.safetensors, out/) and its output."""
    folder = tmp_path_factory.mktemp("one-node") / "run"
    launcher = ["--nnodes", "1", "--nproc_per_node", "2", "--master_port", str(_free_loopback_port())]
    process = _launch_pt_with_rank_weights(launcher, tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", folder)
    return folder, _finish(process)


@needs_torchrun
def test_torchrun_two_processes_train_and_save(one_node_two_processes):
    folder, output = one_node_two_processes
    assert "pt.py: rank 0 of world size 2" in output and "pt.py: rank 1 of world size 2" in output
    final = folder / "out" / "checkpoint-final"
    assert (final / "model.safetensors").is_file()
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    # Logged components are averaged over both ranks in one reduction: present and finite at every log.
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(logs) == 3 and all(entry["survival"] >= 0 and entry["n_edits"] > 0 for entry in logs)


@needs_torchrun
def test_two_nodes_end_with_the_weights_of_one_node_two_processes(one_node_two_processes, tiny_editflow_dir, shared_data, tmp_path):
    """A real 2-node job on this machine: two torchrun launchers (`--nnodes 2 --node_rank k`, one process each)
    meeting at 127.0.0.1. Both ranks must end with the weights of the 1-node, 2-process run (same seed and
    data), rank for rank."""
    port = str(_free_loopback_port())
    nodes = [
        _launch_pt_with_rank_weights(["--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank), "--master_port", port],
                                     tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", tmp_path / f"node{rank}")
        for rank in (0, 1)
    ]  # fmt: skip
    for rank, node in enumerate(nodes):
        assert f"pt.py: rank {rank} of world size 2" in _finish(node)

    one_node = one_node_two_processes[0]
    initial = load_file(tiny_editflow_dir / "model.safetensors")
    expected = load_file(one_node / "rank0.safetensors")
    assert load_file(one_node / "rank1.safetensors").keys() == expected.keys()
    assert any(not torch.equal(initial[name], expected[name]) for name in initial)  # it did train
    for rank in (0, 1):
        for run in (tmp_path / f"node{rank}", one_node):
            weights = load_file(run / f"rank{rank}.safetensors")
            assert all(torch.equal(weights[name], tensor) for name, tensor in expected.items()), f"{run.name} rank {rank}"
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


@needs_torchrun
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(tiny_editflow_dir, shared_data, tmp_path):
    """SIGTERM reaching only rank 1: the ranks agree at the step's end (one reduction), save one complete
    checkpoint together and stop; no checkpoint-final."""
    from editflow_hf.checkpoints import checkpoint_problem

    out = tmp_path / "run"
    flags = _pt_flags(tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", out)
    flags[flags.index("--max_steps") + 1] = "30"
    env = {**TORCHRUN_ENV, "PYTHONUNBUFFERED": "1"}
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
