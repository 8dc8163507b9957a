"""One training run per output folder: a second `pt.py` / `sft.py` into the `--output_dir` of a run still going is
refused before its first step, in one line naming the first run (its process, host, start time and command). Two
runs into one folder would otherwise both train, interleave their checkpoint-N and fail or overwrite each other at
their final saves.

The lock is a `filelock` (an OS lock: released by the kernel when the holder dies, so a killed run leaves no stale
lock) on `<output_dir>/.editflow-train.lock`; `.editflow-train.json` beside it says who holds it. Both are removed when
the run ends. Only the world's main process locks; in a multi-process run its answer reaches every process."""

import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from ..errors import EditFlowError

LOCK_NAME = ".editflow-train.lock"
OWNER_NAME = ".editflow-train.json"


def _holder(output_dir: Path) -> str:
    """Who holds the lock of `output_dir`, in words (as its owner file says)."""
    try:
        owner = json.loads((output_dir / OWNER_NAME).read_text(encoding="utf-8"))
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}: {owner['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet said which"


class RunLock:
    """The lock of one run's output folder (`acquire` once the run's checks passed, `release` at its end)."""

    def __init__(self):
        self._lock = None
        self._dir: Path | None = None
        self._created = False

    def acquire(self, training_args) -> None:
        """Lock `training_args.output_dir` on the world's main process (creating the folder); EditFlowError on every
        process when another run holds it."""
        import torch.distributed as dist

        problem = None
        if training_args.process_index == 0:
            try:
                self._acquire(Path(training_args.output_dir))
            except EditFlowError as err:
                problem = str(err)
        if training_args.world_size > 1 and dist.is_available() and dist.is_initialized():
            shared = [problem]
            dist.broadcast_object_list(shared, src=0)
            problem = shared[0]
        if problem is not None:
            raise EditFlowError(problem)

    def _acquire(self, output_dir: Path) -> None:
        from filelock import FileLock, Timeout

        created = not output_dir.exists()
        output_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(output_dir / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            if created:
                output_dir.rmdir()
            raise EditFlowError(
                f"--output_dir {output_dir} is in use by another training run ({_holder(output_dir)}); wait for it to "
                "end or stop it, or choose another --output_dir."
            ) from None
        self._lock, self._dir, self._created = lock, output_dir, created
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                 "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}  # fmt: skip
        (output_dir / OWNER_NAME).write_text(json.dumps(owner) + "\n", encoding="utf-8")

    def release(self) -> None:
        if self._lock is None:
            return
        for name in (OWNER_NAME, LOCK_NAME):  # the owner file first: while it exists, the lock is held
            if name == LOCK_NAME:
                self._lock.release()
            try:
                (self._dir / name).unlink()
            except OSError:
                pass
        if self._created:  # a run refused after the lock leaves no empty folder behind
            try:
                self._dir.rmdir()
            except OSError:
                pass
        self._lock = None


__all__ = ["LOCK_NAME", "OWNER_NAME", "RunLock"]
