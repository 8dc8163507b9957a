"""Checks a training run makes before it loads data or takes a step, so that a bad flag fails in a second with
one line instead of hours into the run (`preflight`, called by `training/pt.py` and `training/sft.py`):

- positions: the longest x_t the collator can build (`max_xt_length` for masks, `max_xt_length_any_coupling` for
  corrupted text and mixtures) against the encoder's position table;
- the x0 sampler spec (the scheduler and its arguments are checked when the flags are parsed, in args.py);
- the output folder: a run never replaces the checkpoints of an earlier one unless `--overwrite_output_dir`
  or `--resume_from_checkpoint` says so; `--resume_from_checkpoint True` resolves to the newest complete
  checkpoint of `--output_dir` (`resolve_resume_checkpoint`);
- local dataset files: empty files, undecodable bytes and malformed JSON rows, named by file and line
  (`scan_local_file`); missing fields and incomplete rows are checked by `data.check_rows` once loaded.
"""

import codecs
import json
import logging
import re
import shutil
from pathlib import Path

from ..checkpoints import discard_staging, weights_problem
from ..errors import EditFlowError
from ..path.couplings import parse_x0_sampler
from .data import parse_dataset_args

logger = logging.getLogger(__name__)

FINAL_CHECKPOINT = "checkpoint-final"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_TRUE_WORDS = {"true", "yes", "1"}
_FALSE_WORDS = {"false", "no", "0", ""}
# Escaped UTF-16 surrogates in a JSON line: a pair is one character, a lone one cannot be encoded (checked then).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SCAN_CHUNK = 1 << 20


# --- positions ----------------------------------------------------------------------------------------------


def max_xt_length(task: str, max_length: int, max_masks: int) -> int:
    """The longest x_t the collator can build from an example of at most `max_length` tokens (BOS included)
    and an x0 of at most `max_masks` masks.

    Why: the alignment of x0 = x1[:p] + N masks with x1 (`alignment.align_masks`) has the p prompt columns and
    one block of max(N, M) columns, M = len(x1) - p, in which the longer side fills every column; so no column
    is blank on both sides and there are exactly p + max(N, M) = max(len(x0), len(x1)) columns. x_t is z_t
    without blanks and each column of z_t is that column of z0 or of z1, so len(x_t) <= max(len(x0), len(x1)).
    The bound is reached: with N >= M by z_t = z0 (t near 0), with N < M by z_t taking z1 in every insertion
    column (t near 1). Hence the largest x_t is max(len(x0), len(x1)) maximised over the data:
      pt:  p = 1 (BOS), len(x1) <= max_length, len(x0) = 1 + N           -> max(max_length, 1 + N_max)
      sft: p <= max_length - 1 (format_sft drops rows whose prompt fills max_length), len(x1) <= max_length,
           len(x0) = p + N <= max_length - 1 + N_max                      -> max(max_length, max_length - 1 + N_max)
    """
    longest_prompt = 1 if task == "pt" else max_length - 1
    return max(max_length, longest_prompt + max_masks)


def max_xt_length_any_coupling(task: str, max_length: int, x0_sampler) -> int:
    """A bound on len(x_t) for any coupling (corrupted text, mixtures), from `x0_sampler.max_x0_len`.

    Why: after the matched prefix (BOS, prompt: p tokens) the collator's alignment of a and b tokens is a minimum
    edit alignment, so its deletion and insertion columns D + I are at most its cost, at most max(a, b). Its
    columns number a + I = b + D, i.e. (a + b + D + I) / 2 <= (a + b + max(a, b)) / 2, and x_t has at most one
    token per column. With b = n x1 tokens after the prompt and a <= max_x0_len(n), maximised over the split of
    --max_length between prompt and answer (pt: p = 1; sft: p + n <= max_length).
    """

    def bound(prompt: int, n: int) -> int:
        a = x0_sampler.max_x0_len(n)
        return prompt + (a + n + max(a, n)) // 2

    if task == "pt":
        return max(bound(1, n) for n in range(max_length))
    return max(bound(max_length - n, n) for n in range(max_length))


def encoder_positions(config) -> int | None:
    """The number of positions the encoder can embed (an EditFlowConfig or a plain encoder config): the model's one
    position rule, `encoder_max_positions` (RoBERTa's offset applied), or None when the config does not say."""
    from ..modeling.configuration_editflow import encoder_max_positions

    return encoder_max_positions(getattr(config, "encoder_config", None) or config)


def check_positions(config, task: str, max_length: int, x0_sampler) -> None:
    """EditFlowError when the longest x_t (`max_xt_length`) exceeds the encoder's positions; the message gives
    the largest --max_length that fits."""
    if max_length < 2:
        raise EditFlowError(f"--max_length must be at least 2 (BOS and one token); got {max_length}.")
    positions = encoder_positions(config)
    if positions is None:
        return
    if not x0_sampler.masks_only:
        _check_positions_any_coupling(task, max_length, x0_sampler, positions)
        return
    max_masks = x0_sampler.max_masks
    longest = max_xt_length(task, max_length, max_masks)
    if longest <= positions:
        return
    if task == "pt":
        why = f"--max_length {max_length}" if max_length >= 1 + max_masks else f"BOS + {max_masks} masks of {x0_sampler.spec}"
        fixes = [f"lower --max_length to {positions}"] if max_length > positions else []
        if 1 + max_masks > positions:
            fixes.append(f"use at most {positions - 1} masks in --x0_sampler")
    else:
        why = f"a prompt of up to --max_length - 1 = {max_length - 1} tokens followed by {max_masks} masks of {x0_sampler.spec}"
        fitting = positions + 1 - max(1, max_masks)
        fixes = [f"lower --max_length to {fitting}"] if fitting >= 2 else []
        fixes.append("use fewer masks in --x0_sampler")
    raise EditFlowError(
        f"x_t can reach {longest} tokens ({why}) but the encoder has only {positions} positions; {' or '.join(fixes)}."
    )


def _check_positions_any_coupling(task: str, max_length: int, x0_sampler, positions: int) -> None:
    longest = max_xt_length_any_coupling(task, max_length, x0_sampler)
    if longest <= positions:
        return
    low, high = 1, max_length  # the bound grows with --max_length: the largest that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if max_xt_length_any_coupling(task, middle, x0_sampler) <= positions else (low, middle - 1)
    fix = f"lower --max_length to {low}" if low >= 2 else "use a backbone with more positions"
    raise EditFlowError(
        f"x_t can reach {longest} tokens (--max_length {max_length}, x0 from {x0_sampler.spec} interleaved with x1 "
        f"by the alignment) but the encoder has only {positions} positions; {fix}."
    )


# --- output folder and resume -------------------------------------------------------------------------------


def checkpoint_problem(folder) -> str | None:
    """Why `folder` cannot be resumed from (missing, or not completely saved), or None when it is complete:
    config.json, readable safetensors weights and a trainer_state.json."""
    folder = Path(folder)
    if not folder.is_dir():
        return "it does not exist"
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is unreadable"
    if not (folder / "config.json").is_file():
        return "config.json is missing"
    return weights_problem(folder)


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


# --- local dataset files ------------------------------------------------------------------------------------


def _check_utf8(path: Path) -> None:
    """Decode the file in chunks; EditFlowError naming the line of the first undecodable byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                line = lines_before + chunk.count(b"\n", 0, max(err.start, 0)) + 1
                raise EditFlowError(f"{path} line {line}: not UTF-8 text (byte {chunk[err.start]:#04x}); save the file as UTF-8.") from None
            lines_before += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise EditFlowError(f"{path}: ends in the middle of a UTF-8 character; save the file as UTF-8.") from None


def _json_row_problem(raw: bytes) -> str | None:
    try:
        row = json.loads(raw)
    except UnicodeDecodeError as err:
        return f"not UTF-8 text (byte {raw[err.start]:#04x})"
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err.msg}, column {err.colno})"
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object {{\"field\": value, ...}}"
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return "a string holds a lone UTF-16 surrogate escape (\\udXXX without its pair)"
    return None


def _scan_json_lines(path: Path) -> int:
    """Parse every non-blank line as a JSON object; return the number of rows."""
    rows = 0
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            problem = _json_row_problem(raw)
            if problem is not None:
                raise EditFlowError(f"{path} line {line_number}: {problem}; fix or remove that line.")
            rows += 1
    return rows


def scan_local_file(path) -> None:
    """Cheap checks of one local data file before the datasets library reads it (its own errors name neither
    file nor line): not empty; .txt/.csv decode as UTF-8; .jsonl (and JSON-lines .json) rows are JSON objects.
    EditFlowError naming the file and line of the first problem."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise EditFlowError(f"{path} is empty; pass a file with training data.")
    if suffix in (".txt", ".csv"):
        _check_utf8(path)
        return
    if suffix not in (".json", ".jsonl"):
        return
    if suffix == ".json":
        text = path.read_bytes()
        try:
            parsed = json.loads(text)
        except UnicodeDecodeError as err:
            line = text.count(b"\n", 0, err.start) + 1
            raise EditFlowError(f"{path} line {line}: not UTF-8 text; save the file as UTF-8.") from None
        except json.JSONDecodeError as err:
            if not err.msg.startswith("Extra data"):  # anything but "one JSON value per line"
                raise EditFlowError(f"{path} line {err.lineno}: not valid JSON ({err.msg}, column {err.colno}).") from None
        else:
            if isinstance(parsed, list) and not parsed:
                raise EditFlowError(f"{path} holds an empty list; pass a file with training data.")
            return
    if _scan_json_lines(path) == 0:
        raise EditFlowError(f"{path} has no rows (only blank lines); pass a file with training data.")


def scan_dataset_files(dataset_args: str) -> None:
    """`scan_local_file` for every local file of `--dataset_args`."""
    for spec in parse_dataset_args(dataset_args):
        path = Path(spec.source).expanduser()
        if path.is_file():
            scan_local_file(path)


# --- everything, in order -----------------------------------------------------------------------------------


def preflight(task: str, model_config, data_args, training_args) -> str | None:
    """Every check that needs neither the data nor the model weights, cheapest first. Returns the checkpoint
    to resume from (see `resolve_resume_checkpoint`), or None."""
    try:
        x0_sampler = parse_x0_sampler(training_args.x0_sampler)
    except ValueError as err:
        raise EditFlowError(f"--x0_sampler: {err}") from None
    check_positions(model_config, task, data_args.max_length, x0_sampler)
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    check_output_dir(
        training_args.output_dir,
        overwrite=bool(getattr(training_args, "overwrite_output_dir", False)),
        resuming=resume is not None,
        is_main_process=training_args.process_index == 0,
    )
    scan_dataset_files(data_args.dataset_args)
    return resume


__all__ = [
    "check_output_dir",
    "check_positions",
    "checkpoint_problem",
    "encoder_positions",
    "max_xt_length",
    "max_xt_length_any_coupling",
    "numbered_checkpoints",
    "preflight",
    "resolve_resume_checkpoint",
    "scan_dataset_files",
    "scan_local_file",
]
