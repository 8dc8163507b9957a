"""The body of `training/pt.py` and `training/sft.py`: parse the flags, prepare model and data, train, save
<output_dir>/checkpoint-final, push it when asked."""

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import datasets
import transformers
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, set_seed

from ..conversion import convert
from ..hub.upload import push_checkpoint
from ..checkpoints.folder_checks import model_folder_problem
from ..checkpoints.gate import check_model_folder, loading_errors
from ..checkpoints.names import RECORDED_TRAINING_ARGS, TRAINING_ARGS_FILE
from ..checkpoints.saving import commit_folder, discard_staging, save_failure_message, staging_path, write_failure
from ..errors import EditFlowError, run_cli
from ..modeling.generation_editflow import EditFlowGenerationConfig, reserved_token_ids
from ..path.couplings import parse_x0_sampler
from ..registration import register
from .args import DataArguments, EditFlowTrainingArguments, ModelArguments
from .preflight import preflight
from ..data.prepare import prepare_datasets
from .numeric_flags import check_numeric_flags
from .checkpoint_io import check_final_save_possible, load_model_for_training, save_final_checkpoint
from .preemption import StopOnSignal, stopped_exit_code
from .run_lock import RunLock
from .trainer import EditFlowTrainer, redact_secrets

logger = logging.getLogger(__name__)

def _load_config(model_args):
    """The config of --model_name_or_path, after checking that a local folder holds a loadable model."""
    source = model_args.model_name_or_path
    check_model_folder(source)
    register()  # an Edit Flow checkpoint loads with this package's classes
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise EditFlowError(f"--model_name_or_path {source}: cannot load a config ({str(err).splitlines()[0]}).") from None


def _resolve_model_path(model_args, training_args, config) -> str:
    """An Edit Flow checkpoint as is; a plain encoder converted (on the first process of each node) into
    <output_dir>/converted, so `--model_name_or_path answerdotai/ModernBERT-large` works directly. A complete
    conversion left there by an earlier run of the same output_dir is reused unless --overwrite_output_dir."""
    source = model_args.model_name_or_path
    if config.model_type == "editflow":
        return source
    converted = Path(training_args.output_dir) / "converted"
    overwrite = training_args.overwrite_output_dir
    with training_args.main_process_first(desc="Edit Flow conversion"):
        if training_args.local_process_index == 0:
            if not overwrite and model_folder_problem(converted) is None:
                logger.info("Reusing the conversion of %s in %s.", source, converted)
            else:
                logger.info("%s is a plain %s encoder: converting it to an Edit Flow model in %s.", source, config.model_type, converted)
                convert(
                    source, converted, scheduler=training_args.scheduler_cls, trust_remote_code=model_args.trust_remote_code,
                    overwrite=overwrite,
                )  # fmt: skip
    return str(converted)


# The gain rule's margin a checkpoint trained only to revise records: the one that brought corrupted validation text
# closest without changing clean text (benchmarks/revision.py, benchmarks/RESULTS.md, issue 16 item 6).
REVISER_GAIN_MARGIN = 0.2


def save_generation_config(final_dir, source, task: str, x0_sampler) -> None:
    """Write the trained checkpoint's sampling defaults (generation_config.json): those of the checkpoint it
    started from, with `mask_length` = the x0 length it trained with (see `X0Sampler.sampling_mask_length`),
    `chat_template` = whether it was fine-tuned on chats (sft) or pretrained on raw text (pt), and for a model
    trained only to revise (`corrupt[...]`) `edit_rule="gain"` with `REVISER_GAIN_MARGIN`: tau-leaping integrates
    its false-alarm rates and rewrites clean text (benchmarks/RESULTS.md)."""
    try:
        start = EditFlowGenerationConfig.from_pretrained(source)
    except OSError:
        start = EditFlowGenerationConfig()
    sampler = parse_x0_sampler(x0_sampler)
    revising = dict(edit_rule="gain", gain_margin=REVISER_GAIN_MARGIN) if sampler.revises_only else {}
    start.updated(mask_length=sampler.sampling_mask_length, chat_template=task == "sft", **revising,
                  **_suppress_tokens(start, source)).save_pretrained(final_dir)  # fmt: skip


def _suppress_tokens(start: EditFlowGenerationConfig, source) -> dict:
    """`suppress_tokens` for a start checkpoint converted before they were recorded: its tokenizer's special and
    reserved entries (`reserved_token_ids`), so a trained model does not write them by default either."""
    if start.suppress_tokens is not None:
        return {}
    try:
        return {"suppress_tokens": reserved_token_ids(AutoTokenizer.from_pretrained(source))}
    except (OSError, ValueError):
        return {}


def _save_final(trainer, final_dir: Path, recorded: dict, model_path: str, model_args, task: str) -> None:
    """Save the trained model (`save_final_checkpoint`), its trainer state, recorded arguments and sampling defaults into a staging
    sibling of `final_dir`, renamed into place once complete (an existing checkpoint-final is replaced only then)."""
    staging = staging_path(final_dir)
    try:
        save_final_checkpoint(trainer, staging, model_path, model_args)  # every process (sharded models gather)
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():
            trainer.state.save_to_json(str(staging / "trainer_state.json"))
            (staging / TRAINING_ARGS_FILE).write_text(json.dumps(recorded, indent=2) + "\n")
            save_generation_config(staging, model_path, task, trainer.args.x0_sampler)
            commit_folder(staging, final_dir)
    except BaseException as err:  # a Ctrl-C too: no partial folder is left
        if trainer.is_world_process_zero():
            discard_staging(final_dir)
        if not isinstance(err, Exception):
            raise
        reason = None if isinstance(err, EditFlowError) else write_failure(err)
        if reason is None:
            raise
        kept = "the earlier checkpoint-final is kept" if final_dir.exists() else "nothing was written under that name"
        resumable = any(final_dir.parent.glob("checkpoint-[0-9]*"))
        after = f"{kept}; free the space, then " + ("finish with --resume_from_checkpoint True." if resumable else "run again.")
        raise EditFlowError(save_failure_message(final_dir, reason, trainer.checkpoint_bytes(with_training_state=False), after)) from None


def _push(final_dir, model_args, training_args, prog: str) -> None:
    """Publish the saved checkpoint (its card reads the dataset and arguments from training_args.json beside it);
    a failure raises EditFlowError naming where the model is saved."""
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
    except EditFlowError as err:
        raise EditFlowError(f"push to the Hub failed: {err}. The trained model is saved at {final_dir}; {later}.", code=3) from None
    print(f"{prog}: pushed {final_dir} to {url}", flush=True)


def train_from_cli(task: str, argv: list[str] | None = None) -> int:
    """See `_train_from_cli`; the output folder's lock (`RunLock`) is released however the run ends."""
    run_lock = RunLock()
    try:
        return _train_from_cli(task, argv, run_lock)
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (there it stops the run as SIGTERM does)
        print(f"{task}.py: interrupted (Ctrl-C); nothing half-written was kept", file=sys.stderr, flush=True)
        return stopped_exit_code("SIGINT")
    finally:
        run_lock.release()


@dataclass
class _Run:
    """A training run `_set_up` checked and prepared: its flags, its trainer and the checkpoint it resumes."""

    task: str
    model_args: ModelArguments
    data_args: DataArguments
    training_args: EditFlowTrainingArguments
    trainer: EditFlowTrainer
    model_path: str
    resume_from: str | bool | None
    push_requested: bool


def _train_from_cli(task: str, argv: list[str] | None, run_lock: RunLock) -> int:
    """The body of `training/pt.py` (task "pt": raw text grouped into blocks) and `training/sft.py` (task "sft":
    alpaca / chat rows with a fixed prompt). Trains, saves <output_dir>/checkpoint-final (weights, tokenizer,
    remote code, trainer_state.json, training_args.json) before anything else, then pushes it if asked.
    Returns the exit status: 0, 2 for bad input, 3 for a failed push (the model is saved)."""
    prog = f"{task}.py"
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    # Bad flags, data or model (ValueError, OSError): one line before any step.
    run = run_cli(prog, lambda: _set_up(task, prog, argv, run_lock))
    if not isinstance(run, _Run):
        return run
    # Once training starts only an EditFlowError is the user's to fix (a checkpoint that could not be saved, a failed
    # push); anything else is a bug, shown with its traceback.
    return run_cli(prog, lambda: _train_and_save(prog, run), catch=(EditFlowError,))


def _set_up(task: str, prog: str, argv: list[str] | None, run_lock: RunLock) -> _Run:
    """Parse the flags, check them, the model and the data, lock the output folder, load the model and the data
    and build the trainer: everything before the first step."""
    parser = HfArgumentParser((ModelArguments, DataArguments, EditFlowTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
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

    check_numeric_flags(model_args, data_args, training_args)
    if data_args.streaming and training_args.max_steps <= 0:
        raise EditFlowError("--streaming needs --max_steps (a streamed dataset has no length to count epochs by).")
    config = _load_config(model_args)
    resume_from = preflight(task, config, data_args, training_args)
    run_lock.acquire(training_args)  # one run per --output_dir: a second one is refused here, before any step
    set_seed(training_args.seed)
    if data_args.disable_caching:
        datasets.disable_caching()
    model_path = _resolve_model_path(model_args, training_args, config)
    with loading_errors(model_path):
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = load_model_for_training(model_path, model_args, time_conditioning=training_args.time_conditioning)
    splits = _datasets(task, data_args, training_args, tokenizer)
    trainer = EditFlowTrainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("test"),
        processing_class=tokenizer,
    )
    check_final_save_possible(trainer)
    return _Run(task, model_args, data_args, training_args, trainer, model_path, resume_from, push_requested)


def _datasets(task: str, data_args, training_args, tokenizer) -> dict:
    """The tokenized splits of --dataset_args (prepared on the main process first); EditFlowError when evaluation
    is asked for and there is no evaluation split."""
    with training_args.main_process_first(desc="dataset preparation"):
        splits = prepare_datasets(
            task,
            data_args.dataset_args,
            tokenizer,
            text_field=data_args.text_field,
            max_length=data_args.max_length,
            insert_eos=data_args.insert_eos,
            group=data_args.group_texts,
            streaming=data_args.streaming,
            num_proc=data_args.num_proc,
            eval_split_size=data_args.eval_split_size,
            seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
            drop_incomplete_rows=data_args.drop_incomplete_rows,
        )
    if training_args.eval_strategy != "no" and "test" not in splits:
        raise EditFlowError(
            f"--eval_strategy {training_args.eval_strategy} but {data_args.dataset_args} gives no evaluation data; "
            "add a split such as [train,test:100] or set --eval_split_size > 0."
        )
    return splits


def _train_and_save(prog: str, run: _Run) -> int:
    """Train (stopping at a signal with its exit status), save checkpoint-final and push it when asked; an
    EditFlowError for a checkpoint that could not be saved or a failed push."""
    trainer, training_args = run.trainer, run.training_args
    stop_on_signal = StopOnSignal()
    trainer.add_callback(stop_on_signal)
    trainer.train(resume_from_checkpoint=run.resume_from)  # EditFlowError: a checkpoint-N that could not be saved
    if stop_on_signal.stopped_by:
        if trainer.is_world_process_zero():
            print(
                f"{prog}: stopped by {stop_on_signal.stopped_by} at step {trainer.state.global_step} (checkpoint-"
                f"{trainer.state.global_step} saved in {training_args.output_dir}); continue with --resume_from_checkpoint auto",
                flush=True,
            )
        return stopped_exit_code(stop_on_signal.stopped_by)

    final_dir = Path(training_args.output_dir) / "checkpoint-final"
    argument_values = {**vars(run.model_args), **vars(run.data_args), **training_args.to_dict()}
    pt_only = ("text_field", "insert_eos", "group_texts") if run.task == "sft" else ()
    recorded = redact_secrets({name: argument_values[name] for name in RECORDED_TRAINING_ARGS if name in argument_values and name not in pt_only})
    _save_final(trainer, final_dir, recorded, run.model_path, run.model_args, run.task)
    if trainer.is_world_process_zero():
        print(f"{prog}: saved the trained model to {final_dir}", flush=True)
        if run.push_requested:
            _push(final_dir, run.model_args, training_args, prog)
    return 0


__all__ = ["train_from_cli"]
