"""The model card of an Edit Flow checkpoint: metadata (library_name, pipeline_tag, license, base_model,
datasets, tags, model-index from an `editflow-eval` result) and a body with usage snippets, the checkpoint's
sampling defaults, its training arguments and the decode GIF (`build_model_card`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoints.folder_checks import read_json
from ..checkpoints.hub_ids import is_hub_id
from ..checkpoints.names import CONFIG_NAME, PIPELINE_TASK, RECORDED_TRAINING_ARGS, TRAINING_ARGS_FILE
from ..errors import EditFlowError

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard

PAPER_URL = "https://arxiv.org/abs/2506.09018"
EXAMPLE_PROMPT = "Could you please write a poem for me?"
# The license of the remote code and of the default backbones (ModernBERT, BERT); --license sets the base model's.
DEFAULT_LICENSE = "apache-2.0"

# The card's training table: the arguments a run records (training_args.json), then what its trainer state and
# config say (steps taken, effective batch, scheduler, last logged loss).
CARD_TRAINING_KEYS = (*RECORDED_TRAINING_ARGS, "global_step", "train_batch_size", "scheduler", "final_train_loss")

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


def _training_summary(folder: Path, config: dict, training_args: dict | None) -> dict:
    """The training arguments worth showing: `training_args.json` / trainer_state.json in the folder, overridden
    by the `training_args` dict, plus the scheduler recorded in the config."""
    summary: dict = {"scheduler": config.get("scheduler")}
    if config.get("scheduler_kwargs"):
        summary["scheduler_kwargs"] = config["scheduler_kwargs"]
    state_file = folder / "trainer_state.json"
    if state_file.is_file():
        state = read_json(state_file, "trainer state")
        summary.update({k: state[k] for k in ("global_step", "num_train_epochs", "max_steps", "train_batch_size") if state.get(k)})
        losses = [entry["loss"] for entry in state.get("log_history", []) if "loss" in entry]
        if losses:
            summary["final_train_loss"] = round(float(losses[-1]), 4)
    args_file = folder / TRAINING_ARGS_FILE
    if args_file.is_file():
        summary.update(read_json(args_file, "training arguments"))
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
    if is_hub_id(text) or not ("/" in text or "\\" in text or text.startswith(("~", "."))):
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
    """The sampling defaults the pipeline takes from the folder (its generation_config.json, else the defaults)."""
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
    from huggingface_hub import ModelCard, ModelCardData  # here: `editflow-push --help` stays fast

    folder = Path(checkpoint_dir)
    config = read_json(folder / CONFIG_NAME, "config")
    if isinstance(eval_results, (str, Path)):
        eval_results = eval_results_for_card(eval_results)
    encoder_config = config.get("encoder_config") or {}
    model_type = encoder_config.get("model_type", "encoder")
    summary = _training_summary(folder, config, training_args)
    # A training script passes its --model_name_or_path, often a local converted folder: the encoder's own
    # name (a Hub id when it was converted from the Hub) is then the better base model for the metadata.
    base_candidates = [name for name in (base_model, encoder_config.get("_name_or_path")) if name]
    hub_base = next((name for name in base_candidates if is_hub_id(name)), None)
    datasets = _dataset_ids(dataset or summary.get("dataset_args") or summary.get("dataset_name"))
    hub_datasets = [d for d in datasets if is_hub_id(d)]

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
        f"[`{d}`](https://huggingface.co/datasets/{d})" if is_hub_id(d) else f"`{_public_name(d)}`" for d in datasets
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
    from huggingface_hub import EvalResult

    path = Path(eval_json)
    result = read_json(path, "editflow-eval results")
    if "bound" not in result or "dataset" not in result:
        raise EditFlowError(f"{path} is not an editflow-eval result (no bound/dataset): write one with `editflow-eval ... --output {path}`")
    dataset = _dataset_ids(result["dataset"])
    dataset_name = _public_name(dataset[0] if dataset else str(result["dataset"]))  # a local file by its name only
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
