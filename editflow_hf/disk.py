"""Saves that fail: a full disk told apart from other failed writes, and how much room a save needs.

A full disk does not always arrive as `OSError(ENOSPC)`: safetensors reports it as a `SafetensorError` holding
`StorageFull` / `os error 28`, torch.save's zip writer as `RuntimeError: [enforce fail at inline_container.cc]
... unexpected pos` or `file write failed`. `write_failure(err)` reads all of them (and their chained causes):

    try:
        save(folder)
    except Exception as err:
        reason = write_failure(err)        # "the disk is full", another write error in one line, or None
        if reason is None:
            raise                          # not a failed write: a bug, shown as such
        ...remove the partial folder, then one line: save_failure_message(folder, reason, needed)
"""

import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

DISK_FULL = "the disk is full"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_WORDS = ("no space left", "storagefull", "disk quota exceeded", "file too large", "os error 28", "errno 28")
_TORCH_WRITE_WORDS = ("inline_container", "file write failed", "unexpected pos")


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err` and the exceptions it was raised from or while handling (each once)."""
    seen = set()
    pending = [err]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend((current.__cause__, current.__context__))


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def write_failure(err: BaseException) -> str | None:
    """Why a save failed when `err` is a failed write: `DISK_FULL`, or the failed write in one line; None when `err`
    is anything else (a bug, an interrupt)."""
    chain = list(_chain(err))
    for error in chain:
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            return DISK_FULL
        if any(word in str(error).lower() for word in _FULL_WORDS):
            return DISK_FULL
    for error in chain:
        if isinstance(error, OSError) or any(word in str(error).lower() for word in _TORCH_WRITE_WORDS):
            return f"{type(error).__name__}: {one_line(error)}"
    return None


def folder_bytes(folder) -> int:
    """Bytes of the files under `folder` (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def free_bytes(path) -> int:
    """Free bytes, for an unprivileged user, on the file system of `path` (or of its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def tensor_bytes(tensors: Iterable) -> int:
    """Bytes of the tensors among `tensors` (nested dicts and lists are walked), each storage counted once."""
    total, seen, pending = 0, set(), [tensors]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif hasattr(item, "untyped_storage") and hasattr(item, "element_size"):
            try:
                key = (item.untyped_storage().data_ptr(), item.storage_offset(), item.numel())
            except (RuntimeError, NotImplementedError):  # meta or fake tensors
                key = id(item)
            if key not in seen:
                seen.add(key)
                total += item.numel() * item.element_size()
    return total


def human_bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def save_failure_message(folder, reason: str, needed: int, after: str) -> str:
    """One line: which folder could not be saved and why, the room it needs against the room free, then `after`
    (what was kept and how to go on)."""
    free = free_bytes(folder)
    if reason != DISK_FULL and free < needed:
        reason = f"{DISK_FULL} ({reason})"
    return f"could not save {folder}: {reason}; it needs about {human_bytes(needed)} and {human_bytes(free)} is free; {after}"


__all__ = ["DISK_FULL", "folder_bytes", "free_bytes", "human_bytes", "one_line", "save_failure_message", "tensor_bytes", "write_failure"]
