"""Model folders written atomically, and saves that fail told apart.

A model folder (editflow-convert's output, a training run's checkpoint-final) is first written into a hidden
sibling `.<name>.partial` and renamed into place only once complete, so a crash, a kill or a full disk never
leaves a half-written folder under the final name; an existing folder of that name is replaced only when the
caller allows it, and kept intact when the write fails:

    with atomic_folder("out/model", overwrite=False) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    # out/model now holds both, or (on any error) is exactly what it was before

Multi-process savers (the Trainer's save_model runs on every rank) use the pieces: every rank writes into
`staging_path(final)`, then one process calls `commit_folder(staging, final)`.
"""

import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import EditFlowError


def staging_path(final) -> Path:
    """The hidden sibling a folder is written into before it is renamed to `final`."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


def _replaced_path(final: Path) -> Path:
    return final.parent / f".{final.name}.replaced"


def is_nonempty_dir(path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.iterdir())


def discard_staging(final) -> None:
    """Remove a staging folder left behind by an earlier crash."""
    shutil.rmtree(staging_path(final), ignore_errors=True)


def user_file_mode() -> int:
    """The mode a new file gets under this process's umask (0o644 under 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def apply_umask(folder) -> None:
    """Give the files under `folder` written private (0600, as safetensors writes model.safetensors through a
    temporary file) the mode the user's umask gives every other file, so another user serving the folder can read
    the weights beside the config."""
    mode = user_file_mode()
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            try:
                if not os.path.islink(path) and os.stat(path).st_mode & 0o777 == 0o600 and mode != 0o600:
                    os.chmod(path, mode)
            except OSError:
                pass


def commit_folder(staging, final) -> Path:
    """Rename the complete `staging` folder to `final`. An existing `final` is first renamed aside and deleted
    only once the new folder is in place (two renames on one file system: at no time is there a half-written
    folder under the final name)."""
    staging, final = Path(staging), Path(final)
    apply_umask(staging)
    if final.exists():
        aside = _replaced_path(final)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
        os.replace(staging, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, final)
    return final


def check_output_folder(final, *, overwrite: bool = False, overwrite_flag: str = "--overwrite") -> None:
    """EditFlowError unless `final` can be written: absent, an empty folder, or a folder `overwrite` allows to replace."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise EditFlowError(f"{final} exists and is not a folder; choose another output folder.")
    if is_nonempty_dir(final) and not overwrite:
        raise EditFlowError(f"{final} already exists and is not empty; pass {overwrite_flag} to replace it, or choose another folder.")


# --- saves that fail ---------------------------------------------------------------------------------------------
#
# A full disk does not always arrive as OSError(ENOSPC): safetensors reports it as a SafetensorError holding
# `StorageFull` / `os error 28`, torch.save's zip writer as `RuntimeError: [enforce fail at inline_container.cc]
# ... unexpected pos` or `file write failed`. `write_failure(err)` reads all of them (and their chained causes):
#
#     try:
#         save(folder)
#     except Exception as err:
#         reason = write_failure(err)        # DISK_FULL, another failed write in one line, or None
#         if reason is None:
#             raise                          # not a failed write: a bug, shown as such
#         ...remove the partial folder, then one line: save_failure_message(folder, reason, needed, after)

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


@contextmanager
def atomic_folder(final, *, overwrite: bool = False, overwrite_flag: str = "--overwrite", needed: int | None = None):
    """Yield an empty staging folder; when the block succeeds it becomes `final`, when it raises it is deleted
    and `final` is left as it was. A non-empty `final` is refused unless `overwrite` (the error names
    `overwrite_flag`); a failed write (e.g. a full disk, see `write_failure`) becomes one EditFlowError line
    with the room the folder `needed` (bytes, when known) and the room free."""
    final = Path(final)
    check_output_folder(final, overwrite=overwrite, overwrite_flag=overwrite_flag)
    staging = staging_path(final)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        commit_folder(staging, final)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        reason = write_failure(err) if isinstance(err, Exception) and not isinstance(err, EditFlowError) else None
        if reason is None:
            raise
        kept = "its previous contents are kept" if final.exists() else "nothing was written under that name"
        if needed is None:
            raise EditFlowError(f"could not write {final}: {reason}; {human_bytes(free_bytes(final))} is free; {kept}.") from None
        raise EditFlowError(save_failure_message(final, reason, needed, f"{kept}.")) from None
