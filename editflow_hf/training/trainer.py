"""`EditFlowTrainer`: `transformers.Trainer` with the Edit Flow collator and loss.

    trainer = EditFlowTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                              processing_class=tokenizer)
    trainer.train()
    trainer.save_model("out/checkpoint-final")   # weights, config, remote code, pipeline file, tokenizer

The collator (`EditFlowCollator`, run inside the DataLoader workers) draws t, x0 and x_t and lists the remaining
edits; the loss (`EditFlowLoss`) is, per sequence divided by len(x1),

    w(t) * sum_positions (sub_rate + del_rate + ins_rate)  -  w(t) * sum_edits [log rate + log p(token)].

Both use the same kappa scheduler, which is also written into `model.config` so that sampling uses it too.

Exact resume. Every training row reaches the collator with a draw key (seed, epoch, row index) (`KeyedDraws`)
and the collator seeds each batch's t, x0 and x_t from its rows' keys: the draws are a pure function of the
data order, which the Trainer restores on resume. A run resumed from checkpoint-N therefore ends with the same
weights as the run that was never interrupted, with nothing extra saved in the checkpoint and whatever the
number of DataLoader workers. The epoch lives in shared memory, set at every epoch start, so persistent
workers read the current one.
"""

import copy
import logging
import math
import re
import shutil
from dataclasses import fields, is_dataclass
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, has_length

from ..checkpoints.saving import apply_umask, folder_bytes, save_failure_message, tensor_bytes, write_failure
from ..errors import EditFlowError
from ..modeling.scheduling_editflow import get_scheduler
from ..objective.loss import EditFlowLoss
from ..path.collator import DRAW_KEY, EditFlowCollator
from .args import EditFlowTrainingArguments

logger = logging.getLogger(__name__)

_EDIT_FLOW_DEFAULTS = {f.name: f.default for f in fields(EditFlowTrainingArguments) if f.name in (
    "x0_sampler", "scheduler_cls", "scheduler_kwargs", "max_w", "time_epsilon", "tie_break", "path", "lambda_prop",
    "time_conditioning", "prefix_conditioning", "prefix_drop_prob",
)}
# The paper's recipe options the trainer writes into model.config (besides the scheduler, x0 sampler, tie-break).
# The training recipe the trainer writes into model.config (what sampling, eval and the card read back); the LoRA
# merge copies the same fields onto the reloaded base model, so a merged checkpoint records what a full one does.
RECIPE_CONFIG_FIELDS = (
    "scheduler", "scheduler_kwargs", "x0_sampler", "tie_break", "time_conditioning", "path", "lambda_prop",
    "prefix_conditioning",
)  # fmt: skip


# What counts as a secret in saved arguments: transformers' rule (a field named `*_token` is a credential; its
# to_dict() hides those), names that say so, and any string holding a Hugging Face access token.
_SECRET_NAME = re.compile(r"(_token|secret|password|passwd|api_key|apikey|credentials?)$", re.IGNORECASE)
_HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")
_NUMBERED = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-\d+$")


def is_secret(name: str, value) -> bool:
    """Whether an argument `name` = `value` is a credential that must never be written to disk."""
    return isinstance(value, str) and bool(value) and (bool(_SECRET_NAME.search(name)) or bool(_HF_TOKEN.search(value)))


def redact_secrets(values: dict) -> dict:
    """`values` with every credential (`is_secret`) replaced by None."""
    return {name: None if is_secret(name, value) else value for name, value in values.items()}


def redacted_training_args(args):
    """A shallow copy of the TrainingArguments with every credential (e.g. `hub_token`) set to None: what the
    Trainer pickles into training_args.bin, so that no checkpoint ever holds the token."""
    secrets = [f.name for f in fields(args) if is_secret(f.name, getattr(args, f.name, None))]
    if not secrets:
        return args
    redacted = copy.copy(args)
    for name in secrets:
        setattr(redacted, name, None)
    return redacted


def _scalar_components(output) -> dict[str, torch.Tensor]:
    """The scalar tensors of a loss output other than `loss` (e.g. the survival and edit terms), detached."""
    if is_dataclass(output):
        items = ((f.name, getattr(output, f.name)) for f in fields(output))
    elif isinstance(output, dict):
        items = output.items()
    else:
        return {}
    return {
        name: value.detach().float().reshape(())  # a one-element [1] (some batches) and a [] both become []
        for name, value in items
        if name != "loss" and isinstance(value, torch.Tensor) and value.numel() == 1
    }


class KeyedDraws(torch.utils.data.Dataset):
    """A map-style training dataset whose rows carry `DRAW_KEY` = (seed, epoch, row index), the seed of the
    collator's draws for that row. `epoch` is a shared-memory tensor, so DataLoader workers see its updates."""

    def __init__(self, dataset, seed: int, epoch: torch.Tensor):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _keyed(self, row, index) -> dict:
        return {**row, DRAW_KEY: (self.seed, int(self.epoch), int(index))}

    def __getitem__(self, index) -> dict:
        return self._keyed(self.dataset[index], index)

    def __getitems__(self, indices: list) -> list[dict]:
        if hasattr(self.dataset, "__getitems__"):
            rows = self.dataset.__getitems__(indices)
        else:
            rows = [self.dataset[index] for index in indices]
        return [self._keyed(row, index) for row, index in zip(rows, indices)]


class _DrawEpochCallback(TrainerCallback):
    """Sets the epoch of the draw keys when an epoch begins (floor of state.epoch: a resumed run restarts
    inside epoch floor(global_step / steps_per_epoch), the one the uninterrupted run was in)."""

    def __init__(self, epoch: torch.Tensor):
        self.epoch = epoch

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.epoch.fill_(math.floor((state.epoch or 0.0) + 1e-9))


class EditFlowTrainer(Trainer):
    """Trainer for `EditFlowForEditing` on features `{"input_ids": x1, "prompt_len": p}`.

    The Edit Flow options (`x0_sampler`, `scheduler_cls`, `scheduler_kwargs`, `max_w`, `time_epsilon`,
    `tie_break`, and the paper's `path`, `lambda_prop`, `time_conditioning`, `prefix_conditioning`,
    `prefix_drop_prob`) come from `args` when it is an `EditFlowTrainingArguments`, else their defaults. A custom
    `data_collator` (returning an `EditFlowBatch`) or `loss_fn` (callable `(model_outputs, batch) -> output with
    .loss`) replaces the default one. Each step the trainer runs `model(**batch.model_inputs())` (x_t, t and the
    token-logit rows the edits need) and hands the outputs and the batch to the loss.

    The loss output's other scalar fields are summed on the device at every step (no sync) and logged as their
    mean over the logging window, averaged over processes in one reduction at logging time (`eval_` prefix in
    evaluation).

    With the Edit Flow collator, training rows carry a draw key (see `KeyedDraws`): their draws depend only on
    (seed, epoch, row index), which makes a resumed run bit-identical to an uninterrupted one."""

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
                path=options["path"],
                lambda_prop=options["lambda_prop"],
                prefix_conditioning=options["prefix_conditioning"],
                prefix_drop_prob=options["prefix_drop_prob"],
            )
        if loss_fn is None:
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
        if options["time_conditioning"] and model is not None and not getattr(model.config, "time_conditioning", False):
            if hasattr(model, "peft_config"):  # its new embedding would not be trained: enable before wrapping
                raise ValueError(
                    "--time_conditioning True: call model.enable_time_conditioning() before wrapping the model with "
                    "LoRA (the training command does)."
                )
            model.enable_time_conditioning()
        if model is not None and hasattr(model, "config"):
            # Sampling reads the scheduler from the config: it must be the one the model is trained with.
            model.config.scheduler = self.kappa_scheduler.name
            model.config.scheduler_kwargs = scheduler_kwargs
            # Recorded so that evaluation uses the same coupling and the pipeline knows whether it learned to edit.
            if isinstance(data_collator, EditFlowCollator):
                model.config.x0_sampler = data_collator.x0_sampler.spec
                model.config.tie_break = data_collator.tie_breaks_by_regime
                model.config.path = data_collator.path
                model.config.lambda_prop = data_collator.lambda_prop
                model.config.prefix_conditioning = (
                    {"drop_prob": data_collator.prefix_drop_prob} if data_collator.prefix_conditioning else None
                )
        self._component_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._component_counts = {"train": 0, "eval": 0}
        super().__init__(model=model, args=args, data_collator=data_collator, processing_class=processing_class, **kwargs)
        self._draw_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.add_callback(_DrawEpochCallback(self._draw_epoch))
        # compute_loss returns a per-batch mean: the Trainer divides it by the gradient accumulation steps.
        self.loss_is_scaled_for_ga = False

    def _save(self, output_dir=None, state_dict=None):
        """The Trainer's save (model, tokenizer, training_args.bin) with the credentials taken out of the
        arguments it pickles (`redacted_training_args`): the token never reaches the disk, not even briefly."""
        args = self.args
        self.args = redacted_training_args(args)
        try:
            saved = super()._save(output_dir, state_dict=state_dict)
        finally:
            self.args = args
        apply_umask(output_dir or self.args.output_dir)  # model.safetensors: the user's umask, as every other file
        return saved

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint-N save; when a write fails (a full disk above all) the partial checkpoint-N is
        removed, so that it neither holds the space nor gets resumed from, the earlier checkpoints are left as they
        are (rotation runs only after a complete save), and an EditFlowError says in one line what the save needs."""
        run_dir = Path(self._get_output_dir(trial=trial))
        folder = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:
            reason = write_failure(err)
            if reason is None:
                raise
            numbered = [p for p in run_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p != folder and p.is_dir() and _NUMBERED.match(p.name)]
            earlier = [p.name for p in sorted(numbered, key=lambda p: int(p.name.rpartition("-")[2]))]
            needed = max([folder_bytes(run_dir / name) for name in earlier] or [self.checkpoint_bytes()])
            if self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)
            if earlier:
                after = (f"the partial {folder.name} was removed and {', '.join(earlier)} kept as they were; free the space, "
                         "then continue with --resume_from_checkpoint True.")  # fmt: skip
            else:
                after = f"the partial {folder.name} was removed; free the space and run again."
            raise EditFlowError(save_failure_message(folder, reason, needed, after)) from None

    def checkpoint_bytes(self, with_training_state: bool = True) -> int:
        """About the bytes a checkpoint of this run takes: the weights, and with `with_training_state` the optimizer
        state (unless --save_only_model), plus a margin for the tokenizer, config and code files."""
        total = tensor_bytes(self.accelerator.unwrap_model(self.model).state_dict())
        if with_training_state and not self.args.save_only_model and self.optimizer is not None:
            total += tensor_bytes(self.optimizer.state_dict().get("state", {}))
        return total + (16 << 20)

    def get_train_dataloader(self):
        """The Trainer's training DataLoader over the rows keyed for the collator (`KeyedDraws`), for a map-style
        dataset and the Edit Flow collator; otherwise the Trainer's own."""
        dataset = self.train_dataset
        keyable = has_length(dataset) and not isinstance(dataset, torch.utils.data.IterableDataset)
        if not keyable or not isinstance(self.data_collator, EditFlowCollator):
            return super().get_train_dataloader()
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        self.train_dataset = KeyedDraws(dataset, seed, self._draw_epoch)
        try:
            return super().get_train_dataloader()
        finally:
            self.train_dataset = dataset

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        output = self.loss_fn(model(**inputs.model_inputs()), inputs)
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


__all__ = ["EditFlowTrainer", "KeyedDraws", "is_secret", "redact_secrets", "redacted_training_args"]
