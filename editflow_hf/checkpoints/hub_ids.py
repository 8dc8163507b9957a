"""A Hub repo id (`name` or `namespace/name`) told from a local path (`is_hub_id`)."""

from pathlib import Path


# Names ending like a data file are local files (e.g. --dataset_args data/qa.jsonl), never Hub repo ids.
DATA_FILE_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt", ".parquet", ".arrow"}


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
