"""What a model folder on disk holds, checked without loading it: the config file, the safetensors weights (headers
read), the tokenizer, the remote code; a complete Edit Flow repo (`check_checkpoint`), a resumable checkpoint
(`checkpoint_problem`)."""

import json
from pathlib import Path

from safetensors import safe_open

from ..errors import EditFlowError
from .config_checks import config_problem, size_problem
from .names import CONFIG_NAME, PIPELINE_TASK, TOKENIZER_VOCAB_FILES, WEIGHTS_INDEX_NAME, WEIGHTS_NAME


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


def config_file_problem(folder) -> str | None:
    """Why the config.json of `folder` is not a model config (missing, unreadable, not JSON, not an object), or None."""
    config = Path(folder) / CONFIG_NAME
    if not config.is_file():
        return f"there is no {CONFIG_NAME}"
    return _json_object_problem(config, "is not a model config (a JSON object)")


def _json_object_problem(path: Path, not_an_object: str) -> str | None:
    """Why the JSON file `path` is not an object (unreadable, not UTF-8, not valid JSON, another JSON value: then
    `not_an_object`, with {kind} for the value's type), or None."""
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return f"{path.name} is unreadable ({err})"
    except json.JSONDecodeError as err:
        return f"{path.name} is not valid JSON (line {err.lineno}: {err.msg})"
    if not isinstance(parsed, dict):
        return f"{path.name} {not_an_object.format(kind=type(parsed).__name__)}"
    return None


def model_folder_problem(folder) -> str | None:
    """Why `folder` is not a loadable model (see `config_file_problem`; weights missing or unreadable: safetensors,
    headers checked, or a pytorch_model.bin), or None."""
    folder = Path(folder)
    problem = config_file_problem(folder)
    if problem is not None:
        return problem
    if (folder / WEIGHTS_NAME).is_file() or (folder / WEIGHTS_INDEX_NAME).is_file():
        return weights_problem(folder)
    if not any((folder / name).is_file() for name in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        return f"it has no weights ({WEIGHTS_NAME})"
    return None


def check_sizes_and_settings(folder: Path, config: dict, *, config_name=None, name=None) -> None:
    """EditFlowError for sizes the config and weights disagree on ([`size_problem`]) or a generation_config.json
    that cannot be read ([`generation_config_problem`]); `config_name` / `name` are how the messages name the config
    file and the folder (default: their paths)."""
    problem = size_problem(config, folder)
    if problem is not None:
        raise EditFlowError(f"{config_name or Path(folder) / CONFIG_NAME}: {problem}; restore it from the original model.")
    problem = generation_config_problem(folder)
    if problem is not None:
        raise EditFlowError(f"{name or folder}: {problem}; fix it, or delete it to sample with the defaults.")


def generation_config_problem(folder) -> str | None:
    """Why the generation_config.json of `folder`, when there is one, cannot be read as sampling settings (not
    UTF-8, not valid JSON, not an object), or None. Such a file was once silently ignored (defaults used)."""
    path = Path(folder) / "generation_config.json"
    if not path.is_file():
        return None
    return _json_object_problem(path, "is a JSON {kind}, not an object of settings")


def tokenizer_files_present(folder) -> bool:
    """Whether `folder` holds a saved tokenizer: tokenizer_config.json and a vocabulary file (`TOKENIZER_VOCAB_FILES`)."""
    folder = Path(folder)
    return (folder / "tokenizer_config.json").is_file() and any((folder / name).is_file() for name in TOKENIZER_VOCAB_FILES)


def check_weights(folder) -> None:
    """EditFlowError (one line) when the weights of `folder` cannot be loaded."""
    problem = weights_problem(folder)
    if problem is not None:
        raise EditFlowError(f"{folder}: {problem}; save or download the model again.")


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
        why = "is not a folder" if folder.exists() else "does not exist"
        raise EditFlowError(f"{folder} {why}: pass the checkpoint folder (e.g. <output_dir>/checkpoint-final).")
    problem = config_file_problem(folder)
    if problem is not None:
        raise EditFlowError(f"{folder} is not a saved model: {problem} (save it with model.save_pretrained).")
    config = read_json(folder / CONFIG_NAME, "config")
    problem = config_problem(config)
    if problem is not None:
        raise EditFlowError(f"{folder / CONFIG_NAME}: {problem}; restore it from the original model.")
    problems = []
    auto_map = config.get("auto_map", {})
    if "AutoConfig" not in auto_map or "AutoModel" not in auto_map:
        problems.append("config.json has no auto_map for AutoConfig/AutoModel (save with editflow_hf's EditFlowForEditing.save_pretrained)")
    if PIPELINE_TASK not in config.get("custom_pipelines", {}):
        problems.append(f"config.json has no custom_pipelines entry for {PIPELINE_TASK!r}")

    if not (folder / WEIGHTS_NAME).is_file() and not (folder / WEIGHTS_INDEX_NAME).is_file():
        found = "pytorch_model.bin" if (folder / "pytorch_model.bin").is_file() else "no weights"
        problems.append(f"model.safetensors is missing ({found}; save with safe_serialization, the default)")
    else:
        weights = weights_problem(folder)
        if weights is not None:
            problems.append(weights)

    _, missing_code = required_code_files(folder, config)
    if missing_code:
        problems.append(f"remote code files are missing: {', '.join(missing_code)}")

    if not tokenizer_files_present(folder):
        problems.append("tokenizer files are missing (tokenizer_config.json and tokenizer.json/vocab; run tokenizer.save_pretrained on the folder)")
    if problems:
        raise EditFlowError(f"{folder} is not a complete Edit Flow repo: " + "; ".join(problems) + ".")
    check_sizes_and_settings(folder, config)
    return config


def checkpoint_problem(folder) -> str | None:
    """Why `folder` cannot be resumed from (missing, or not completely saved), or None when it is complete:
    a readable trainer_state.json, config.json and safetensors weights."""
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
    return config_file_problem(folder) or weights_problem(folder)
