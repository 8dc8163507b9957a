"""Choose the tests the quick subset (`-m "not slow"`) leaves out, from a measured run, and write tests/slow_tests.txt.

    python -m pytest -q -m "not slow" --durations=0 tests > durations.log
    python tests/measure_slow.py durations.log --budget 200       # seconds the quick subset may take, as measured

Each test's time is its setup + call + teardown as pytest's `--durations=0` report gives them. The slowest tests are
listed until the rest fit the budget; conftest.py marks every test listed there `slow` (the full run still runs
them all: CI's command has no `-m`). Tests marked `slow` in their own file are left out of the list.
"""

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

LIST = Path(__file__).with_name("slow_tests.txt")
LINE = re.compile(r"^\s*(?P<seconds>[\d.]+)s (?:setup|call|teardown)\s+(?P<nodeid>\S.*)$")
HEADER = """# Tests the quick subset (-m "not slow") leaves out: the slowest of a measured run, until the rest fit its budget.
# Made by `python tests/measure_slow.py DURATIONS.LOG --budget SECONDS` (see that file); conftest.py marks them slow.
"""


def measured_times(log: str) -> dict[str, float]:
    times: dict[str, float] = defaultdict(float)
    for line in log.splitlines():
        match = LINE.match(line)
        if match:
            times[match["nodeid"].strip()] += float(match["seconds"])
    return dict(times)


def choose_slow(times: dict[str, float], budget: float) -> list[str]:
    """The slowest node ids, fewest first taken, until the others' total is at most `budget` seconds."""
    rest = sum(times.values())
    chosen = []
    for nodeid, seconds in sorted(times.items(), key=lambda item: -item[1]):
        if rest <= budget:
            break
        chosen.append(nodeid)
        rest -= seconds
    return sorted(chosen)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="Output of a pytest run with --durations=0.")
    parser.add_argument("--budget", type=float, default=200.0, help="Seconds the quick subset may take in that run.")
    args = parser.parse_args(argv)
    times = measured_times(Path(args.log).read_text(encoding="utf-8", errors="replace"))
    if not times:
        print(f"{args.log}: no durations found; run pytest with --durations=0", file=sys.stderr)
        return 2
    chosen = choose_slow(times, args.budget)
    LIST.write_text(HEADER + "".join(f"{nodeid}\n" for nodeid in chosen), encoding="utf-8")
    listed = set(chosen)
    kept = sum(seconds for nodeid, seconds in times.items() if nodeid not in listed)
    print(f"{len(chosen)} of {len(times)} tests listed slow; the other {len(times) - len(chosen)} took {kept:.0f} s in that run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
