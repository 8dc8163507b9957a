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
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError, safe_open

from .errors import EditFlowError

# Names ending like a data file are local files (e.g. --dataset_args data/qa.jsonl), never Hub repo ids.
DATA_FILE_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt", ".parquet", ".arrow"}

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PIPELINE_TASK = "editflow-generation"
# What a training run records beside its checkpoint-final (and the model card shows): the arguments that decide
# what the model learned, in the card's order.
TRAINING_ARGS_FILE = "training_args.json"
RECORDED_TRAINING_ARGS = (
    "model_name_or_path", "dataset_args", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "max_length", "x0_sampler", "scheduler_cls", "scheduler_kwargs", "max_w",
    "time_epsilon", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "insert_eos", "group_texts",
    "text_field", "bf16", "seed", "path", "lambda_prop", "time_conditioning", "prefix_conditioning", "prefix_drop_prob",
)  # fmt: skip
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


# --- config sizes against the weights and the memory, before anything is allocated ------------------------------
#
# A config.json whose sizes are at odds with its weights (num_hidden_layers: 100000 beside two layers of weights, a
# vocab_size or max_position_embeddings other than the embedding's rows) would make every loader allocate (or hang
# building) a model the weights cannot fill, then fail with transformers' "look at the above report!". The sizes are
# read from the config and the safetensors headers only.

_EMBEDDING_SUFFIXES = {
    "vocab_size": ("word_embeddings.weight", "tok_embeddings.weight", "embed_tokens.weight", "wte.weight"),
    "max_position_embeddings": ("position_embeddings.weight", "wpe.weight"),
}
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks)\.(\d+)\.")
_SIZE_ALIASES = {  # GPT-2 style names of the same sizes
    "vocab_size": ("vocab_size",), "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"), "intermediate_size": ("intermediate_size", "n_inner"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions"),
}  # fmt: skip


def _sizes(config: dict) -> dict:
    """The backbone sizes a config gives (an Edit Flow config's from its encoder_config), each a positive int."""
    source = config.get("encoder_config") if config.get("model_type") == "editflow" else config
    sizes = {}
    if isinstance(source, dict):
        for name, aliases in _SIZE_ALIASES.items():
            value = next((source[key] for key in aliases if key in source), None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                sizes[name] = value
    return sizes


def min_parameters(config: dict) -> int:
    """A lower bound on the parameters of the model a config describes: the token embeddings and, per layer, two
    hidden x hidden attention projections and two hidden x intermediate MLP matrices (real layers hold more)."""
    sizes = _sizes(config)
    hidden = sizes.get("hidden_size", 0)
    intermediate = sizes.get("intermediate_size", 4 * hidden)
    return sizes.get("vocab_size", 0) * hidden + sizes.get("num_hidden_layers", 0) * (2 * hidden * hidden + 2 * hidden * intermediate)


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _weight_shapes(folder: Path) -> dict[str, list[int]] | None:
    """Tensor name -> shape of the safetensors weights of `folder` (headers only; every shard), or None."""
    index = folder / WEIGHTS_INDEX_NAME
    try:
        if index.is_file():
            names = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        elif (folder / WEIGHTS_NAME).is_file():
            names = [WEIGHTS_NAME]
        else:
            return None
        shapes = {}
        for name in names:
            with safe_open(str(folder / name), framework="pt") as weights:
                for key in weights.keys():
                    shapes[key] = list(weights.get_slice(key).get_shape())
        return shapes
    except Exception:  # unreadable weights are weights_problem's to report
        return None


def size_problem(config: dict, folder=None) -> str | None:
    """Why the sizes of a parsed config cannot be built (more memory than this machine has) or are at odds with the
    safetensors weights of `folder` (layers, vocabulary or positions other than the weights', or a model far
    larger than the weights), found from the config and the weights' headers before anything is allocated."""
    sizes = _sizes(config)
    needed = 4 * min_parameters(config)  # float32 bytes
    memory = memory_bytes()
    if memory and needed > memory:
        described = ", ".join(f"{name} {value}" for name, value in sizes.items())
        return (f"its sizes ({described}) describe a model of at least {human_bytes(needed)} in float32, more than "
                f"this machine's {human_bytes(memory)} of memory")  # fmt: skip
    shapes = _weight_shapes(Path(folder)) if folder is not None else None
    if not shapes:
        return None
    layers = {int(match[1]) for key in shapes for match in [_LAYER_INDEX.search(key)] if match}
    stored_layers = max(layers) + 1 if layers else None
    configured = sizes.get("num_hidden_layers")
    if stored_layers is not None and configured is not None and configured != stored_layers:
        return f"num_hidden_layers is {configured} but the weights hold {stored_layers} layers; the config and the weights are at odds"
    for name, suffixes in _EMBEDDING_SUFFIXES.items():
        rows = next((shape[0] for key, shape in shapes.items() if key.endswith(suffixes) and len(shape) == 2), None)
        value = sizes.get(name)
        if rows is not None and value is not None and rows != value:
            what = "token" if name == "vocab_size" else "position"
            return f"{name} is {value} but the weights' {what} embedding has {rows} rows; the config and the weights are at odds"
    stored = sum(math.prod(shape) for shape in shapes.values())
    if min_parameters(config) > 4 * stored + 10**6:
        return (f"its sizes describe a model of at least {min_parameters(config):,} parameters but the weights hold "
                f"{stored:,}; the config and the weights are at odds")  # fmt: skip
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


def tokenizer_files_present(folder) -> bool:
    """Whether `folder` holds a saved tokenizer: tokenizer_config.json and a vocabulary file (`TOKENIZER_VOCAB_FILES`)."""
    folder = Path(folder)
    return (folder / "tokenizer_config.json").is_file() and any((folder / name).is_file() for name in TOKENIZER_VOCAB_FILES)


# What an Edit Flow config may point remote code at: the files that travel with every checkpoint, nothing else.
EDITFLOW_CODE_REFS = {
    "configuration_editflow.EditFlowConfig",
    "modeling_editflow.EditFlowForEditing",
    "pipeline_editflow.EditFlowGenerationPipeline",
}
_POSITIVE_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings")


def foreign_code(config: dict) -> str | None:
    """The first `auto_map` or `custom_pipelines` entry of an Edit Flow config that points at code other than the
    Edit Flow files (another repo's `owner/name--module.Class`, or another module), as `key -> reference`."""
    auto_map = config.get("auto_map") or {}
    pipelines = config.get("custom_pipelines") or {}
    if not isinstance(auto_map, dict) or not isinstance(pipelines, dict):
        return f"auto_map / custom_pipelines -> {type(auto_map).__name__} / {type(pipelines).__name__}, not objects"
    entries = list(auto_map.items()) + [(f"custom_pipelines {task}", spec.get("impl") if isinstance(spec, dict) else spec)
                                        for task, spec in pipelines.items()]  # fmt: skip
    for key, reference in entries:
        references = reference if isinstance(reference, (list, tuple)) else [reference]
        for ref in references:
            if ref is not None and ref not in EDITFLOW_CODE_REFS:
                return f"{key} -> {ref}"
    return None


def config_problem(config: dict) -> str | None:
    """Why a parsed config.json cannot describe a usable model, found before any class is built: values of the
    wrong type (the config classes' own validation), sizes that are not positive whole numbers, and for an Edit
    Flow config also special token ids outside the vocabulary, an unknown scheduler, and an `auto_map` /
    `custom_pipelines` pointing at code other than the Edit Flow files (`foreign_code`). None when fine."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type == "editflow":
        foreign = foreign_code(config)
        if foreign is not None:
            return f"it points remote code at something other than the Edit Flow files ({foreign}), code that trust_remote_code would run"
        if not isinstance(config.get("scheduler", "linear"), str) or not isinstance(config.get("scheduler_kwargs") or {}, dict):
            return "scheduler must be a scheduler name and scheduler_kwargs an object of its arguments"
        encoder = config.get("encoder_config")
        if not isinstance(encoder, dict) or not isinstance(encoder.get("model_type"), str):
            return "encoder_config must be an object with the encoder's model_type"
        sizes = [(name, encoder.get(name)) for name in _POSITIVE_SIZES]
    else:
        sizes = [(name, config.get(name)) for name in _POSITIVE_SIZES]
    for name, value in sizes:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            return f"{name} must be a positive whole number; got {value!r}"
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the config classes' warnings (e.g. a token id outside the vocabulary): not here
    try:
        if model_type == "editflow":
            from .modeling.configuration_editflow import EditFlowConfig
            from .modeling.scheduling_editflow import get_scheduler

            built = EditFlowConfig.from_dict(config)
            get_scheduler(built.scheduler, **dict(built.scheduler_kwargs or {}))
        elif isinstance(model_type, str) and model_type in CONFIG_MAPPING:
            AutoConfig.for_model(**config)
    except Exception as err:  # the config classes validate with TypeError, ValueError or StrictDataclassError
        return f"invalid values ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
    finally:
        hf_logging.set_verbosity(verbosity)
    if model_type == "editflow":
        vocab = built.encoder_config.vocab_size
        for name in ("mask_token_id", "bos_token_id", "pad_token_id", "eos_token_id"):
            value = getattr(built, name, None)
            if value is None and name in ("mask_token_id", "bos_token_id"):
                return f"{name} is missing (an Edit Flow model needs its mask and BOS tokens)"
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab):
                return f"{name} {value!r} is not a token id of the {vocab}-token vocabulary"
    return None


@contextmanager
def loading_errors(model_name_or_path, what: str = "model"):
    """Turn what from_pretrained raises on a broken folder (bad config values, mismatched or corrupted weights)
    into one EditFlowError line."""
    try:
        yield
    except EditFlowError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, SafetensorError, StrictDataclassError) as err:
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


__all__ = [
    "DISK_FULL",
    "apply_umask",
    "atomic_folder",
    "check_checkpoint",
    "check_weights",
    "check_model_folder",
    "check_output_folder",
    "checkpoint_problem",
    "config_file_problem",
    "config_problem",
    "foreign_code",
    "model_folder_problem",
    "commit_folder",
    "discard_staging",
    "folder_bytes",
    "generation_config_problem",
    "free_bytes",
    "hub_config_check",
    "human_bytes",
    "is_hub_id",
    "is_nonempty_dir",
    "loading_errors",
    "memory_bytes",
    "min_parameters",
    "size_problem",
    "read_json",
    "save_failure_message",
    "staging_path",
    "tensor_bytes",
    "tokenizer_files_present",
    "user_file_mode",
    "weights_problem",
    "write_failure",
]
