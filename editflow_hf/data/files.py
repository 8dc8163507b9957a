"""Cheap checks of local dataset files before the datasets library reads them (its own errors name neither file
nor line): empty files, undecodable bytes and malformed JSON rows, named by file and line (`scan_local_file`);
missing fields and incomplete rows are checked by `prepare.check_rows` once loaded."""

import codecs
import json
import re
from pathlib import Path

from ..errors import EditFlowError
from .prepare import LOCAL_BUILDERS, folder_data_files, parse_dataset_args

# Escaped UTF-16 surrogates in a JSON line: a pair is one character, a lone one cannot be encoded (checked then).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SCAN_CHUNK = 1 << 20


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


# The roles of a chat row: those every chat template (editflow-convert's default among them) renders.
CHAT_ROLES = ("system", "user", "assistant")


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def row_meaning_problem(row: dict, task: str | None, text_field: str = "text") -> str | None:
    """Why a parsed row cannot mean what the task trains on, or None. pt: the text field, when set, is text (not a
    number or a list). sft: a `messages` row is a list of {role, content} turns with a role of `CHAT_ROLES`, a
    non-empty text content, and at least a user and an assistant turn; an alpaca row's instruction and output,
    when set, are non-empty text. Missing or null values are `prepare.check_rows`' (they may be dropped)."""
    if task == "pt":
        value = row.get(text_field)
        if value is not None and not isinstance(value, str):
            return f"{text_field!r} is {_short(value)}, not text; put the text in quotes"
        return None
    if task != "sft":
        return None
    messages = row.get("messages")
    if messages is not None:
        if not isinstance(messages, list):
            return f"'messages' is {_short(messages)}, not a list of {{\"role\", \"content\"}} turns"
        if not messages:
            return None
        for turn, message in enumerate(messages, 1):
            if not isinstance(message, dict):
                return f"turn {turn} of 'messages' is {_short(message)}, not an object {{\"role\", \"content\"}}"
            role, content = message.get("role"), message.get("content")
            if role not in CHAT_ROLES:
                return f"turn {turn} has role {_short(role)}; the roles are {', '.join(CHAT_ROLES)}"
            if not isinstance(content, str):
                return f"turn {turn} ({role}) has content {_short(content)}, not text"
            if not content.strip():
                return f"turn {turn} ({role}) is empty"
        roles = {message["role"] for message in messages}
        for needed in ("user", "assistant"):
            if needed not in roles:
                return f"the conversation has no {needed} turn (a row needs a user and an assistant turn)"
        return None
    for name in ("instruction", "output", "input"):
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return f"{name!r} is {_short(value)}, not text"
        if name != "input" and not value.strip():
            return f"{name!r} is empty"
    return None


def _scan_json_lines(path: Path, task: str | None = None, text_field: str = "text") -> int:
    """Parse every non-blank line as a JSON object whose values mean what `task` trains on
    (`row_meaning_problem`); return the number of rows."""
    rows = 0
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            problem = _json_row_problem(raw)
            if problem is None and task is not None:
                problem = row_meaning_problem(json.loads(raw), task, text_field)
            if problem is not None:
                raise EditFlowError(f"{path} line {line_number}: {problem}; fix or remove that line.")
            rows += 1
    return rows


def scan_local_file(path, task: str | None = None, text_field: str = "text") -> None:
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
            rows = parsed if isinstance(parsed, list) else []
            for index, row in enumerate(rows):
                problem = row_meaning_problem(row, task, text_field) if isinstance(row, dict) else None
                if problem is not None:
                    raise EditFlowError(f"{path} row {index + 1}: {problem}; fix or remove that row.")
            return
    if _scan_json_lines(path, task, text_field) == 0:
        raise EditFlowError(f"{path} has no rows (only blank lines); pass a file with training data.")


def scan_dataset_files(dataset_args: str, task: str | None = None, text_field: str = "text") -> None:
    """`scan_local_file` for every local file of `--dataset_args`, and for every data file of a local folder, of
    every format (a folder mixing formats, e.g. a .txt beside a .jsonl, is checked file by file, then refused:
    datasets would read one format and leave the other files out unsaid)."""
    for spec in parse_dataset_args(dataset_args):
        path = Path(spec.source).expanduser()
        if path.is_file():
            scan_local_file(path, task, text_field)
        elif path.is_dir():
            every = folder_data_files(path, every_format=True)
            for file in every:
                scan_local_file(file, task, text_field)
            kinds = sorted({LOCAL_BUILDERS[file.suffix.lower()] for file in every})
            if len(kinds) > 1:
                examples = ", ".join(f"{next(f.relative_to(path) for f in every if LOCAL_BUILDERS[f.suffix.lower()] == kind)}" for kind in kinds)
                raise EditFlowError(
                    f"{path} mixes data formats ({', '.join(kinds)}: e.g. {examples}) and datasets reads one format per "
                    "folder, leaving the other files out; put each format in its own folder and pass them joined by |."
                )
