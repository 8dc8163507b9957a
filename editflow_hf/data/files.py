"""Cheap checks of local dataset files before the datasets library reads them (its own errors name neither file
nor line): empty files, undecodable bytes and malformed JSON rows, named by file and line (`scan_local_file`);
missing fields and incomplete rows are checked by `prepare.check_rows` once loaded."""

import codecs
import json
import re
from pathlib import Path

from ..errors import EditFlowError
from .prepare import parse_dataset_args

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
