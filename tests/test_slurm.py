"""training/train.slurm.sh under a fake 2-node SLURM allocation: fake `scontrol`, `srun` (one task per node, with
its SLURM_NODEID) and `accelerate` (records its arguments) on PATH. The printed command is parsed by accelerate's
own launch parser into the 2-node launch it makes."""

import os
import shlex
import signal
import stat
import subprocess
import time

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils.launch import prepare_multi_gpu_env

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "training" / "train.slurm.sh"

FAKES = {
    "scontrol": """#!/usr/bin/env bash
if [[ "$1 $2" == "show hostnames" ]]; then
  [[ "$3" == "gpu-node-[07-08]" ]] && printf 'gpu-node-07\\ngpu-node-08\\n'
else
  echo "$*" >> "$FAKE_DIR/scontrol.log"
fi
""",
    # Like srun: runs the command once per node (SLURM_NODEID, SLURM_PROCID) and forwards SIGTERM to the tasks.
    "srun": """#!/usr/bin/env bash
echo "$@" > "$FAKE_DIR/srun.args"
while [[ "$1" == --* ]]; do shift; done
pids=()
trap 'echo TERM >> "$FAKE_DIR/srun.signals"; kill -TERM "${pids[@]}"' TERM
for ((k = 0; k < SLURM_NNODES; k++)); do SLURM_NODEID=$k SLURM_PROCID=$k "$@" & pids+=($!); done
status=0
for pid in "${pids[@]}"; do
  while true; do wait "$pid"; s=$?; kill -0 "$pid" 2>/dev/null || break; done
  [[ $s -ne 0 ]] && status=$s
done
exit $status
""",
    # Records its arguments per node; with FAKE_SLEEP it trains until SIGTERM (then "saves" and exits 143).
    "accelerate": """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_DIR/node$SLURM_NODEID.args"
if [[ -n "${FAKE_SLEEP:-}" ]]; then
  trap 'echo checkpointed > "$FAKE_DIR/node$SLURM_NODEID.stopped"; exit 143' TERM
  for _ in $(seq 600); do sleep 0.1; done
fi
""",
}


@pytest.fixture
def slurm_env(tmp_path):
    """A fake 2-node allocation (gpu-node-07, gpu-node-08; 8 GPUs each; job 123456) and its fake commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in FAKES.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "CUDA_VISIBLE"))}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}", FAKE_DIR=str(tmp_path), SLURM_JOB_ID="123456", SLURM_NNODES="2",
        SLURM_JOB_NODELIST="gpu-node-[07-08]", SLURM_GPUS_ON_NODE="8", SLURM_JOB_NAME="editflow",
    )  # fmt: skip
    return env


TRAIN_ARGS = ["--model_name_or_path", "models/editflow", "--dataset_args", "tatsu-lab/alpaca", "--output_dir", "runs/a b"]


def _slurm(env, *args, **kwargs) -> subprocess.CompletedProcess:
    cmd = ["bash", str(SCRIPT), *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_dry_run_prints_a_two_node_accelerate_launch(slurm_env):
    proc = _slurm(slurm_env, "--accelerate_config", "fsdp2", "--script_path", "training/sft.py", *TRAIN_ARGS, "--dry_run")
    assert proc.returncode == 0, proc.stderr
    printed = shlex.split(proc.stdout.split("dry run:\n")[1])
    task = printed.index("task")
    srun, script, accelerate_args = printed[: task - 3], printed[task - 1], printed[task + 1 :]
    assert srun == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--nodelist=gpu-node-[07-08]", "--kill-on-bad-exit=1"]
    assert printed[task - 3 : task - 1] == ["bash", "-c"] and script.startswith("exec accelerate launch --machine_rank \"$SLURM_NODEID\"")
    # What node 1 runs, read by accelerate as `accelerate launch` reads it.
    args = launch_command_parser().parse_args(["--machine_rank", "1", *accelerate_args])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and args.config_file == "training/accelerate_configs/fsdp2.yaml"
    assert (args.num_machines, args.num_processes, args.nnodes, args.nproc_per_node, args.node_rank) == (2, 16, "2", "8", 1)
    assert args.rdzv_backend == "c10d" and args.rdzv_endpoint == "gpu-node-07:23456"  # 20000 + job id % 10000
    assert args.training_script == "training/sft.py" and args.training_script_args == TRAIN_ARGS
    assert "2 node(s) x 8 process(es) = 16" in proc.stdout


def test_each_node_launches_with_its_rank_and_a_requeued_job_resumes(slurm_env, tmp_path):
    proc = _slurm({**slurm_env, "SLURM_RESTART_COUNT": "1"}, "--accelerate_config", "ddp", "--processes_per_node", "4", *TRAIN_ARGS)
    assert proc.returncode == 0, proc.stderr
    for rank in (0, 1):
        argv = (tmp_path / f"node{rank}.args").read_text().splitlines()
        assert argv[:3] == ["launch", "--machine_rank", str(rank)]
        assert argv[argv.index("--num_processes") + 1] == "8" and argv[argv.index("--main_process_ip") + 1] == "gpu-node-07"
        script = argv.index("training/sft.py")  # the default script
        assert argv[script + 1 :] == [*TRAIN_ARGS, "--resume_from_checkpoint", "auto"]
    assert "attempt 2" in proc.stdout
    # A first attempt starts as asked; a resume flag of the user's own is kept as given.
    _slurm(slurm_env, *TRAIN_ARGS)
    assert "--resume_from_checkpoint" not in (tmp_path / "node0.args").read_text()
    _slurm({**slurm_env, "SLURM_RESTART_COUNT": "3"}, *TRAIN_ARGS, "--resume_from_checkpoint", "runs/x/checkpoint-9")
    assert (tmp_path / "node1.args").read_text().splitlines()[-2:] == ["--resume_from_checkpoint", "runs/x/checkpoint-9"]


def test_time_limit_warning_stops_the_run_and_requeues(slurm_env, tmp_path):
    env = {**slurm_env, "FAKE_SLEEP": "1"}
    proc = subprocess.Popen(["bash", str(SCRIPT), *TRAIN_ARGS], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"node{rank}.args").exists() for rank in (0, 1)) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGUSR1)  # what `#SBATCH --signal=B:USR1@300` sends 5 minutes before the limit
    out, _ = proc.communicate(timeout=30)
    assert (tmp_path / "srun.signals").read_text() == "TERM\n"
    assert all((tmp_path / f"node{rank}.stopped").read_text() == "checkpointed\n" for rank in (0, 1))
    assert (tmp_path / "scontrol.log").read_text() == "requeue 123456\n"
    assert "requeueing job 123456" in out


def test_sigterm_stops_the_run_without_requeueing(slurm_env, tmp_path):
    """scancel (or a preemption, which SLURM requeues itself) sends SIGTERM: checkpoint and stop, no requeue."""
    env = {**slurm_env, "FAKE_SLEEP": "1"}
    proc = subprocess.Popen(["bash", str(SCRIPT), *TRAIN_ARGS], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "node1.args").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert (tmp_path / "node0.stopped").exists() and not (tmp_path / "scontrol.log").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--accelerate_config", "zero9"], "--accelerate_config zero9: no training/accelerate_configs/zero9.yaml"),
        (["--script_path", "training/nope.py"], "--script_path training/nope.py: no such file"),
        (["--processes_per_node", "0"], "--processes_per_node 0: expected a positive integer"),
    ],
)
def test_bad_options_are_one_line(slurm_env, args, needle):
    proc = _slurm(slurm_env, *args, *TRAIN_ARGS)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("train.slurm.sh: error:") and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_outside_an_allocation_is_one_line(slurm_env):
    env = {key: value for key, value in slurm_env.items() if not key.startswith("SLURM_")}
    proc = _slurm(env, *TRAIN_ARGS, "--dry_run")
    assert proc.returncode == 2 and "no SLURM allocation" in proc.stderr
