"""Datasets for Edit Flow training: loading (`--dataset_args`), pretraining blocks and SFT conversations.

Every training example is a feature `{"input_ids": x1, "prompt_len": p}` for `EditFlowCollator`: x1 starts with
BOS, and its first p tokens (BOS included) are a prompt that stays fixed (pt examples have no prompt: p = 1).

`--dataset_args` grammar (several datasets joined with `|` are concatenated split by split):

    spec      := source [ ":" config ] [ "[" split ":" rows { "," split ":" rows } "]" ]
    source    := Hub id (tatsu-lab/alpaca) | local .txt/.json/.jsonl/.csv/.parquet file | local folder
    config    := the dataset's configuration (subset) name, e.g. HuggingFaceTB/smoltalk:all
    rows      := number of rows to keep (the first ones); `split` alone keeps all

A dataset with several configurations and none named is loaded with its `all` configuration when it has one
(smoltalk's layout); otherwise the error lists the configurations to pick from.

A requested evaluation split (test/validation/eval/dev) that the source lacks is held out of its train split,
deterministically. Local .txt files are read one paragraph (blank-line separated block) per row, column `text`.
"""

import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from ..checkpoints.hub_ids import is_hub_id

logger = logging.getLogger(__name__)

EVAL_SPLIT_NAMES = ("test", "validation", "eval", "dev")
LOCAL_BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
_SPEC_RE = re.compile(r"^(?P<source>[^\[\]]+?)\s*(?:\[(?P<splits>[^\[\]]*)\])?$")
_CONFIG_RE = re.compile(r"^(?P<source>.+?):(?P<config>[\w.-]+)$")
FALLBACK_CONFIG = "all"
# A data file named for a split (datasets' own rule: train.jsonl, test-00001.json, my_validation.csv...).
_SPLIT_IN_NAME = re.compile(r"(^|[-_. ])(train|training|test|testing|eval|evaluation|valid|validation|dev)([-_. 0-9]|$)", re.IGNORECASE)
# Datasets smaller than this are mapped in one process: worker start-up would cost more than it saves.
MIN_ROWS_PER_EXTRA_PROCESS = 10_000


@dataclass(frozen=True)
class DatasetSpec:
    """One `--dataset_args` entry: a source and the rows to keep of each requested split (None: all rows).
    No splits requested: the source's train split and its test/validation split if any."""

    source: str
    splits: dict[str, int | None] = field(default_factory=dict)
    config: str | None = None


def parse_dataset_args(dataset_args: str) -> list[DatasetSpec]:
    """`"a/b[train:1000,test:100]|c.jsonl"` -> [DatasetSpec("a/b", {"train": 1000, "test": 100}), DatasetSpec("c.jsonl")];
    `"org/name:config"` names a configuration (a path that exists as written is never split at its colon)."""
    example = "e.g. 'tatsu-lab/alpaca[train:1000,test:100]', 'HuggingFaceTB/smoltalk:all' or 'data.jsonl|org/other'"
    specs = []
    for part in dataset_args.split("|"):
        part = part.strip()
        match = _SPEC_RE.match(part)
        if not part or match is None:
            raise ValueError(f"--dataset_args: cannot read {part!r}; {example}.")
        splits: dict[str, int | None] = {}
        for item in filter(None, (s.strip() for s in (match["splits"] or "").split(","))):
            name, _, rows = (s.strip() for s in item.partition(":"))
            if not name or (rows and not rows.isdigit()):
                raise ValueError(f"--dataset_args: bad split {item!r} in {part!r}; write split:rows, {example}.")
            splits[name] = int(rows) if rows else None
        source, config = match["source"].strip(), None
        with_config = _CONFIG_RE.match(source)
        if with_config and not Path(source).expanduser().exists():
            source, config = with_config["source"], with_config["config"]
        specs.append(DatasetSpec(source, splits, config))
    return specs


def _default_num_proc(dataset, num_proc: int | None) -> int | None:
    """The requested process count, or for large in-memory datasets up to 8 processes."""
    if not isinstance(dataset, Dataset):  # IterableDataset.map runs lazily, in the reading process
        return None
    if num_proc is not None:
        return num_proc
    auto = min(8, os.cpu_count() or 1, len(dataset) // MIN_ROWS_PER_EXTRA_PROCESS)
    return auto if auto > 1 else None


def _load_source(source: str, streaming: bool, config: str | None = None) -> DatasetDict | IterableDatasetDict:
    """The source as a dict of splits: a local file (by extension), a local folder, or a Hub dataset id."""
    path = Path(source).expanduser()
    saved_to_disk = path.is_dir() and any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json"))
    if config is not None and (path.is_file() or saved_to_disk):
        raise ValueError(f"--dataset_args: {source} is a single dataset; drop ':{config}'.")
    if path.is_file():
        builder = LOCAL_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(
                f"--dataset_args: unsupported file type {path.suffix!r} for {source}; use one of "
                f"{', '.join(LOCAL_BUILDERS)} (a .txt is read one blank-line separated paragraph per row)."
            )
        kwargs = {"sample_by": "paragraph"} if builder == "text" else {}
        return datasets.load_dataset(builder, data_files=str(path), streaming=streaming, **kwargs)
    if saved_to_disk:
        loaded = datasets.load_from_disk(str(path))
        loaded = loaded if isinstance(loaded, DatasetDict) else DatasetDict(train=loaded)
        if streaming:
            return IterableDatasetDict({name: split.to_iterable_dataset() for name, split in loaded.items()})
        return loaded
    if path.is_dir():
        return _load_with_config(str(path), source, config, streaming)
    if not is_hub_id(source):
        raise ValueError(f"--dataset_args: no such file or folder: {source}.")
    try:
        return _load_with_config(source, source, config, streaming)
    except ConnectionError as err:  # offline, or the Hub unreachable
        raise ValueError(
            f"--dataset_args: cannot load {source} from the Hub ({str(err).splitlines()[0]}); check your network and "
            "HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, or pass a local file."
        ) from None


def _load_with_config(path: str, source: str, config: str | None, streaming: bool):
    """`load_dataset(path, config)`; without a config, a dataset of several falls back to `all`, else a clear error."""
    try:
        return datasets.load_dataset(path, config, streaming=streaming)
    except ValueError as err:
        missing = "Config name is missing" in str(err)
        unknown = config is not None and "BuilderConfig" in str(err) and "not found" in str(err)
        if not (missing or unknown):
            raise
    names = datasets.get_dataset_config_names(path)
    if config is None and FALLBACK_CONFIG in names:
        logger.warning("%s has several configurations (%s); using %r. Name another with %s:<config>.",
                       source, ", ".join(names), FALLBACK_CONFIG, source)
        return datasets.load_dataset(path, FALLBACK_CONFIG, streaming=streaming)
    wanted = "needs a configuration" if config is None else f"has no configuration {config!r}"
    raise ValueError(f"--dataset_args: {source} {wanted}; pick one of {', '.join(names)}, e.g. {source}:{names[0]}.") from None


def _take(dataset, rows: int | None):
    if rows is None:
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.take(rows)
    return dataset.select(range(min(rows, len(dataset))))


def _carve_eval(train: Dataset, size: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out `size` rows (a fraction when < 1) of `train`, shuffled with `seed`; (train, None) when too small."""
    n_eval = int(round(size * len(train))) if size < 1 else int(size)
    n_eval = min(max(n_eval, 1 if size > 0 else 0), len(train) - 1)
    if n_eval <= 0:
        return train, None
    parts = train.train_test_split(test_size=n_eval, shuffle=True, seed=seed)
    return parts["train"], parts["test"]


def load_splits(
    spec: DatasetSpec,
    *,
    streaming: bool = False,
    eval_split_size: float = 0.01,
    seed: int = 42,
    row_check: Callable | None = None,
) -> DatasetDict | IterableDatasetDict:
    """Load one spec as `{"train": ..., "test": ...}` ("test" absent when there is no evaluation data).

    Row limits keep the first rows; an evaluation split the source lacks is held out of train (seeded shuffle)
    before the train limit applies, so the two never overlap. `row_check(split, split_name, source)` (e.g.
    `check_rows`) sees every split as loaded, before any of that, so the row numbers it reports are the file's."""
    loaded = _load_source(spec.source, streaming, spec.config)
    if row_check is not None:
        loaded = type(loaded)({name: row_check(split, name, spec.source) for name, split in loaded.items()})
    available = list(loaded.keys())
    requested = dict(spec.splits)
    train_name = "train" if "train" in requested or not requested else None
    if train_name is None:
        raise ValueError(f"--dataset_args: {spec.source}: name a train split, e.g. {spec.source}[train:1000,test:100].")
    unknown = [name for name in requested if name != "train" and name not in EVAL_SPLIT_NAMES and name not in available]
    if unknown:
        raise ValueError(f"--dataset_args: {spec.source} has no split {unknown[0]!r}; available: {', '.join(available)}.")
    if "train" not in available:
        if len(available) != 1:
            raise ValueError(f"--dataset_args: {spec.source} has no train split; available: {', '.join(available)}.")
        loaded = type(loaded)({"train": loaded[available[0]]})
        available = ["train"]

    train = loaded["train"]
    eval_name = next((name for name in requested if name in EVAL_SPLIT_NAMES), None)
    if eval_name is None and not requested:
        eval_name = next((name for name in EVAL_SPLIT_NAMES if name in available), None)
    eval_rows = requested.get(eval_name) if eval_name else None
    if eval_name is not None and eval_name in available:
        evaluation = _take(loaded[eval_name], eval_rows)
    elif requested and eval_name is None:
        evaluation = None  # explicit splits: only those asked for
    elif streaming:
        evaluation = None
        if eval_name is not None:
            logger.warning("%s: no %s split and a streamed dataset cannot be split; evaluating on nothing.", spec.source, eval_name)
    else:
        size = eval_rows if eval_name is not None else eval_split_size
        if eval_name is not None and size is None:
            raise ValueError(f"--dataset_args: {spec.source} has no {eval_name} split; say how many rows to hold out, e.g. {eval_name}:100.")
        train, evaluation = _carve_eval(train, size, seed)
        if evaluation is not None:
            logger.info("%s: held out %d of its train rows for evaluation (seed %d).", spec.source, len(evaluation), seed)

    splits = {"train": _take(train, requested.get("train"))}
    if evaluation is not None:
        splits["test"] = evaluation
    return IterableDatasetDict(splits) if streaming else DatasetDict(splits)


def _column_names(dataset) -> list[str]:
    """The columns, read off the first row for a streamed dataset whose schema is only known once read."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    first = next(iter(dataset), None)
    return list(first) if first is not None else []


def _require_columns(dataset, needed: list[str], source: str, hint: str) -> None:
    columns = _column_names(dataset)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"{source}: no column {missing[0]!r}; available columns: {', '.join(columns)}. {hint}")


def folder_data_files(folder, every_format: bool = False) -> list[Path]:
    """The files `datasets.load_dataset(folder)` reads from a folder of data files: those under it (at any depth,
    names starting with `.` or `_` skipped, as datasets does) of its most common format (of every format with
    `every_format`), sorted. A folder saved with `save_to_disk` holds none (it is Arrow, read as a whole)."""
    folder = Path(folder)
    if any((folder / name).exists() for name in ("dataset_dict.json", "dataset_info.json")):
        return []
    found = [
        path for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in LOCAL_BUILDERS and path.is_file()
        and not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
    ]  # fmt: skip
    formats = Counter(LOCAL_BUILDERS[path.suffix.lower()] for path in found)
    if every_format:
        return found
    if not formats:
        return []
    chosen = formats.most_common(1)[0][0]
    return [path for path in found if LOCAL_BUILDERS[path.suffix.lower()] == chosen]


def _line_of_row(source: str, row: int) -> str | None:
    """Where the `row`-th (0-based) row of a local JSON-lines file is (`line N`; blank lines hold no row), or of a
    folder of them read as one split (`name.jsonl line N`, files in the order datasets reads them)."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = folder_data_files(path)
        if any(_SPLIT_IN_NAME.search(file.stem) for file in files):
            return None  # files split by name (train*, test*...): rows are counted per split, not through all files
    else:
        files = [path] if path.is_file() else []
    rows = -1
    for file in files:
        if file.suffix.lower() not in (".jsonl", ".json"):
            return None
        with file.open("rb") as handle:
            for line_number, raw in enumerate(handle, 1):
                if raw.strip():
                    rows += 1
                    if rows == row:
                        return f"line {line_number}" if file == path else f"{file.relative_to(path)} line {line_number}"
    return None


def _incomplete_rows(dataset: Dataset, task: str, text_field: str) -> tuple[np.ndarray, str] | None:
    """(indices of the rows without what the task trains on, what they lack), or None when the columns the
    task needs are absent (group_texts / format_sft name them)."""
    table = dataset.with_format("arrow")
    columns = set(dataset.column_names)
    if task == "pt":
        if text_field not in columns:
            return None
        return np.flatnonzero(pc.is_null(table[text_field]).to_numpy(zero_copy_only=False)), f"text ({text_field!r} missing or null)"
    if "messages" in columns:
        messages = table["messages"]
        empty = pc.fill_null(pc.equal(pc.list_value_length(messages), 0), True)
        return np.flatnonzero(empty.to_numpy(zero_copy_only=False)), "messages (missing, null or empty)"
    if {"instruction", "output"} <= columns:
        lacking = pc.or_(pc.is_null(table["instruction"]), pc.is_null(table["output"]))
        return np.flatnonzero(lacking.to_numpy(zero_copy_only=False)), "instruction or output (missing or null)"
    return None


def check_rows(
    dataset,
    split: str,
    source: str,
    *,
    task: str,
    text_field: str = "text",
    drop_incomplete_rows: bool = False,
):
    """The raw rows of one loaded split, checked before any preparation: a train split without rows is
    refused; rows without what the task trains on (pt: a null text; sft: a missing or null output or
    instruction, or no messages) are refused with their count and the first row number (and file line), or
    dropped with a warning when `drop_incomplete_rows`. A streamed split is passed through unchecked."""
    if not isinstance(dataset, Dataset):
        return dataset
    if len(dataset) == 0:
        if split == "train":
            raise ValueError(f"{source}: the {split} split has no rows; pass a file or dataset with training data.")
        return dataset
    found = _incomplete_rows(dataset, task, text_field)
    if found is None or len(found[0]) == 0:
        return dataset
    bad, lacking = found
    first = int(bad[0])
    line = _line_of_row(source, first)
    where = f"row {first + 1}" + (f", {line}" if line is not None else "")
    summary = f"{source}: {len(bad)} of {len(dataset)} {split} rows have no {lacking} (first: {where})"
    if not drop_incomplete_rows:
        raise ValueError(f"{summary}; fix them, or pass --drop_incomplete_rows True to train without them.")
    logger.warning("%s; dropping them (--drop_incomplete_rows True).", summary)
    keep = np.ones(len(dataset), dtype=bool)
    keep[bad] = False
    return dataset.select(np.flatnonzero(keep))


def _tokenize_text(dataset, tokenizer, *, text_field, max_length, insert_eos, num_proc, source, examples, desc):
    """Tokenize `text_field` (no special tokens) and map each batch of documents to examples with
    `examples(docs, eos)` (`eos`: [EOS id] when `insert_eos`, else []), after the checks both pt layouts share."""
    if max_length < 2:
        raise ValueError(f"--max_length must be at least 2 (BOS and one token); got {max_length}.")
    if insert_eos and tokenizer.eos_token_id is None:
        raise ValueError("--insert_eos True needs a tokenizer with an EOS token; convert the model with editflow-convert.")
    _require_columns(dataset, [text_field], source, "Pass the right one with --text_field.")
    eos = [tokenizer.eos_token_id] if insert_eos else []

    def tokenize(batch):
        texts = [text for text in batch[text_field] if text]
        # verbose=False: documents longer than the model's limit are expected, they are cut below.
        docs = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
        return {"input_ids": examples(docs, eos)}

    kwargs = {"num_proc": _default_num_proc(dataset, num_proc), "desc": desc}
    if isinstance(dataset, IterableDataset):
        kwargs = {}
    return dataset.map(tokenize, batched=True, remove_columns=_column_names(dataset), **kwargs)


def group_texts(
    dataset: Dataset | IterableDataset,
    tokenizer,
    *,
    text_field: str = "text",
    max_length: int = 512,
    insert_eos: bool = False,
    num_proc: int | None = None,
    source: str = "dataset",
) -> Dataset | IterableDataset:
    """Tokenize `text_field` (no special tokens) and cut the token stream into blocks x1 = BOS + (max_length - 1) tokens.

    The stream is the documents of one map batch (1000 rows) concatenated, with EOS after each one when
    `insert_eos`; the last, shorter block of a batch is kept (Edit Flows train on any length)."""
    bos_id, block = tokenizer.bos_token_id, max_length - 1

    def blocks(docs, eos):
        stream = np.fromiter((tok for doc in docs for tok in (*doc, *eos)), dtype=np.int64)
        return [[bos_id] + stream[i : i + block].tolist() for i in range(0, len(stream), block)]

    return _tokenize_text(dataset, tokenizer, text_field=text_field, max_length=max_length, insert_eos=insert_eos,
                          num_proc=num_proc, source=source, examples=blocks, desc="Tokenizing and grouping")  # fmt: skip


def tokenize_rows(
    dataset: Dataset | IterableDataset,
    tokenizer,
    *,
    text_field: str = "text",
    max_length: int = 512,
    insert_eos: bool = False,
    num_proc: int | None = None,
    source: str = "dataset",
) -> Dataset | IterableDataset:
    """One example per row of `text_field` with text: x1 = BOS + its tokens (+ EOS when `insert_eos`), truncated
    to `max_length` (`--group_texts False`, like run_mlm's `line_by_line`): short texts keep their own length and
    boundaries, which revision and short-text training need; a text longer than max_length loses its end."""
    bos_id = tokenizer.bos_token_id

    def rows(docs, eos):
        return [([bos_id] + doc + eos)[:max_length] for doc in docs if doc]

    return _tokenize_text(dataset, tokenizer, text_field=text_field, max_length=max_length, insert_eos=insert_eos,
                          num_proc=num_proc, source=source, examples=rows, desc="Tokenizing rows")  # fmt: skip


def sft_messages(row: dict) -> list[dict]:
    """The conversation of one SFT row: its `messages`, or an alpaca row (instruction, optional input, output)
    as one user turn `instruction` (+ blank line + `input`) and one assistant turn `output`."""
    if row.get("messages") is not None:
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    user = row["instruction"]
    if row.get("input"):
        user = f"{user}\n\n{row['input']}"
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]


def tokenize_conversation(messages: list[dict], tokenizer) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of a conversation that ends with an assistant turn, without BOS:

        prompt   = chat_template(messages[:-1], add_generation_prompt=True)
        full     = chat_template(messages)          (must start with prompt)
        response = full[len(prompt):]

    The response text is tokenized on its own so that the prompt ids are exactly a prefix of the full ids."""
    prompt_text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "The tokenizer's chat template renders the prompt (add_generation_prompt=True) differently from the start "
            "of the full conversation, so the prompt cannot be kept fixed; use a template whose generation prompt is "
            "a prefix of the assistant turn (editflow-convert sets one when the tokenizer has none)."
        )
    # verbose=False: a long conversation is truncated to max_length afterwards, the length warning is noise.
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False, verbose=False)["input_ids"]
    response_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False, verbose=False)["input_ids"]
    return prompt_ids, response_ids


def format_sft(
    dataset: Dataset | IterableDataset,
    tokenizer,
    *,
    max_length: int = 512,
    num_proc: int | None = None,
    source: str = "dataset",
) -> Dataset | IterableDataset:
    """Turn alpaca or `messages` rows into features {input_ids: BOS + prompt + response, truncated to max_length,
    prompt_len: 1 + len(prompt)}; rows whose BOS + prompt already fill max_length, and conversations that do not
    end with an assistant turn, are dropped (counted in the log)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("The tokenizer has no chat template; convert the model with editflow-convert, which adds one.")
    columns = _column_names(dataset)
    if "messages" not in columns and not {"instruction", "output"} <= set(columns):
        raise ValueError(
            f"{source}: SFT needs a `messages` column (list of {{role, content}}) or alpaca columns `instruction`, "
            f"`output` (optional `input`); available columns: {', '.join(columns)}."
        )
    bos_id = tokenizer.bos_token_id
    is_dataset = isinstance(dataset, Dataset)
    map_kwargs = {"num_proc": _default_num_proc(dataset, num_proc)} if is_dataset else {}
    n_rows = len(dataset) if is_dataset else None

    if "messages" in columns:
        dataset = dataset.filter(
            lambda row: bool(row["messages"]) and row["messages"][-1]["role"] == "assistant", **map_kwargs
        )
        if is_dataset and len(dataset) < n_rows:
            logger.warning("%s: dropped %d of %d conversations that do not end with an assistant turn.", source, n_rows - len(dataset), n_rows)

    def format_batch(batch):
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        features = {"input_ids": [], "prompt_len": []}
        for row in rows:
            prompt_ids, response_ids = tokenize_conversation(sft_messages(row), tokenizer)
            prompt_len = 1 + len(prompt_ids)
            if prompt_len >= max_length:
                continue
            features["input_ids"].append(([bos_id] + prompt_ids + response_ids)[:max_length])
            features["prompt_len"].append(prompt_len)
        return features

    n_before = len(dataset) if is_dataset else None
    if is_dataset:
        map_kwargs["desc"] = "Formatting conversations"
    formatted = dataset.map(format_batch, batched=True, remove_columns=columns, **map_kwargs)
    if is_dataset and len(formatted) < n_before:
        logger.warning(
            "%s: dropped %d of %d rows whose prompt alone fills --max_length %d.", source, n_before - len(formatted), n_before, max_length
        )
    return formatted


def _concatenate(dicts: list) -> DatasetDict | IterableDatasetDict:
    split_names = [name for name in ("train", "test") if any(name in d for d in dicts)]
    joined = {name: datasets.concatenate_datasets([d[name] for d in dicts if name in d]) for name in split_names}
    return type(dicts[0])(joined)


def prepare_datasets(
    task: str,
    dataset_args: str,
    tokenizer,
    *,
    text_field: str = "text",
    max_length: int = 512,
    insert_eos: bool = False,
    group: bool = True,
    streaming: bool = False,
    num_proc: int | None = None,
    eval_split_size: float = 0.01,
    seed: int = 42,
    drop_incomplete_rows: bool = False,
) -> DatasetDict | IterableDatasetDict:
    """Load every `--dataset_args` source and turn it into training features: `task="pt"` groups raw text into
    blocks (`group_texts`), or with `group=False` makes one example per row (`tokenize_rows`); `task="sft"` formats
    conversations (`format_sft`). Returns {"train", optional "test"}.
    The raw rows are checked first (`check_rows`; incomplete ones refused unless `drop_incomplete_rows`)."""
    if task not in ("pt", "sft"):
        raise ValueError(f"task must be 'pt' or 'sft'; got {task!r}.")
    if tokenizer.bos_token_id is None:
        raise ValueError("The tokenizer has no BOS token; convert the model with editflow-convert (it uses [CLS] as BOS).")
    prepared = []
    for spec in parse_dataset_args(dataset_args):
        row_check = partial(check_rows, task=task, text_field=text_field, drop_incomplete_rows=drop_incomplete_rows)
        raw = load_splits(spec, streaming=streaming, eval_split_size=eval_split_size, seed=seed, row_check=row_check)
        splits = {}
        for name, split in raw.items():
            if task == "pt":
                splits[name] = (group_texts if group else tokenize_rows)(
                    split, tokenizer, text_field=text_field, max_length=max_length, insert_eos=insert_eos,
                    num_proc=num_proc, source=spec.source,
                )
            else:
                splits[name] = format_sft(split, tokenizer, max_length=max_length, num_proc=num_proc, source=spec.source)
        prepared.append(type(raw)(splits))
    result = _concatenate(prepared)
    if not streaming:
        logger.info("Prepared %s", ", ".join(f"{name}: {len(split)} examples" for name, split in result.items()))
        if len(result["train"]) == 0:
            raise ValueError(f"{dataset_args}: no training examples left after preparation; check --max_length and the data.")
    return result


__all__ = [
    "DatasetSpec",
    "parse_dataset_args",
    "folder_data_files",
    "load_splits",
    "check_rows",
    "group_texts",
    "tokenize_rows",
    "sft_messages",
    "tokenize_conversation",
    "format_sft",
    "prepare_datasets",
]
