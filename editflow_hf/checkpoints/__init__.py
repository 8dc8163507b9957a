"""Model folders on disk: written atomically, checked before they are trusted, and Hub ids told from paths.

- `saving`: atomic writes (`atomic_folder`, `staging_path` + `commit_folder`) and saves that fail (a full disk told
  apart, the room a save needs: `write_failure`, `save_failure_message`).
- `config_checks`: a parsed config.json before any class is built (`config_problem`: types, ids, `auto_map` only at
  the Edit Flow code; `size_problem`: sizes against the memory and the weights' headers).
- `folder_checks`: what a folder holds, without loading it (`weights_problem`, `model_folder_problem`, a complete
  Edit Flow repo `check_checkpoint`, a resumable checkpoint `checkpoint_problem`).
- `gate`: the commands' loading gate (`check_model_folder`, local or Hub) and `loading_errors`.
- `hub_ids`: `is_hub_id`, a Hub repo id or a local path.
- `names`: the file names of a model folder and the training arguments a run records.

Each name is defined in one of these modules; the public ones are importable from `editflow_hf.checkpoints` too.
"""

from .config_checks import EDITFLOW_CODE_REFS, config_problem, foreign_code, memory_bytes, min_parameters, size_problem
from .folder_checks import (
    check_checkpoint,
    check_sizes_and_settings,
    check_weights,
    checkpoint_problem,
    config_file_problem,
    generation_config_problem,
    model_folder_problem,
    read_json,
    required_code_files,
    tokenizer_files_present,
    weights_problem,
)
from .gate import check_model_folder, hub_config_check, loading_errors
from .hub_ids import DATA_FILE_SUFFIXES, is_hub_id
from .names import (
    CONFIG_NAME,
    PIPELINE_TASK,
    RECORDED_TRAINING_ARGS,
    TOKENIZER_VOCAB_FILES,
    TRAINING_ARGS_FILE,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)
from .saving import (
    DISK_FULL,
    apply_umask,
    atomic_folder,
    check_output_folder,
    commit_folder,
    discard_staging,
    folder_bytes,
    free_bytes,
    human_bytes,
    is_nonempty_dir,
    one_line,
    save_failure_message,
    staging_path,
    tensor_bytes,
    user_file_mode,
    write_failure,
)

__all__ = [
    "CONFIG_NAME",
    "DATA_FILE_SUFFIXES",
    "DISK_FULL",
    "EDITFLOW_CODE_REFS",
    "PIPELINE_TASK",
    "RECORDED_TRAINING_ARGS",
    "TOKENIZER_VOCAB_FILES",
    "TRAINING_ARGS_FILE",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "apply_umask",
    "atomic_folder",
    "check_checkpoint",
    "check_model_folder",
    "check_output_folder",
    "check_sizes_and_settings",
    "check_weights",
    "checkpoint_problem",
    "commit_folder",
    "config_file_problem",
    "config_problem",
    "discard_staging",
    "folder_bytes",
    "foreign_code",
    "free_bytes",
    "generation_config_problem",
    "human_bytes",
    "hub_config_check",
    "is_hub_id",
    "is_nonempty_dir",
    "loading_errors",
    "memory_bytes",
    "min_parameters",
    "model_folder_problem",
    "one_line",
    "read_json",
    "required_code_files",
    "save_failure_message",
    "size_problem",
    "staging_path",
    "tensor_bytes",
    "tokenizer_files_present",
    "user_file_mode",
    "weights_problem",
    "write_failure",
]
