#!/usr/bin/env bash
#SBATCH --job-name=editflow
#SBATCH --nodes=1
#SBATCH --gres=gpu:8
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=24
#SBATCH --output=./.logs/%x-%j.out
#SBATCH --error=./.logs/%x-%j.err
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --time=3-00:00:00
#
# Multi-node training on SLURM, in the spirit of dLLM's scripts/train.slurm.sh. Submit from the repository root
# (after `mkdir -p .logs`; SLURM does not create the log folder):
#
#   sbatch --nodes=2 --gres=gpu:8 training/train.slurm.sh \
#       --accelerate_config fsdp2 --script_path training/sft.py \
#       --model_name_or_path ... --dataset_args ... --output_dir ...
#
# --accelerate_config NAME|FILE   training/accelerate_configs/NAME.yaml, or a yaml file (default zero2)
# --script_path FILE              the training script (default training/sft.py)
# --processes_per_node N          default: the GPUs SLURM gave each node (SLURM_GPUS_ON_NODE, else CUDA_VISIBLE_DEVICES)
# --dry_run                       print the launch command and exit
# Everything else goes to the training script.
#
# One srun task per node runs `accelerate launch` with --num_machines = SLURM_NNODES, --machine_rank = that
# task's SLURM_NODEID, the first node of the allocation as --main_process_ip and 20000 + job id % 10000 as port
# (MASTER_PORT overrides), c10d rendezvous. Logs: .logs/<job name>-<job id>.out/.err, appended across requeues.
#
# Preemption and time limits: SLURM sends SIGTERM before it stops a job; each training process then saves a
# checkpoint-N at its next step boundary and exits (the launchers wait TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds,
# 240 here, before killing). --signal=B:USR1@300 warns this script 5 minutes before the time limit: it stops
# the run the same way and requeues the job. A requeued job (SLURM_RESTART_COUNT > 0) gets
# `--resume_from_checkpoint auto` unless you passed --resume_from_checkpoint yourself: it continues from the
# newest complete checkpoint-N, or starts afresh if the first attempt saved none. Save checkpoints often enough
# (--save_steps) for the work a preemption may cost.
set -uo pipefail

# ===== Options =====
accelerate_config="zero2"
script_path="training/sft.py"
processes_per_node=""
dry_run=0
FORWARD_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --accelerate_config) accelerate_config="$2"; shift 2 ;;
    --script_path) script_path="$2"; shift 2 ;;
    --processes_per_node) processes_per_node="$2"; shift 2 ;;
    --dry_run) dry_run=1; shift ;;
    *) FORWARD_ARGS+=("$1"); shift ;;  # everything else goes to the training script
  esac
done

fail() { echo "train.slurm.sh: error: $*" >&2; exit 2; }

if [[ -f "$accelerate_config" ]]; then
  config_file="$accelerate_config"
else
  config_file="training/accelerate_configs/${accelerate_config}.yaml"
  [[ -f "$config_file" ]] || fail "--accelerate_config ${accelerate_config}: no ${config_file} (run from the repository root; names: $(cd training/accelerate_configs 2>/dev/null && ls *.yaml | sed 's/\.yaml$//' | xargs))"
fi
[[ -f "$script_path" ]] || fail "--script_path ${script_path}: no such file (run from the repository root)"
[[ -n "${SLURM_JOB_NODELIST:-}" && -n "${SLURM_NNODES:-}" && -n "${SLURM_JOB_ID:-}" ]] \
  || fail "no SLURM allocation (SLURM_JOB_NODELIST, SLURM_NNODES, SLURM_JOB_ID); submit with sbatch"

# ===== Cluster variables =====
NUM_NODES=${SLURM_NNODES}
if [[ -z "$processes_per_node" ]]; then
  if [[ -n "${SLURM_GPUS_ON_NODE:-}" ]]; then
    processes_per_node=${SLURM_GPUS_ON_NODE}
  elif [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
    processes_per_node=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
  else
    processes_per_node=1
  fi
fi
[[ "$processes_per_node" =~ ^[1-9][0-9]*$ ]] || fail "--processes_per_node ${processes_per_node}: expected a positive integer"
WORLD_SIZE=$((NUM_NODES * processes_per_node))
mapfile -t NODELIST < <(scontrol show hostnames "${SLURM_JOB_NODELIST}")
[[ ${#NODELIST[@]} -ge 1 ]] || fail "scontrol show hostnames ${SLURM_JOB_NODELIST} gave no host"
MASTER_ADDR=${NODELIST[0]}
MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 10000))}
RESTARTS=${SLURM_RESTART_COUNT:-0}

# A requeued attempt continues the run its predecessor checkpointed.
resume_given=0
for arg in "${FORWARD_ARGS[@]}"; do
  [[ "$arg" == --resume_from_checkpoint || "$arg" == --resume_from_checkpoint=* ]] && resume_given=1
done
if [[ "$RESTARTS" -gt 0 && "$resume_given" -eq 0 ]]; then
  FORWARD_ARGS+=(--resume_from_checkpoint auto)
fi

# ===== Environment =====
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export NCCL_ASYNC_ERROR_HANDLING=1 TORCH_NCCL_ASYNC_ERROR_HANDLING=1
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-240}

# What each node runs: `accelerate launch --machine_rank $SLURM_NODEID` (expanded by the task on that node) + ARGS.
ARGS=(--config_file "$config_file"
  --num_machines "$NUM_NODES"
  --num_processes "$WORLD_SIZE"
  --main_process_ip "$MASTER_ADDR"
  --main_process_port "$MASTER_PORT"
  --rdzv_backend c10d
  "$script_path" "${FORWARD_ARGS[@]}")
TASK='exec accelerate launch --machine_rank "$SLURM_NODEID" "$@"'
SRUN=(srun --nodes="$NUM_NODES" --ntasks="$NUM_NODES" --ntasks-per-node=1 --nodelist="$SLURM_JOB_NODELIST" --kill-on-bad-exit=1)

echo "===== editflow train.slurm.sh ====="
echo "job ${SLURM_JOB_ID} (attempt $((RESTARTS + 1))): ${NUM_NODES} node(s) x ${processes_per_node} process(es) = ${WORLD_SIZE}"
echo "nodes: ${NODELIST[*]}; rendezvous ${MASTER_ADDR}:${MASTER_PORT}"
echo "config ${config_file}; script ${script_path}"
echo "on node k of 0..$((NUM_NODES - 1)): accelerate launch --machine_rank k$(printf ' %q' "${ARGS[@]}")"
echo "==================================="
if [[ "$dry_run" -eq 1 ]]; then
  echo "dry run:"
  printf '%q ' "${SRUN[@]}" bash -c "$TASK" task "${ARGS[@]}"
  echo
  exit 0
fi

# ===== Launch; stop cleanly on SIGTERM, stop and requeue on the time-limit warning =====
requeue=0
srun_pid=""
stop() {
  echo "train.slurm.sh: $1: asking the training processes to checkpoint and stop"
  [[ -n "$srun_pid" ]] && kill -TERM "$srun_pid" 2>/dev/null
}
trap 'requeue=1; stop "time limit near (SIGUSR1)"' USR1
trap 'stop "SIGTERM"' TERM
"${SRUN[@]}" bash -c "$TASK" task "${ARGS[@]}" &
srun_pid=$!
while true; do
  wait "$srun_pid"
  status=$?
  kill -0 "$srun_pid" 2>/dev/null || break  # still running: a trapped signal interrupted the wait
done
if [[ "$requeue" -eq 1 ]]; then
  echo "train.slurm.sh: requeueing job ${SLURM_JOB_ID}; it resumes with --resume_from_checkpoint auto"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
