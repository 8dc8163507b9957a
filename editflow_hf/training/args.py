"""Command-line arguments of the training scripts (`training/pt.py`, `training/sft.py`), for `HfArgumentParser`.

    parser = HfArgumentParser((ModelArguments, DataArguments, EditFlowTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()

`EditFlowTrainingArguments` is `transformers.TrainingArguments` plus the Edit Flow options (x0 sampler, kappa
scheduler, weight clamp), so every Trainer flag (`--max_steps`, `--logging_steps`, `--push_to_hub`, ...) works.
"""

import json
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..modeling.scheduling_editflow import get_scheduler
from ..path.alignment import check_tie_break
from ..path.collator import TIE_BREAK_CHOICES
from ..path.couplings import DEFAULT_X0_SAMPLER
from ..path.localized import PATHS
from .dllm_compat import check_dllm_values


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={
            "help": "An Edit Flow checkpoint (editflow-convert output) or a plain encoder (e.g. "
            "answerdotai/ModernBERT-large), which is converted first into <output_dir>/converted."
        }
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow remote code of a plain encoder that is converted on the fly."}
    )
    dtype: str = field(
        default="float32",
        metadata={
            "help": "Weights' dtype at load (float32, bfloat16, float16, auto). float32 with --bf16 True (mixed "
            "precision) is the safe choice; dLLM loads bfloat16 weights."
        },
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel of the backbone (eager, sdpa, flash_attention_2, ...)."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "Quantise the backbone to 4 bits (bitsandbytes, CUDA only); use with --lora True."}
    )
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft) instead of every weight."})
    target_modules: str = field(
        default="all-linear",
        metadata={"help": "LoRA targets: all-linear (every Linear but the fully trained heads) or comma-separated names."},
    )
    lora_r: int = field(default=32, metadata={"aliases": ["--r"], "help": "LoRA rank (dLLM: --r)."})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    bias: str = field(default="none", metadata={"help": "LoRA bias: none, all or lora_only."})
    modules_to_save: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated modules trained fully beside the adapters, in addition to the heads that start "
            "fresh (always: the rate head, and token heads that are not copies of a pretrained head)."
        },
    )


@dataclass
class DataArguments:
    dataset_args: str = field(
        metadata={
            "help": "Hub dataset id (tatsu-lab/alpaca), local .txt/.json/.jsonl/.csv/.parquet file or folder, with an "
            "optional configuration `org/name:config` and split/size suffix `name[train:1000,test:100]`; several "
            "datasets joined with `|` are concatenated."
        }
    )
    text_field: str = field(default="text", metadata={"help": "Column holding the raw text (pt). A local .txt gives `text`."})
    insert_eos: bool = field(default=False, metadata={"help": "pt: put the EOS token after every document before grouping."})
    group_texts: bool = field(
        default=True,
        metadata={
            "help": "pt: concatenate the documents and cut the stream into blocks of --max_length (True), or train on "
            "one example per document (row, or line of a .txt), truncated at --max_length (False, as run_mlm's "
            "line_by_line): short texts keep their boundaries, as revision and short-text training need."
        },
    )
    max_length: int = field(default=512, metadata={"help": "Tokens per training example, BOS included."})
    streaming: bool = field(default=False, metadata={"help": "pt: stream the dataset (IterableDataset); needs --max_steps."})
    num_proc: int | None = field(
        default=None, metadata={"help": "Processes for datasets.map (default: several for large datasets, else one)."}
    )
    disable_caching: bool = field(default=False, metadata={"help": "Do not cache the results of datasets.map on disk."})
    truncation: str = field(
        default="right", metadata={"help": "sft: rows longer than --max_length are cut at the right (dLLM's `right`)."}
    )
    drop_tail: bool = field(
        default=False, metadata={"help": "pt: the stream's last, shorter block is kept (Edit Flows take any length)."}
    )
    mask_prompt_loss: bool = field(default=True, metadata={"help": "sft: the prompt is never edited (kept fixed in x0 and x_t)."})
    load_preprocessed_data: bool = field(
        default=False, metadata={"help": "Not needed: pass a saved-to-disk dataset folder to --dataset_args."}
    )
    drop_incomplete_rows: bool = field(
        default=False,
        metadata={
            "help": "Rows without what the task trains on (pt: a null text; sft: a missing or null output or "
            "instruction, or no messages) are refused by default, with their count and first row; True drops them "
            "with a warning."
        },
    )
    eval_split_size: float = field(
        default=0.01,
        metadata={
            "help": "When a dataset has no test split, hold out this fraction (< 1) or number (>= 1) of rows for "
            "evaluation, deterministically (seed=--data_seed or --seed); 0 holds out nothing."
        },
    )


    def __post_init__(self):
        check_dllm_values(self)


@dataclass
class EditFlowTrainingArguments(TrainingArguments):
    x0_sampler: str = field(
        default=DEFAULT_X0_SAMPLER,
        metadata={
            "help": "Source sequence x0: `masks[length:N]` (BOS + N masks), `masks[min:A,max:B]`, `empty` (BOS only), "
            "`corrupt[p:0.2]` (x1's tokens corrupted: learn to revise), `corrupt_words[p:0.3]` (whole words) or a "
            "mixture `0.5*masks[length:64] + 0.5*corrupt[p:0.2]`."
        },
    )
    scheduler_cls: str = field(
        default="linear",
        metadata={
            "help": "Kappa scheduler: linear, cubic or cosine (this project's), or dLLM's LinearKappaScheduler, "
            "CubicKappaScheduler, CosineKappaScheduler (dLLM's formulas and arguments)."
        },
    )
    scheduler_kwargs: dict | str | None = field(
        default=None, metadata={"help": 'Scheduler arguments as JSON, e.g. \'{"a": 2.0, "b": 0.5}\' for cubic.'}
    )
    max_w: float = field(default=20.0, metadata={"help": "Clamp of the loss weight w(t) = kappa'(t) / (1 - kappa(t))."})
    time_epsilon: float = field(default=1e-3, metadata={"help": "Training times are drawn from [0, 1 - time_epsilon)."})
    tie_break: str = field(
        default="auto",
        metadata={
            "help": "Where the x0/x1 alignment puts insertions/deletions among equally short alignments: auto (the "
            "measured default per regime: right for sft, left for pt; see benchmarks/RESULTS.md), left, right, spread or "
            "random."
        },
    )
    path: str = field(
        default="factorized",
        metadata={
            "help": "Probability path: factorized (each alignment column switches independently) or localized (the "
            "paper's appendix C.1: an edit propagates to its neighbours at rate --lambda_prop; for long sequences)."
        },
    )
    lambda_prop: float = field(
        default=0.0,
        metadata={"help": "Propagation rate of --path localized: expected propagations per unit time on each side."},
    )
    time_conditioning: bool = field(
        default=False,
        metadata={"help": "Make the model read t (a learned, zero-initialised embedding of t added to its inputs), as the paper's models do."},
    )
    prefix_conditioning: bool = field(
        default=False,
        metadata={
            "help": "Pretraining: use the first 1 + floor(c^3 (len - 1)) tokens (c ~ U[0, 1]) of each text as its prompt, "
            "dropped for --prefix_drop_prob of the texts, so the model continues prompts and supports --guidance_scale."
        },
    )
    prefix_drop_prob: float = field(
        default=0.1, metadata={"help": "Share of texts left unconditional under --prefix_conditioning (paper: 0.1)."}
    )
    warmup_ratio: float | None = field(
        default=None,
        metadata={"help": "Warm-up as a fraction of the total steps (dLLM's flag; transformers 5 spells it --warmup_steps 0.1)."},
    )
    normalize_per_position: bool = field(
        default=True, metadata={"help": "Each sequence's loss is divided by len(x1) (dLLM's default; False is refused)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an --output_dir that holds checkpoints of an earlier run (refused without it or "
            "--resume_from_checkpoint): its checkpoint-N folders are removed at the start, its checkpoint-final "
            "is replaced when the new one is saved."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        check_dllm_values(self)
        if self.warmup_ratio is not None:
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"--warmup_ratio must be in [0, 1); got {self.warmup_ratio}.")
            if self.warmup_steps:
                raise ValueError("Give either --warmup_ratio or --warmup_steps, not both.")
            self.warmup_steps = self.warmup_ratio
        if isinstance(self.scheduler_kwargs, str):
            try:
                self.scheduler_kwargs = json.loads(self.scheduler_kwargs)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"--scheduler_kwargs must be a JSON object such as '{{\"a\": 2.0, \"b\": 0.5}}'; got "
                    f"{self.scheduler_kwargs!r} ({err})."
                ) from None
        self.scheduler_kwargs = dict(self.scheduler_kwargs or {})
        # Fail at parse time on a bad name or bad arguments, not after the data has been prepared.
        self.scheduler_cls = get_scheduler(self.scheduler_cls, **self.scheduler_kwargs).name
        check_tie_break(self.tie_break, TIE_BREAK_CHOICES, name="--tie_break")
        if self.max_w <= 0:
            raise ValueError(f"--max_w must be positive; got {self.max_w}.")
        if not 0 <= self.time_epsilon < 1:
            raise ValueError(f"--time_epsilon must be in [0, 1); got {self.time_epsilon}.")
        if self.path not in PATHS:
            raise ValueError(f"--path must be one of {', '.join(PATHS)}; got {self.path!r}.")
        if not self.lambda_prop >= 0 or (self.lambda_prop > 0 and self.path != "localized"):
            raise ValueError(f"--lambda_prop must be >= 0 and needs --path localized; got {self.lambda_prop} with --path {self.path}.")
        if not 0 <= self.prefix_drop_prob <= 1:
            raise ValueError(f"--prefix_drop_prob must be in [0, 1]; got {self.prefix_drop_prob}.")


__all__ = ["ModelArguments", "DataArguments", "EditFlowTrainingArguments"]
