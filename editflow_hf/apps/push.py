"""Publish an Edit Flow checkpoint folder to the Hugging Face Hub, with a generated model card.

    editflow-push .models/editflow/ModernBERT-large/alpaca/checkpoint-final --repo_id you/editflow-alpaca --dry-run
    editflow-push .models/editflow/ModernBERT-large/alpaca/checkpoint-final --repo_id you/editflow-alpaca --gif decode_trace.gif

The folder must be a complete Hub repo (config with `auto_map` + `custom_pipelines`, safetensors weights, the
remote code, the tokenizer) so that `AutoModel.from_pretrained(repo, trust_remote_code=True)` and
`pipeline("editflow-generation", model=repo, trust_remote_code=True)` work for anyone. The card (README.md: the
folder's own when it has one, else a generated card) and the GIF are uploaded from memory / their own path: the
folder is never modified. `--dry-run` lists the files and prints the card; it writes and uploads nothing.
"""

import argparse
import importlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects, validate_repo_id

from ..checkpoints import weights_problem
from ..errors import EditFlowError, run_cli

# huggingface_hub talks HTTP through httpx2 (httpx in older releases); their transport errors are not OSErrors.
_HTTP_ERRORS = tuple(
    importlib.import_module(name).HTTPError for name in ("httpx2", "httpx") if importlib.util.find_spec(name) is not None
)

PAPER_URL = "https://arxiv.org/abs/2506.09018"
OFFLINE_MESSAGE = "no network: cannot reach the Hub (HF_HUB_OFFLINE=1 is set; unset it to push)"
PIPELINE_TASK = "editflow-generation"
EXAMPLE_PROMPT = "Could you please write a poem for me?"
# The license of the remote code and of the default backbones (ModernBERT, BERT); --license sets the base model's.
DEFAULT_LICENSE = "apache-2.0"

# Trainer resume state: useless for inference, large (optimizer.pt is twice the weights) and partly pickled.
UPLOAD_IGNORE_PATTERNS = ["optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "global_step*", "global_step*/**"]

# Names ending like a data file are local files (e.g. --dataset_args data/qa.jsonl), never Hub repo ids.
DATA_FILE_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt", ".parquet", ".arrow"}

TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")

# Training arguments shown in the card, in this order (the ones that decide what the model learned).
CARD_TRAINING_KEYS = (
    "model_name_or_path",
    "dataset_args",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "global_step",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "train_batch_size",
    "max_length",
    "x0_sampler",
    "scheduler",
    "scheduler_cls",
    "scheduler_kwargs",
    "max_w",
    "time_epsilon",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "insert_eos",
    "text_field",
    "bf16",
    "seed",
    "final_train_loss",
)

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

An **Edit Flow** model (Havasi et al. 2025, [Edit Flows: Flow Matching with Edit Operations]({{ paper_url }}))
built on {{ base_model_md }} encoder ({{ model_type }}){% if datasets_md %}, trained on {{ datasets_md }}{% endif %}.

Edit Flows generate text with a continuous-time Markov chain over **edits**: starting from `BOS` followed by
mask tokens (or `BOS` alone), every step may *insert*, *delete* or *substitute* tokens anywhere in the sequence,
so the length is not fixed in advance and earlier choices can be revised. At every position of the current
sequence x_t the encoder predicts three non-negative rates (substitute, delete, insert after) and two token
distributions (substituted and inserted token); sampling advances time by `tau` and fires each edit with
probability `tau * w(t) * rate`, where `w(t) = kappa'(t) / (1 - kappa(t))` comes from the `{{ scheduler }}` kappa scheduler.
{% if gif_file %}
![Decode trace of one sample: every frame is one sampling step that changed the text]({{ gif_file }})
{% endif %}
## Usage

The model and its generation pipeline are remote code that travels with this repository (`trust_remote_code=True`);
only `transformers` and `torch` are needed. The pipeline follows the conventions of `text-generation` (a list of
`{"generated_text": ...}` per input, `num_return_sequences`, `max_new_tokens`, `do_sample`, `top_k`, `top_p`,
`return_full_text`, generators and datasets as input) and adds the Edit Flow parameters `tau` (step size),
`mask_length` (masks after the prompt), `edit_prompt` and `return_trace`.

```python
from transformers import pipeline

pipe = pipeline("{{ task }}", model="{{ repo_id }}", trust_remote_code=True)
out = pipe("{{ example_prompt }}", seed=42, return_trace=True)  # this checkpoint's sampling defaults (below)
print(out[0]["generated_text"])
print(len(out[0]["trace"]["steps"]), "sampling steps changed the text")
```

```python
from transformers import pipeline

pipe = pipeline("{{ task }}", model="{{ repo_id }}", trust_remote_code=True)
samples = pipe("{{ example_prompt }}", num_return_sequences=2, max_new_tokens=32, top_k=50, tau=0.02, seed=0)
for sample in samples:
    print(sample["generated_text"])
```

The model itself: at every position of the current sequence x_t, three edit rates and two token distributions.

```python
import torch
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained("{{ repo_id }}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{{ repo_id }}", trust_remote_code=True)
x_t = torch.tensor([[tokenizer.bos_token_id] + [tokenizer.mask_token_id] * 8])  # BOS + 8 masks
out = model(x_t)
print(tuple(out.ins_rate.shape), tuple(out.ins_logits.shape))  # (1, 9) rates, (1, 9, vocab) logits
```

Sampling defaults of this checkpoint (its `generation_config.json`; the arguments of a call override them):

| `tau` | `mask_length` | `temperature` | `top_p` | `top_k` | a plain text prompt |
|---|---|---|---|---|---|
| `{{ defaults.tau }}` | `{{ defaults.mask_length }}` | `{{ defaults.temperature }}` | `{{ defaults.top_p }}` | `{{ defaults.top_k }}` | {% if defaults.chat_template %}goes through the chat template as a user message (fine-tuned on chats){% else %}is continued as raw text (pass chat messages for a chat turn){% endif %} |

With the `editflow-hf` package installed, the same from the command line (writes `decode_trace.gif`):

```shell
editflow-sample --model_name_or_path "{{ repo_id }}" --prompt "{{ example_prompt }}" --seed 42 --make_gif
```

## Training
{% if training_rows %}
| argument | value |
|---|---|
{% for key, value in training_rows %}| `{{ key }}` | `{{ value }}` |
{% endfor %}{% else %}
No training arguments were recorded with this checkpoint.
{% endif %}
## Citation

```bibtex
@article{havasi2025editflows,
  title   = {Edit Flows: Flow Matching with Edit Operations},
  author  = {Havasi, Marton and Karrer, Brian and Gat, Itai and Chen, Ricky T. Q.},
  journal = {arXiv preprint arXiv:2506.09018},
  year    = {2025}
}
```
"""


def _is_hub_id(name: str | None) -> bool:
    """Whether `name` can be a Hub repo id (`name` or `namespace/name`) rather than a local path."""
    if not name or name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).exists():
        return False
    if Path(name).suffix.lower() in DATA_FILE_SUFFIXES:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EditFlowError(f"cannot read {what} {path}: {err}") from None


def _required_code_files(folder: Path, config: dict) -> tuple[set[str], list[str]]:
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
    config = _read_json(folder / "config.json", "config")
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

    _, missing_code = _required_code_files(folder, config)
    if missing_code:
        problems.append(f"remote code files are missing: {', '.join(missing_code)}")

    if not (folder / "tokenizer_config.json").is_file() or not any((folder / f).is_file() for f in TOKENIZER_VOCAB_FILES):
        problems.append("tokenizer files are missing (tokenizer_config.json and tokenizer.json/vocab; run tokenizer.save_pretrained on the folder)")
    if problems:
        raise EditFlowError(f"{folder} is not a complete Edit Flow repo: " + "; ".join(problems) + ".")
    return config


def _training_summary(folder: Path, config: dict, training_args: dict | None) -> dict:
    """The training arguments worth showing: `training_args.json` / trainer_state.json in the folder, overridden
    by the `training_args` dict, plus the scheduler recorded in the config."""
    summary: dict = {"scheduler": config.get("scheduler")}
    if config.get("scheduler_kwargs"):
        summary["scheduler_kwargs"] = config["scheduler_kwargs"]
    state_file = folder / "trainer_state.json"
    if state_file.is_file():
        state = _read_json(state_file, "trainer state")
        summary.update({k: state[k] for k in ("global_step", "num_train_epochs", "max_steps", "train_batch_size") if state.get(k)})
        losses = [entry["loss"] for entry in state.get("log_history", []) if "loss" in entry]
        if losses:
            summary["final_train_loss"] = round(float(losses[-1]), 4)
    args_file = folder / "training_args.json"
    if args_file.is_file():
        summary.update(_read_json(args_file, "training arguments"))
    summary.update(training_args or {})
    if isinstance(summary.get("max_steps"), int) and summary["max_steps"] <= 0:
        del summary["max_steps"]  # -1 means "train for num_train_epochs"
    return summary


def _table_cell(value) -> str:
    """A value for the card's markdown table: JSON for dicts and lists, `|` escaped so `a|b` stays one cell."""
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text.replace("|", "\\|")


def _public_name(value) -> str:
    """A name fit for a public card: Hub ids (and anything not a path) as they are, a local path by its last
    component only (`/home/me/data/qa.jsonl` -> `qa.jsonl`), so no local file system layout is published."""
    text = str(value)
    if _is_hub_id(text) or not ("/" in text or "\\" in text or text.startswith(("~", "."))):
        return text
    return Path(text.rstrip("/\\")).name or text


def _public_value(key: str, value):
    """A training argument as the card shows it: local paths in path-like arguments reduced by `_public_name`."""
    if key == "dataset_args" and isinstance(value, str):
        return "|".join(_public_name(part) for part in value.split("|"))
    if key == "model_name_or_path" and isinstance(value, str):
        return _public_name(value)
    return value


def _generation_defaults(folder: Path) -> dict:
    """The sampling defaults the pipeline takes from the folder (its generation_config.json, else the fallbacks)."""
    from ..modeling.generation_editflow import EditFlowGenerationConfig  # here: `editflow-push --help` stays fast

    path = folder / "generation_config.json"
    return (EditFlowGenerationConfig.from_pretrained(folder) if path.is_file() else EditFlowGenerationConfig()).summary()


def _dataset_ids(dataset) -> list[str]:
    """Dataset names from an argument: a string (`a|b`, `name[train:1000]` as in --dataset_args) or a list."""
    if not dataset:
        return []
    names = dataset.split("|") if isinstance(dataset, str) else list(dataset)
    return [re.sub(r"\[.*\]$", "", str(name)).strip() for name in names if str(name).strip()]


def build_model_card(
    checkpoint_dir,
    repo_id: str,
    *,
    base_model: str | None = None,
    dataset=None,
    training_args: dict | None = None,
    gif_path=None,
    license: str | None = DEFAULT_LICENSE,
    eval_results=None,
) -> ModelCard:
    """The model card of an Edit Flow checkpoint: metadata (library_name, pipeline_tag, license, base_model,
    datasets, tags, and `model-index` from `eval_results`: an `editflow-eval` JSON file, or a list of
    `huggingface_hub.EvalResult`) and a body with
    what the model is, usage snippets for `repo_id` (each runs as written), the checkpoint's sampling defaults,
    the training arguments and the decode GIF.

    `base_model` defaults to the encoder's `_name_or_path` in config.json (also used when `base_model` is a local
    path and that name is a Hub id); only a Hub id goes into the metadata and the text, local paths never do
    (a local base is named by its model type, local files by their name). `dataset` defaults to the training
    arguments' `dataset_args`; `gif_path` is linked relative to the repo root (push_checkpoint copies the file
    there)."""
    folder = Path(checkpoint_dir)
    config = _read_json(folder / "config.json", "config")
    if isinstance(eval_results, (str, Path)):
        eval_results = eval_results_for_card(eval_results)
    encoder_config = config.get("encoder_config") or {}
    model_type = encoder_config.get("model_type", "encoder")
    summary = _training_summary(folder, config, training_args)
    # A training script passes its --model_name_or_path, often a local converted folder: the encoder's own
    # name (a Hub id when it was converted from the Hub) is then the better base model for the metadata.
    base_candidates = [name for name in (base_model, encoder_config.get("_name_or_path")) if name]
    hub_base = next((name for name in base_candidates if _is_hub_id(name)), None)
    datasets = _dataset_ids(dataset or summary.get("dataset_args") or summary.get("dataset_name"))
    hub_datasets = [d for d in datasets if _is_hub_id(d)]

    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        license=license,
        base_model=hub_base,
        datasets=hub_datasets or None,
        tags=["edit-flows", "flow-matching", "editflow", model_type, "custom_code"],
        model_name=repo_id.split("/")[-1] if eval_results else None,
        eval_results=eval_results or None,
    )
    if hub_base:
        base_model_md = f"the [`{hub_base}`](https://huggingface.co/{hub_base})"
    else:
        base_model_md = "a local" if base_candidates else "a BERT-family"
    datasets_md = ", ".join(
        f"[`{d}`](https://huggingface.co/datasets/{d})" if _is_hub_id(d) else f"`{_public_name(d)}`" for d in datasets
    )
    training_rows = [
        (key, _table_cell(_public_value(key, summary[key])))
        for key in CARD_TRAINING_KEYS
        if summary.get(key) not in (None, "", {})
    ]
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        paper_url=PAPER_URL,
        task=PIPELINE_TASK,
        model_type=model_type,
        base_model_md=base_model_md,
        datasets_md=datasets_md,
        scheduler=config.get("scheduler", "linear"),
        training_rows=training_rows,
        example_prompt=EXAMPLE_PROMPT,
        defaults=_generation_defaults(folder),
        gif_file=Path(gif_path).name if gif_path else None,
    )


EVAL_RESULTS_FILE = "eval_results.json"


def eval_results_for_card(eval_json) -> list[EvalResult]:
    """`model-index` entries (huggingface_hub `EvalResult`s) from an `editflow-eval` JSON file: the bound per
    token (and its standard error), the generation metrics and the restoration edit distances."""
    path = Path(eval_json)
    result = _read_json(path, "editflow-eval results")
    if "bound" not in result or "dataset" not in result:
        raise EditFlowError(f"{path} is not an editflow-eval result (no bound/dataset): write one with `editflow-eval ... --output {path}`")
    dataset = _dataset_ids(result["dataset"])
    dataset_name = dataset[0] if dataset else str(result["dataset"])
    metrics = [("edit_flow_bound", "Edit Flow bound (nats/token)", result["bound"]["per_token"]),
               ("edit_flow_bound_stderr", "Edit Flow bound standard error", result["bound"]["stderr"])]  # fmt: skip
    generation = result.get("generation") or {}
    for key in ("length", "distinct_1", "distinct_2", "repeated_2gram_rate", "leftover_masks", "exact_match", "token_f1"):
        if isinstance(generation.get(key), (int, float)):
            metrics.append((key, key.replace("_", " "), generation[key]))
    if isinstance(result.get("generative_perplexity"), (int, float)):
        metrics.append(("generative_perplexity", "generative perplexity", result["generative_perplexity"]))
    for key in ("edit_distance_before", "edit_distance_after"):
        if key in (result.get("restoration") or {}):
            metrics.append((f"restoration_{key}", f"restoration {key.replace('_', ' ')}", result["restoration"][key]))
    return [
        EvalResult(
            task_type="text-generation", dataset_type=dataset_name, dataset_name=dataset_name,
            dataset_split=result.get("split"), metric_type=metric, metric_name=name, metric_value=float(value),
        )  # fmt: skip
        for metric, name, value in metrics
    ]


def upload_file_list(checkpoint_dir) -> list[str]:
    """Files of the folder that upload_folder sends, relative POSIX paths, sorted (same ignore patterns)."""
    folder = Path(checkpoint_dir)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS))


def _hub_failure(err: Exception, repo_id: str) -> EditFlowError:
    """One line for what went wrong talking to the Hub."""
    if isinstance(err, OfflineModeIsEnabled):
        return EditFlowError(OFFLINE_MESSAGE)
    if isinstance(err, RepositoryNotFoundError):
        return EditFlowError(f"repo {repo_id} not found or not writable with this token (check the namespace and the token's write access)")
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            return EditFlowError("the Hugging Face token was rejected (401): run `hf auth login` again or pass a valid --token")
        if status == 403:
            return EditFlowError(f"not allowed to write to {repo_id} (403): use a token with write access to that namespace")
        return EditFlowError(f"the Hub refused the push of {repo_id} ({status}): {str(err).splitlines()[0]}")
    detail = str(err).splitlines()[0] if str(err) else "no details"
    return EditFlowError(f"no network: cannot reach the Hub at {huggingface_hub.constants.ENDPOINT} ({type(err).__name__}: {detail})")


@dataclass
class UploadPlan:
    """What a push sends: the folder's files (relative paths), the model card and the GIF. Nothing is written
    into the folder: the card goes up from memory, the GIF from where it is."""

    folder: Path
    files: list[str]
    card: str
    card_is_generated: bool
    gif_path: Path | None = None

    @property
    def repo_files(self) -> list[str]:
        """Every file of the repo after the push, sorted."""
        extra = {"README.md"} | ({self.gif_path.name} if self.gif_path else set())
        return sorted(set(self.files) | extra)


def plan_upload(
    checkpoint_dir,
    repo_id: str,
    *,
    base_model: str | None = None,
    dataset=None,
    training_args: dict | None = None,
    gif_path=None,
    license: str | None = DEFAULT_LICENSE,
    eval_results=None,
) -> UploadPlan:
    """Check the folder and the repo id, build the card (the folder's own README.md when it has one, else the
    generated card) and list the files; reads only. Raises EditFlowError (one line) for anything wrong."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise EditFlowError(f"invalid repo id {repo_id!r}: use `namespace/name` ({str(err).splitlines()[0]})") from None
    folder = Path(checkpoint_dir)
    check_checkpoint(folder)
    if gif_path is not None:
        gif_path = Path(gif_path)
        if not gif_path.is_file():
            raise EditFlowError(f"GIF {gif_path} not found: make one with `editflow-sample ... --make_gif` or drop --gif.")
    own_card = folder / "README.md"
    if own_card.is_file():
        card, generated = own_card.read_text(encoding="utf-8"), False
    else:
        if eval_results is None and (folder / EVAL_RESULTS_FILE).is_file():
            eval_results = folder / EVAL_RESULTS_FILE
        card = str(build_model_card(
            folder, repo_id, base_model=base_model, dataset=dataset, training_args=training_args, gif_path=gif_path,
            license=license, eval_results=eval_results,
        ))  # fmt: skip
        generated = True
    files = [name for name in upload_file_list(folder) if name != "README.md" and not (gif_path and name == gif_path.name)]
    return UploadPlan(folder, files, card, generated, gif_path)


def push_checkpoint(
    checkpoint_dir,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    base_model: str | None = None,
    dataset=None,
    training_args: dict | None = None,
    gif_path=None,
    dry_run: bool = False,
    commit_message: str | None = None,
    license: str | None = DEFAULT_LICENSE,
    eval_results=None,
) -> str:
    """Check that `checkpoint_dir` is a complete repo, then create `repo_id` (exist_ok) and upload, in one
    commit, the folder's files, the model card as README.md (the folder's own README.md if it has one, else
    the generated card, uploaded from memory) and the decode GIF when given. The folder is never modified.

    `eval_results`: an `editflow-eval` JSON file for the card's `model-index` (default: `eval_results.json` in the
    checkpoint, when there is one).
    Returns the repo URL, or with `dry_run` the files the repo would hold, one per line (nothing is sent).
    Raises EditFlowError (one line) for an incomplete folder, a bad repo id, no network, no token or a refused write."""
    plan = plan_upload(
        checkpoint_dir, repo_id, base_model=base_model, dataset=dataset, training_args=training_args, gif_path=gif_path,
        license=license, eval_results=eval_results,
    )
    if dry_run:
        return "\n".join(plan.repo_files)

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise EditFlowError(OFFLINE_MESSAGE)
    token = token or huggingface_hub.get_token()
    if not token:
        raise EditFlowError("no Hugging Face token: run `hf auth login` or pass --token (or set HF_TOKEN)")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(plan.folder / name)) for name in plan.files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=plan.card.encode("utf-8")))
    if plan.gif_path is not None:
        operations.append(CommitOperationAdd(path_in_repo=plan.gif_path.name, path_or_fileobj=str(plan.gif_path)))
    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(
            repo_id=repo_id,
            operations=operations,
            commit_message=commit_message or f"Upload Edit Flow checkpoint ({plan.folder.name})",
            repo_type="model",
        )
    except (OSError, *_HTTP_ERRORS) as err:  # HfHubHTTPError and OfflineModeIsEnabled are OSErrors
        raise _hub_failure(err, repo_id) from None
    return str(repo_url)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="editflow-push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="Checkpoint folder to publish (e.g. <output_dir>/checkpoint-final).")
    parser.add_argument("--repo_id", "--repo-id", required=True, help="Target Hub repo, `namespace/name`.")
    parser.add_argument("--private", action="store_true", help="Create the repo private.")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="List the repo's files and print the card; write and upload nothing.")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: HF_TOKEN or the `hf auth login` token).")
    parser.add_argument("--gif", default=None, help="Decode-trace GIF of one sample to embed in the card (uploaded with it).")
    parser.add_argument("--base_model", default=None, help="Base encoder for the card (default: the encoder's name in config.json).")
    parser.add_argument("--dataset", default=None, help="Training dataset(s) for the card, `a|b` (default: from training_args.json).")
    parser.add_argument("--commit_message", default=None, help="Commit message of the upload.")
    parser.add_argument(
        "--license", default=DEFAULT_LICENSE, help=f"License in the card's metadata, the base model's (default {DEFAULT_LICENSE}; e.g. mit for RoBERTa).",
    )
    parser.add_argument(
        "--eval_results", default=None,
        help=f"editflow-eval JSON for the card's model-index (default: {EVAL_RESULTS_FILE} in the checkpoint, if any).",
    )
    args = parser.parse_args(argv)
    return run_cli(parser.prog, lambda: _push_from_args(args))


def _push_from_args(args) -> int:
    card_options = dict(
        base_model=args.base_model, dataset=args.dataset, gif_path=args.gif, license=args.license,
        eval_results=args.eval_results,
    )  # fmt: skip
    if args.dry_run:
        plan = plan_upload(args.checkpoint, args.repo_id, **card_options)
        print("\n".join(plan.repo_files))
        print()
        print(plan.card)
        if not plan.card_is_generated:
            print("editflow-push: the card is the folder's own README.md (delete it to use the generated one)", file=sys.stderr)
        return 0
    result = push_checkpoint(
        args.checkpoint,
        args.repo_id,
        private=args.private,
        token=args.token,
        commit_message=args.commit_message,
        **card_options,
    )
    print(f"Pushed {args.checkpoint} to {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
