"""Model folders on disk: written atomically, checked before they are trusted.

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

`weights_problem(folder)` tells whether a folder's safetensors weights are present and readable (a truncated
file fails its header check) without loading them.
"""

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .disk import free_bytes, human_bytes, save_failure_message, write_failure
from .errors import EditFlowError

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"


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


def commit_folder(staging, final) -> Path:
    """Rename the complete `staging` folder to `final`. An existing `final` is first renamed aside and deleted
    only once the new folder is in place (two renames on one file system: at no time is there a half-written
    folder under the final name)."""
    staging, final = Path(staging), Path(final)
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


@contextmanager
def atomic_folder(final, *, overwrite: bool = False, overwrite_flag: str = "--overwrite", needed: int | None = None):
    """Yield an empty staging folder; when the block succeeds it becomes `final`, when it raises it is deleted
    and `final` is left as it was. A non-empty `final` is refused unless `overwrite` (the error names
    `overwrite_flag`); a failed write (e.g. a full disk, see `disk.write_failure`) becomes one EditFlowError line
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


def _header_problem(path: Path) -> str | None:
    try:
        with safe_open(str(path), framework="pt"):
            return None
    except Exception as err:  # SafetensorError (truncated or not safetensors) is a plain Exception subclass
        return f"{path.name} is corrupted or truncated ({' '.join(str(err).split())})"


def weights_problem(folder) -> str | None:
    """Why the safetensors weights of `folder` cannot be loaded (missing file, missing shard, truncated or
    corrupted file), or None. Reads only the file headers."""
    folder = Path(folder)
    index = folder / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        except (OSError, ValueError, AttributeError) as err:
            return f"{WEIGHTS_INDEX_NAME} is unreadable ({err})"
        if not shards:
            return f"{WEIGHTS_INDEX_NAME} lists no shards"
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            return f"safetensors shards listed in {WEIGHTS_INDEX_NAME} are missing: {', '.join(missing)}"
        return next(filter(None, (_header_problem(folder / name) for name in shards)), None)
    if not (folder / WEIGHTS_NAME).is_file():
        return f"{WEIGHTS_NAME} is missing"
    return _header_problem(folder / WEIGHTS_NAME)


def _looks_local(name: str) -> bool:
    """Whether a model name is meant as a local path (a Hub id is `name` or `namespace/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def check_model_folder(model_name_or_path, what: str = "model") -> None:
    """Before anything is loaded: a local `model_name_or_path` must be a folder with a readable config.json and
    loadable weights (safetensors headers checked, or a pytorch_model.bin); EditFlowError names what is wrong.
    Names that can only be Hub ids pass (from_pretrained resolves them)."""
    name = str(model_name_or_path)
    path = Path(name).expanduser()
    if not path.exists():
        if _looks_local(name):
            raise EditFlowError(f"{what} folder {name} does not exist.")
        return
    if not path.is_dir():
        raise EditFlowError(f"{name} is a file, not a model folder (a folder with config.json and the weights).")
    config = path / "config.json"
    if not config.is_file():
        raise EditFlowError(f"{name} is not a model folder: it has no config.json (save one with save_pretrained).")
    try:
        parsed = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise EditFlowError(f"{config} is unreadable ({err}).") from None
    except json.JSONDecodeError as err:
        raise EditFlowError(f"{config} is not valid JSON (line {err.lineno}: {err.msg}); restore it from the original model.") from None
    if not isinstance(parsed, dict):
        raise EditFlowError(f"{config} is not a model config (a JSON object); restore it from the original model.")
    if (path / WEIGHTS_NAME).is_file() or (path / WEIGHTS_INDEX_NAME).is_file():
        check_weights(path)
    elif not any((path / name).is_file() for name in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise EditFlowError(f"{name} has no weights ({WEIGHTS_NAME}); save or download the model again.")


@contextmanager
def loading_errors(model_name_or_path, what: str = "model"):
    """Turn what from_pretrained raises on a broken folder (bad config values, mismatched or corrupted weights)
    into one EditFlowError line."""
    try:
        yield
    except EditFlowError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, SafetensorError) as err:
        detail = " ".join(str(err).split())[:300]
        raise EditFlowError(f"cannot load the {what} from {model_name_or_path}: {type(err).__name__}: {detail}") from None


def check_weights(folder) -> None:
    """EditFlowError (one line) when the weights of `folder` cannot be loaded."""
    problem = weights_problem(folder)
    if problem is not None:
        raise EditFlowError(f"{folder}: {problem}; save or download the model again.")


__all__ = [
    "atomic_folder",
    "check_model_folder",
    "check_output_folder",
    "check_weights",
    "commit_folder",
    "discard_staging",
    "is_nonempty_dir",
    "loading_errors",
    "staging_path",
    "weights_problem",
]
