"""The loading gate of every command: a local folder or a Hub repo checked before from_pretrained runs
(`check_model_folder`), and what from_pretrained still raises turned into one line (`loading_errors`)."""

import json
from contextlib import contextmanager
from pathlib import Path


from ..errors import EditFlowError
from .config_checks import config_problem, size_problem
from .folder_checks import check_sizes_and_settings, check_weights, config_file_problem, read_json, tokenizer_files_present
from .hub_ids import is_hub_id
from .names import CONFIG_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME


def check_model_folder(model_name_or_path, what: str = "model") -> None:
    """Before anything is loaded: a local `model_name_or_path` must be a folder with a readable config.json and
    loadable weights (`model_folder_problem`); EditFlowError names what is wrong. Names that can only be Hub ids
    pass (from_pretrained resolves them)."""
    name = str(model_name_or_path)
    path = Path(name).expanduser()
    if not path.exists():
        if not is_hub_id(name):
            raise EditFlowError(f"{what} folder {name} does not exist.")
        hub_config_check(name)
        return
    if not path.is_dir():
        raise EditFlowError(f"{name} is a file, not a model folder (a folder with config.json and the weights).")
    config = path / CONFIG_NAME
    problem = config_file_problem(path)
    if problem is not None:
        raise EditFlowError(f"{name} is not a model folder: {problem}; save it with save_pretrained, or restore it from the original model.")
    parsed = read_json(config, "config")
    problem = config_problem(parsed)
    if problem is not None:
        raise EditFlowError(f"{config}: {problem}; restore it from the original model.")
    if (path / WEIGHTS_NAME).is_file() or (path / WEIGHTS_INDEX_NAME).is_file():
        check_weights(path)
    elif not any((path / name).is_file() for name in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise EditFlowError(f"{name} has no weights ({WEIGHTS_NAME}); save or download the model again.")
    check_sizes_and_settings(path, parsed, config_name=config, name=name)
    if not tokenizer_files_present(path):
        raise EditFlowError(
            f"{name} has no tokenizer (tokenizer_config.json and tokenizer.json or a vocab file); save it into the "
            "folder with tokenizer.save_pretrained, or copy it from the original model."
        )


def hub_config_check(repo_id: str) -> None:
    """The config checks of a local folder (`config_problem`: remote-code targets, sizes, values) on a Hub repo's
    config.json, fetched alone (or from the cache) before from_pretrained imports any of the repo's code. When it
    cannot be fetched (offline, no such repo) the loader's own error says so."""
    try:
        from huggingface_hub import hf_hub_download

        config_path = hf_hub_download(repo_id, CONFIG_NAME)
        parsed = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except Exception:  # offline, missing repo or file, unreadable: from_pretrained reports it
        return
    problem = config_problem(parsed) if isinstance(parsed, dict) else f"{CONFIG_NAME} is not a model config (a JSON object)"
    if problem is None:
        problem = size_problem(parsed)
    if problem is not None:
        raise EditFlowError(f"{repo_id} (Hub) {CONFIG_NAME}: {problem}; use another repo or revision.")


@contextmanager
def loading_errors(model_name_or_path, what: str = "model"):
    """Turn what from_pretrained raises on a broken folder (bad config values, mismatched or corrupted weights)
    into one EditFlowError line."""
    # imported here, not at the top: huggingface_hub's errors load its HTTP client, a third of every `--help`
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    try:
        yield
    except EditFlowError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, SafetensorError, StrictDataclassError) as err:
        detail = " ".join(str(err).split())[:300]
        raise EditFlowError(f"cannot load the {what} from {model_name_or_path}: {type(err).__name__}: {detail}") from None
