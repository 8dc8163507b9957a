"""Checks a training run makes before it loads data or takes a step, so that a bad flag fails in a second with
one line instead of hours into the run (`preflight`, called by `training/pt.py` and `training/sft.py`): the x0
sampler spec, the positions (`positions`), the output folder and resume (`output_dir`), the local dataset files
(`data.files`). The scheduler and its arguments are checked when the flags are parsed, in args.py."""

from ..data.files import scan_dataset_files
from ..errors import EditFlowError
from ..path.couplings import parse_x0_sampler
from .output_dir import check_output_dir, resolve_resume_on_every_rank
from .positions import check_positions


def preflight(task: str, model_config, data_args, training_args) -> str | None:
    """Every check that needs neither the data nor the model weights, cheapest first. Returns the checkpoint
    to resume from (see `resolve_resume_on_every_rank`), or None."""
    try:
        x0_sampler = parse_x0_sampler(training_args.x0_sampler)
    except ValueError as err:
        raise EditFlowError(f"--x0_sampler: {err}") from None
    check_positions(model_config, task, data_args.max_length, x0_sampler)
    resume = resolve_resume_on_every_rank(training_args)
    # `auto` with nothing complete to resume: this folder's own run starting over (its incomplete checkpoint-N
    # are overwritten as the run reaches them), not an earlier run to protect.
    auto = str(training_args.resume_from_checkpoint).strip().lower() == "auto"
    check_output_dir(
        training_args.output_dir,
        overwrite=bool(getattr(training_args, "overwrite_output_dir", False)),
        resuming=resume is not None or auto,
        is_main_process=training_args.process_index == 0,
    )
    scan_dataset_files(data_args.dataset_args, task, data_args.text_field)
    return resume
