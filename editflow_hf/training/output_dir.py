"""The output folder of a training run: a run never replaces the checkpoints of an earlier one unless
`--overwrite_output_dir` or `--resume_from_checkpoint` says so (`check_output_dir`); `--resume_from_checkpoint
True` resolves to the newest complete checkpoint of `--output_dir` (`resolve_resume_checkpoint`)."""

import logging
import re
import shutil
from pathlib import Path

from ..checkpoints import checkpoint_problem, discard_staging
from ..errors import EditFlowError

logger = logging.getLogger(__name__)

FINAL_CHECKPOINT = "checkpoint-final"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_TRUE_WORDS = {"true", "yes", "1"}
_FALSE_WORDS = {"false", "no", "0", ""}


def numbered_checkpoints(output_dir) -> list[Path]:
    """The checkpoint-N folders of `output_dir`, newest (largest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m[1]), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def resolve_resume_checkpoint(resume, output_dir) -> str | None:
    """`--resume_from_checkpoint` as the Trainer needs it: None (no resume), or the path of a complete
    checkpoint. `True` takes the newest complete checkpoint-N of `output_dir`, saying which incomplete ones
    it skips; a path must be a complete checkpoint. EditFlowError (one line) otherwise."""
    if resume is None or resume is False:
        return None
    text = str(resume).strip()
    if resume is True or text.lower() in _TRUE_WORDS:
        skipped = []
        for candidate in numbered_checkpoints(output_dir):
            problem = checkpoint_problem(candidate)
            if problem is None:
                for name, why in skipped:
                    logger.warning("Skipping incomplete checkpoint %s (%s).", name, why)
                return str(candidate)
            skipped.append((candidate, problem))
        incomplete = "; incomplete: " + ", ".join(f"{p.name} ({why})" for p, why in skipped) if skipped else ""
        raise EditFlowError(
            f"--resume_from_checkpoint True: {output_dir} holds no complete checkpoint-N to resume from{incomplete}; "
            "save them with --save_steps, or drop the flag to start from scratch."
        )
    if text.lower() in _FALSE_WORDS:
        return None
    problem = checkpoint_problem(text)
    if problem is not None:
        raise EditFlowError(
            f"--resume_from_checkpoint {text}: not a complete checkpoint ({problem}); pass another checkpoint-N "
            "folder, or True for the newest complete one of --output_dir."
        )
    return text


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
