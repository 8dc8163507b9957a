"""Record one benchmark run as data: run the command, keep its closing JSON line in benchmarks/results/.

    python benchmarks/record.py -- python benchmarks/startup.py --runs 5
    python benchmarks/record.py -- python benchmarks/sample.py --modes eager

The command's output streams through as usual; its last non-empty stdout line must be a JSON object carrying
`"provenance"` (date, machine, commit, command, versions: benchmarks/provenance.py), as every benchmark's is. It is
written to `benchmarks/results/{benchmark}-{YYYY-MM-DD}-{short commit}[-N].json` (`-N` when that name is taken; a
file is never overwritten), the benchmark being the script's name. Then run `python benchmarks/summary.py` to
regenerate benchmarks/SUMMARY.md (tests/test_benchmark_results.py fails until it is).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REQUIRED = ("date", "machine", "commit", "command", "versions")


def closing_record(stdout: str) -> dict:
    """The last non-empty line of `stdout` as a JSON object with complete provenance (ValueError if it is not)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the command printed nothing on stdout")
    try:
        record = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise ValueError(f"its last stdout line is not JSON ({error}): {lines[-1][:200]!r}") from None
    if not isinstance(record, dict) or not isinstance(record.get("provenance"), dict):
        raise ValueError("its last stdout line is JSON without a \"provenance\" object")
    missing = [key for key in REQUIRED if not record["provenance"].get(key)]
    if missing:
        raise ValueError(f"its provenance lacks {missing} (a commit needs the command run in a git checkout)")
    return record


def benchmark_name(command: list[str]) -> str:
    """The benchmark a command runs: the stem of its first `*.py` argument (`python benchmarks/sample.py` -> sample)."""
    scripts = [Path(arg).stem for arg in command if arg.endswith(".py")]
    if not scripts:
        raise ValueError(f"no *.py script in the command {command}: name the benchmark with --name")
    return scripts[0]


def result_path(benchmark: str, record: dict, results: Path = RESULTS) -> Path:
    """`{benchmark}-{YYYY-MM-DD}-{short commit}[-N].json`, the first such name not yet taken."""
    date = record["provenance"]["date"][:10]
    commit = re.match(r"[0-9a-f]{7}", record["provenance"]["commit"])
    if not commit:
        raise ValueError(f"its provenance's commit {record['provenance']['commit']!r} is not a commit hash")
    stem = f"{benchmark}-{date}-{commit.group()}"
    path, n = results / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = results / f"{stem}-{n}.json"
    return path


def write(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x") as handle:  # "x": never overwrite a recorded run
        handle.write(json.dumps(record, indent=1) + "\n")


def run(command: list[str]) -> tuple[int, str]:
    """Run `command`, echoing its stdout as it comes (stderr is not captured); return its exit status and stdout."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    return proc.wait(), "".join(lines)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default=None, help="Benchmark name in the file name (default: the script's stem).")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Folder of result files (default: benchmarks/results).")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="The benchmark command, after `--`.")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the benchmark command after `--`, e.g. -- python benchmarks/startup.py --runs 5")
    try:
        name = args.name or benchmark_name(command)
    except ValueError as error:
        parser.error(str(error))
    status, stdout = run(command)
    if status:
        sys.exit(f"record.py: the command exited with status {status}; nothing recorded")
    try:
        record = closing_record(stdout)
    except ValueError as error:
        sys.exit(f"record.py: {error}; nothing recorded")
    try:
        path = result_path(name, record, args.results)
    except ValueError as error:
        sys.exit(f"record.py: {error}; nothing recorded")
    write(record, path)
    print(f"record.py: wrote {path}; now run python benchmarks/summary.py", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
