"""A parsed config.json checked before any class is built: values and types, remote-code targets
(`config_problem`), and sizes against this machine's memory and the weights' headers (`size_problem`)."""

import json
import math
import os
import re
from pathlib import Path

from safetensors import safe_open

from .names import WEIGHTS_INDEX_NAME, WEIGHTS_NAME
from .saving import human_bytes


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
            from ..modeling.configuration_editflow import EditFlowConfig
            from ..modeling.scheduling_editflow import get_scheduler

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
