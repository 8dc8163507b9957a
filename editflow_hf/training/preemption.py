"""Stop a training run cleanly when the cluster asks: SLURM sends SIGTERM before it preempts a job or reaches its
time limit (and SIGUSR1 with `#SBATCH --signal=USR1@<seconds>`). `StopOnSignal` turns either signal into "save a
checkpoint at the next step boundary and stop", so `--resume_from_checkpoint auto` continues the run later with
the weights the uninterrupted run would have had (resume is exact: see trainer.py).

Every process of a multi-process run must stop at the same step (the save is collective under FSDP/DeepSpeed),
but a signal may reach the processes a little apart: at each step end they agree by a max-reduction of one flag
over a gloo group (CPU, so no device sync is added to the step).
"""

import logging
import signal
import threading

import torch
import torch.distributed as dist
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# SIGINT (Ctrl-C) as SIGTERM: finish the step, save, stop with no traceback and no partial checkpoint.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopOnSignal(TrainerCallback):
    """On SIGTERM, SIGUSR1 or SIGINT (Ctrl-C) during training: at the next optimizer step's end, save checkpoint-<step> and stop.

    `stopped_by` is the signal's name once the run stopped early because of it (None otherwise). The previous
    handlers come back when training ends."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.received: int | None = None
        self.stopped_by: str | None = None
        self._previous = {}
        self._group = None

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
            # A line in the job log right away; the checkpoint follows at the step's end.
            print(f"training: got {signal.Signals(signum).name}; saving a checkpoint at the end of this step", flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self._group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def _agreed_signal(self) -> int:
        """The signal any process received (0 if none), the same on every process."""
        flag = torch.tensor([self.received or 0], dtype=torch.int64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return int(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        signum = self._agreed_signal()  # every process, every step: the reduction is collective
        if signum and not control.should_training_stop:  # (already stopping: the last step, the run completes)
            control.should_save = True
            control.should_training_stop = True
            self.stopped_by = signal.Signals(signum).name
            logger.warning("%s: saving checkpoint-%d and stopping.", self.stopped_by, state.global_step)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def stopped_exit_code(signal_name: str) -> int:
    """128 + the signal number: the status of a process the signal ended, which shells and schedulers read as such."""
    return 128 + int(signal.Signals[signal_name])


__all__ = ["STOP_SIGNALS", "StopOnSignal", "stopped_exit_code"]
