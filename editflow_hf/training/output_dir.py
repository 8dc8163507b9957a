"""The output folder of a training run: a run never replaces the checkpoints of an earlier one unless
`--overwrite_output_dir` or `--resume_from_checkpoint` says so (`check_output_dir`); `--resume_from_checkpoint
True` resolves to the newest complete checkpoint of `--output_dir`, `auto` to that or to a fresh start when there
is none (`resolve_resume_checkpoint`); every process must resolve the same (`resolve_resume_on_every_rank`)."""

import logging
import re
import shutil
from pathlib import Path

import torch.distributed as dist

from ..checkpoints.folder_checks import checkpoint_problem
from ..checkpoints.saving import discard_staging
from ..errors import EditFlowError
from ..flags import bool_word

logger = logging.getLogger(__name__)

FINAL_CHECKPOINT = "checkpoint-final"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def numbered_checkpoints(output_dir) -> list[Path]:
    """The checkpoint-N folders of `output_dir`, newest (largest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m[1]), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def newest_complete_checkpoint(output_dir) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint-N of `output_dir` (None if there is none), and the incomplete ones newer
    than it with what each lacks."""
    skipped = []
    for candidate in numbered_checkpoints(output_dir):
        problem = checkpoint_problem(candidate)
        if problem is None:
            return candidate, skipped
        skipped.append((candidate, problem))
    return None, skipped


def resolve_resume_checkpoint(resume, output_dir) -> str | None:
    """`--resume_from_checkpoint` as the Trainer needs it: None (no resume), or the path of a complete
    checkpoint. `True` takes the newest complete checkpoint-N of `output_dir`, saying which incomplete ones
    it skips; `auto` does the same but starts from scratch (None) when there is none, as a job that may have
    been preempted (or not yet started) needs; a path must be a complete checkpoint. EditFlowError (one line)
    otherwise."""
    if resume is None or resume is False:
        return None
    text = str(resume).strip()
    auto = text.lower() == "auto"
    if auto or resume is True or bool_word(text) is True:
        newest, skipped = newest_complete_checkpoint(output_dir)
        if newest is not None or auto:  # (True without one: the refusal below names them)
            for path, why in skipped:
                logger.warning("Skipping incomplete checkpoint %s (%s).", path, why)
        if newest is not None:
            if auto:
                logger.warning("--resume_from_checkpoint auto: resuming from %s.", newest)
            return str(newest)
        if auto:
            if (Path(output_dir) / FINAL_CHECKPOINT).exists():
                raise EditFlowError(
                    f"--resume_from_checkpoint auto: {output_dir} holds the {FINAL_CHECKPOINT} of a finished run and no "
                    "checkpoint-N to resume from; train it again with --overwrite_output_dir, or choose another --output_dir."
                )
            logger.warning("--resume_from_checkpoint auto: no complete checkpoint-N in %s; training from the start.", output_dir)
            return None
        incomplete = "; incomplete: " + ", ".join(f"{p.name} ({why})" for p, why in skipped) if skipped else ""
        raise EditFlowError(
            f"--resume_from_checkpoint True: {output_dir} holds no complete checkpoint-N to resume from{incomplete}; "
            "save them with --save_steps, pass auto to start afresh when there is none, or drop the flag."
        )
    if not text or bool_word(text) is False:
        return None
    problem = checkpoint_problem(text)
    if problem is not None:
        raise EditFlowError(
            f"--resume_from_checkpoint {text}: not a complete checkpoint ({problem}); pass another checkpoint-N "
            "folder, True for the newest complete one of --output_dir, or auto (that, or a fresh start if none)."
        )
    return text


def resolve_resume_on_every_rank(training_args) -> str | None:
    """`resolve_resume_checkpoint` on every process, checked to agree: all resume from the same checkpoint-N or
    all start afresh. A node that sees other files (an --output_dir that is not on a filesystem every node
    shares) would otherwise train from another step, and the run would diverge or hang at its end. A refusal on
    any process is raised on every process (none is left waiting in a collective)."""
    value = training_args.resume_from_checkpoint
    try:
        resume, problem = resolve_resume_checkpoint(value, training_args.output_dir), None
    except EditFlowError as err:
        resume, problem = None, str(err)
    if training_args.world_size > 1 and dist.is_available() and dist.is_initialized():
        seen = [None] * dist.get_world_size()
        dist.all_gather_object(seen, (Path(resume).name if resume else None, problem))
        problem = next((other for _, other in seen if other), None)
        if problem is None and len({name for name, _ in seen}) > 1:
            ranks = ", ".join(f"rank {rank}: {name or 'nothing'}" for rank, (name, _) in enumerate(seen))
            problem = (
                f"--resume_from_checkpoint {value}: the processes found different checkpoints to resume ({ranks}); "
                "put --output_dir on a filesystem every node shares."
            )
    if problem is not None:
        raise EditFlowError(problem)
    return resume


def check_output_dir(output_dir, *, overwrite: bool, resuming: bool, is_main_process: bool = True) -> None:
    """Refuse to train into a folder holding checkpoints of an earlier run unless resuming or `overwrite`.
    With `overwrite` (and not resuming) the main process removes the old checkpoint-N folders now (so that
    checkpoint rotation and a later `--resume_from_checkpoint True` never mix two runs); the old
    checkpoint-final stays until the new one replaces it. A staging folder of a crashed save is removed."""
    output_dir = Path(output_dir)
    old = numbered_checkpoints(output_dir)
    final = output_dir / FINAL_CHECKPOINT
    names = ([FINAL_CHECKPOINT] if final.exists() else []) + [p.name for p in old]
    if names and not resuming and not overwrite:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise EditFlowError(
            f"{output_dir} already holds {shown} of an earlier run; continue it with --resume_from_checkpoint True, "
            "replace it with --overwrite_output_dir, or choose another --output_dir."
        )
    if not is_main_process:
        return
    discard_staging(final)
    if overwrite and not resuming and old:
        logger.warning("--overwrite_output_dir: removing %d checkpoint-N folders of the earlier run in %s.", len(old), output_dir)
        for path in old:
            shutil.rmtree(path)
