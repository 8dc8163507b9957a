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
file fails its header check) without loading them; `check_checkpoint(folder)` whether a folder is a complete
Edit Flow repo (config with auto_map, weights, remote code, tokenizer). `is_hub_id(name)` tells a Hub repo id
from a local path.
"""

import errno
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .errors import EditFlowError

# Names ending like a data file are local files (e.g. --dataset_args data/qa.jsonl), never Hub repo ids.
DATA_FILE_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt", ".parquet", ".arrow"}

WEIGHTS_NAME = "model.safetensors"
PIPELINE_TASK = "editflow-generation"
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
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
def atomic_folder(final, *, overwrite: bool = False, overwrite_flag: str = "--overwrite"):
    """Yield an empty staging folder; when the block succeeds it becomes `final`, when it raises it is deleted
    and `final` is left as it was. A non-empty `final` is refused unless `overwrite` (the error names
    `overwrite_flag`); an OSError while writing (e.g. a full disk) becomes one EditFlowError line."""
    final = Path(final)
    check_output_folder(final, overwrite=overwrite, overwrite_flag=overwrite_flag)
    staging = staging_path(final)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        commit_folder(staging, final)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        why = "the disk is full" if err.errno == errno.ENOSPC else " ".join(str(err).split())
        kept = "its previous contents are kept" if final.exists() else "nothing was written under that name"
        raise EditFlowError(f"could not write {final}: {why}; {kept}.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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


def is_hub_id(name: str | None) -> bool:
    """Whether `name` can be a Hub repo id (`name` or `namespace/name`) rather than a local path."""
    from huggingface_hub.errors import HFValidationError  # here: `editflow-* --help` stays fast
    from huggingface_hub.utils import validate_repo_id

    if not name or name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).exists():
        return False
    if Path(name).suffix.lower() in DATA_FILE_SUFFIXES:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EditFlowError(f"cannot read {what} {path}: {err}") from None


def required_code_files(folder: Path, config: dict) -> tuple[set[str], list[str]]:
    """Remote-code files the config points to (auto_map, custom_pipelines) plus, recursively, their relative
    imports (e.g. the pipeline's sampling module): (files present, files missing)."""
    from transformers.dynamic_module_utils import get_relative_imports  # here: `editflow-push --help` stays fast

    modules = {ref.split(".")[0] for ref in config.get("auto_map", {}).values() if isinstance(ref, str)}
    modules |= {task["impl"].split(".")[0] for task in config.get("custom_pipelines", {}).values() if "impl" in task}
    present, missing, pending = set(), [], sorted(modules)
    while pending:
        filename = pending.pop() + ".py"
        if filename in present or filename in missing:
            continue
        if not (folder / filename).is_file():
            missing.append(filename)
            continue
        present.add(filename)
        pending.extend(name.split(".")[0] for name in get_relative_imports(folder / filename))
    return present, sorted(missing)


def check_checkpoint(checkpoint_dir) -> dict:
    """Check that `checkpoint_dir` is a complete Edit Flow repo; return its config. EditFlowError names what is missing."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise EditFlowError(f"{folder} is not a folder: pass the checkpoint folder (e.g. <output_dir>/checkpoint-final).")
    if not (folder / "config.json").is_file():
        raise EditFlowError(f"{folder} has no config.json: it is not a saved model (save it with model.save_pretrained).")
    config = read_json(folder / "config.json", "config")
    problems = []
    auto_map = config.get("auto_map", {})
    if "AutoConfig" not in auto_map or "AutoModel" not in auto_map:
        problems.append("config.json has no auto_map for AutoConfig/AutoModel (save with editflow_hf's EditFlowForEditing.save_pretrained)")
    if PIPELINE_TASK not in config.get("custom_pipelines", {}):
        problems.append(f"config.json has no custom_pipelines entry for {PIPELINE_TASK!r}")

    if not (folder / "model.safetensors").is_file() and not (folder / "model.safetensors.index.json").is_file():
        found = "pytorch_model.bin" if (folder / "pytorch_model.bin").is_file() else "no weights"
        problems.append(f"model.safetensors is missing ({found}; save with safe_serialization, the default)")
    else:
        weights = weights_problem(folder)
        if weights is not None:
            problems.append(weights)

    _, missing_code = required_code_files(folder, config)
    if missing_code:
        problems.append(f"remote code files are missing: {', '.join(missing_code)}")

    if not (folder / "tokenizer_config.json").is_file() or not any((folder / f).is_file() for f in TOKENIZER_VOCAB_FILES):
        problems.append("tokenizer files are missing (tokenizer_config.json and tokenizer.json/vocab; run tokenizer.save_pretrained on the folder)")
    if problems:
        raise EditFlowError(f"{folder} is not a complete Edit Flow repo: " + "; ".join(problems) + ".")
    return config


def checkpoint_problem(folder) -> str | None:
    """Why `folder` cannot be resumed from (missing, or not completely saved), or None when it is complete:
    config.json, readable safetensors weights and a trainer_state.json."""
    folder = Path(folder)
    if not folder.is_dir():
        return "it does not exist"
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is unreadable"
    if not (folder / "config.json").is_file():
        return "config.json is missing"
    return weights_problem(folder)


__all__ = [
    "atomic_folder",
    "check_checkpoint",
    "check_model_folder",
    "check_output_folder",
    "check_weights",
    "checkpoint_problem",
    "commit_folder",
    "discard_staging",
    "is_hub_id",
    "is_nonempty_dir",
    "loading_errors",
    "read_json",
    "staging_path",
    "weights_problem",
]
