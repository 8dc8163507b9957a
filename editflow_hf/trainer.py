"""`EditFlowTrainer`: `transformers.Trainer` with the Edit Flow collator and loss.

    trainer = EditFlowTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                              processing_class=tokenizer)
    trainer.train()
    trainer.save_model("out/checkpoint-final")   # weights, config, remote code, pipeline file, tokenizer

The collator (`EditFlowCollator`, run inside the DataLoader workers) draws t, x0 and x_t and lists the remaining
edits; the loss (`EditFlowLoss`) is, per sequence divided by len(x1),

    w(t) * sum_positions (sub_rate + del_rate + ins_rate)  -  w(t) * sum_edits [log rate + log p(token)].

Both use the same kappa scheduler, which is also written into `model.config` so that sampling uses it too.
"""

import json
import logging
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, Trainer, set_seed

from .args import DataArguments, EditFlowTrainingArguments, ModelArguments
from .collator import EditFlowCollator
from .convert import convert
from .data import prepare_datasets
from .hub import PushError, push_checkpoint
from .modeling.modeling_editflow import EditFlowForEditing
from .modeling.scheduling_editflow import get_scheduler

logger = logging.getLogger(__name__)

_EDIT_FLOW_DEFAULTS = {f.name: f.default for f in fields(EditFlowTrainingArguments) if f.name in (
    "x0_sampler", "scheduler_cls", "scheduler_kwargs", "max_w", "time_epsilon", "tie_break"
)}


def _scalar_components(output) -> dict[str, torch.Tensor]:
    """The scalar tensors of a loss output other than `loss` (e.g. the survival and edit terms), detached."""
    if is_dataclass(output):
        items = ((f.name, getattr(output, f.name)) for f in fields(output))
    elif isinstance(output, dict):
        items = output.items()
    else:
        return {}
    return {
        name: value.detach().float()
        for name, value in items
        if name != "loss" and isinstance(value, torch.Tensor) and value.numel() == 1
    }


class EditFlowTrainer(Trainer):
    """Trainer for `EditFlowForEditing` on features `{"input_ids": x1, "prompt_len": p}`.

    The Edit Flow options (`x0_sampler`, `scheduler_cls`, `scheduler_kwargs`, `max_w`, `time_epsilon`,
    `tie_break`) come from `args` when it is an `EditFlowTrainingArguments`, else their defaults. A custom
    `data_collator` or `loss_fn` (callable `(model, batch) -> output with .loss`) replaces the default one.

    The loss output's other scalar fields are summed on the device at every step (no sync) and logged as their
    mean over the logging window, averaged over processes in one reduction at logging time (`eval_` prefix in
    evaluation)."""

    def __init__(self, model=None, args=None, data_collator=None, *, loss_fn=None, processing_class=None, **kwargs):
        if args is None:
            raise ValueError("EditFlowTrainer needs `args` (EditFlowTrainingArguments with at least output_dir).")
        options = {name: getattr(args, name, default) for name, default in _EDIT_FLOW_DEFAULTS.items()}
        scheduler_kwargs = dict(options["scheduler_kwargs"] or {})
        self.kappa_scheduler = get_scheduler(options["scheduler_cls"], **scheduler_kwargs)
        if data_collator is None:
            if processing_class is None:
                raise ValueError("EditFlowTrainer needs the tokenizer as `processing_class` (or a `data_collator`).")
            data_collator = EditFlowCollator.from_tokenizer(
                processing_class,
                x0_sampler=options["x0_sampler"],
                scheduler=self.kappa_scheduler,
                time_epsilon=options["time_epsilon"],
                tie_break=options["tie_break"],
            )
        if loss_fn is None:
            from .loss import EditFlowLoss

            loss_fn = EditFlowLoss(scheduler=self.kappa_scheduler, max_w=options["max_w"])
        self.loss_fn = loss_fn
        # The collator's columns (t, edits, prompt_len) are not forward() arguments; the Trainer would drop them.
        if args.remove_unused_columns:
            logger.info("EditFlowTrainer: setting remove_unused_columns=False (the collator needs prompt_len).")
            args.remove_unused_columns = False
        # Every parameter gets a gradient at every step (the pooler is dropped, empty logit selections still
        # reach the heads), so DDP can skip its extra search for unused parameters.
        if getattr(args, "ddp_find_unused_parameters", None) is None:
            args.ddp_find_unused_parameters = False
        if model is not None and hasattr(model, "config"):
            # Sampling reads the scheduler from the config: it must be the one the model is trained with.
            model.config.scheduler = self.kappa_scheduler.name
            model.config.scheduler_kwargs = scheduler_kwargs
        self._component_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._component_counts = {"train": 0, "eval": 0}
        super().__init__(model=model, args=args, data_collator=data_collator, processing_class=processing_class, **kwargs)
        # compute_loss returns a per-batch mean: the Trainer divides it by the gradient accumulation steps.
        self.loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        output = self.loss_fn(model, inputs)
        phase = "train" if model.training else "eval"
        sums = self._component_sums[phase]
        for name, value in _scalar_components(output).items():
            sums[name] = sums[name] + value if name in sums else value
        self._component_counts[phase] += 1
        return (output.loss, output) if return_outputs else output.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation: the Edit Flow loss of the batch (at the collator's random t); no predictions."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _pop_component_means(self, phase: str) -> dict[str, float]:
        """Mean of each loss component since the last log, averaged over processes (one reduction for all)."""
        sums, count = self._component_sums[phase], self._component_counts[phase]
        if not sums or count == 0:
            return {}
        names = sorted(sums)
        means = torch.stack([sums[name] for name in names]).to(self.args.device) / count
        if self.accelerator.num_processes > 1:
            means = self.accelerator.reduce(means, reduction="mean")
        self._component_sums[phase], self._component_counts[phase] = {}, 0
        prefix = "" if phase == "train" else "eval_"
        return {prefix + name: round(value, 6) for name, value in zip(names, means.tolist())}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs.update(self._pop_component_means("train"))
        if "eval_loss" in logs:
            logs.update(self._pop_component_means("eval"))
        super().log(logs, start_time)


# The arguments worth recording next to the checkpoint (training_args.json, shown on the model card).
_RECORDED_ARGS = (
    "model_name_or_path", "dataset_args", "text_field", "insert_eos", "max_length", "num_train_epochs", "max_steps",
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "x0_sampler", "scheduler_cls",
    "scheduler_kwargs", "max_w", "time_epsilon", "seed",
)


class _CliError(Exception):
    """A user-facing failure of the training CLI: printed as one line, exit status `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _resolve_model_path(model_args, training_args) -> str:
    """An Edit Flow checkpoint as is; a plain encoder converted (on the first process of each node) into
    <output_dir>/converted, so `--model_name_or_path answerdotai/ModernBERT-large` works directly."""
    source = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError) as err:
        raise _CliError(f"--model_name_or_path {source}: cannot load a config ({str(err).splitlines()[0]}).") from None
    if config.model_type == "editflow":
        return source
    converted = Path(training_args.output_dir) / "converted"
    with training_args.main_process_first(desc="Edit Flow conversion"):
        if training_args.local_process_index == 0:
            logger.info("%s is a plain %s encoder: converting it to an Edit Flow model in %s.", source, config.model_type, converted)
            convert(source, converted, scheduler=training_args.scheduler_cls, trust_remote_code=model_args.trust_remote_code)
    return str(converted)


def _push(final_dir, model_args, training_args, prog: str) -> None:
    """Publish the saved checkpoint (its card reads the dataset and arguments from training_args.json beside it);
    a failure raises _CliError naming where the model is saved."""
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    later = f"push it later with `editflow-push {final_dir} --repo_id {repo_id}`"
    try:
        url = push_checkpoint(
            final_dir,
            repo_id,
            private=bool(training_args.hub_private_repo),
            token=training_args.hub_token,
            base_model=model_args.model_name_or_path,
        )
    except PushError as err:
        raise _CliError(f"push to the Hub failed: {err}. The trained model is saved at {final_dir}; {later}.", code=3) from None
    print(f"{prog}: pushed {final_dir} to {url}", flush=True)


def train_from_cli(task: str, argv: list[str] | None = None) -> int:
    """The body of `training/pt.py` (task "pt": raw text grouped into blocks) and `training/sft.py` (task "sft":
    alpaca / chat rows with a fixed prompt). Trains, saves <output_dir>/checkpoint-final (weights, tokenizer,
    remote code, trainer_state.json, training_args.json) before anything else, then pushes it if asked.
    Returns the exit status: 0, 2 for bad input, 3 for a failed push (the model is saved)."""
    prog = f"{task}.py"
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    parser = HfArgumentParser((ModelArguments, DataArguments, EditFlowTrainingArguments))
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    log_level = training_args.get_process_log_level()
    transformers.utils.logging.set_verbosity(log_level)
    # Our own progress lines (conversion, data preparation) on the logging process; warnings only elsewhere.
    logging.getLogger("editflow_hf").setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    # Keep the Trainer away from the Hub (it would create the repo at init and push at every save): the
    # checkpoint is saved locally first and pushed once at the end.
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False
    print(
        f"{prog}: rank {training_args.process_index} of world size {training_args.world_size} "
        f"(device {training_args.device})",
        flush=True,
    )

    try:
        if data_args.streaming and training_args.max_steps <= 0:
            raise _CliError("--streaming needs --max_steps (a streamed dataset has no length to count epochs by).")
        set_seed(training_args.seed)
        model_path = _resolve_model_path(model_args, training_args)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = EditFlowForEditing.from_pretrained(model_path, dtype=torch.float32)
        with training_args.main_process_first(desc="dataset preparation"):
            splits = prepare_datasets(
                task,
                data_args.dataset_args,
                tokenizer,
                text_field=data_args.text_field,
                max_length=data_args.max_length,
                insert_eos=data_args.insert_eos,
                streaming=data_args.streaming,
                num_proc=data_args.num_proc,
                eval_split_size=data_args.eval_split_size,
                seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
            )
        if training_args.eval_strategy != "no" and "test" not in splits:
            raise _CliError(
                f"--eval_strategy {training_args.eval_strategy} but {data_args.dataset_args} gives no evaluation data; "
                "add a split such as [train,test:100] or set --eval_split_size > 0."
            )
        trainer = EditFlowTrainer(
            model=model,
            args=training_args,
            train_dataset=splits["train"],
            eval_dataset=splits.get("test"),
            processing_class=tokenizer,
        )
    except (_CliError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return getattr(err, "code", 2)

    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    final_dir = Path(training_args.output_dir) / "checkpoint-final"
    trainer.save_model(str(final_dir))
    argument_values = {**vars(model_args), **vars(data_args), **training_args.to_dict()}
    pt_only = ("text_field", "insert_eos") if task == "sft" else ()
    recorded = {name: argument_values[name] for name in _RECORDED_ARGS if name in argument_values and name not in pt_only}
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(final_dir / "trainer_state.json"))
        (final_dir / "training_args.json").write_text(json.dumps(recorded, indent=2) + "\n")
        print(f"{prog}: saved the trained model to {final_dir}", flush=True)
        if push_requested:
            try:
                _push(final_dir, model_args, training_args, prog)
            except _CliError as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return err.code
    return 0


__all__ = ["EditFlowTrainer", "train_from_cli"]
