"""The releases CI installs (.ci/constraints.txt) against the ones an environment has.

    python .ci/releases.py diff                # which packages moved from the pins, one line each, then a JSON line
    python .ci/releases.py write               # rewrite the pins from this environment (a deliberate, separate commit)
    python .ci/releases.py report pytest.log   # the moved packages and the tests that broke, from a pytest log

Run by `.ci/newest`; `.ci/run` only reads the file (`pip install -c .ci/constraints.txt`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
HEADER = """\
# The releases CI installs (`pip install -c .ci/constraints.txt`): the suite and the recorded figures were last
# checked with these. Written by `python .ci/releases.py write` after `bash .ci/newest` passed on newer releases;
# update them in a commit of their own. torch is also pinned by .ci/run's first install (its CPU wheel).
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonical(name)] = version.strip()
    return pins


def installed() -> dict[str, str]:
    """name -> version of this environment's distributions (local labels such as +cpu dropped), the project itself
    left out."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        if "==" in line and not line.startswith(("-e", "#")):
            name, version = line.split("==", 1)
            found[canonical(name)] = version.split("+", 1)[0]
    for skipped in ("editflow-hf", "pip", "setuptools", "wheel"):
        found.pop(skipped, None)
    return found


def moved(pins: dict[str, str], now: dict[str, str]) -> dict[str, list]:
    """Packages whose version differs from the pins ([pinned, installed]); None where one side lacks it."""
    return {
        name: [pins.get(name), now.get(name)]
        for name in sorted(set(pins) | set(now))
        if pins.get(name) != now.get(name) and name in now
    }


def broken_tests(log: str) -> list[str]:
    return sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", log, flags=re.M)))


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "diff"
    if command == "write":
        pins = installed()
        CONSTRAINTS.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        print(f"wrote {len(pins)} pins to {CONSTRAINTS}")
        return 0
    changes = moved(read_pins(), installed())
    for name, (pinned, now) in changes.items():
        print(f"moved: {name} {pinned or '(not pinned)'} -> {now}")
    if command == "report":
        log = Path(argv[1]).read_text()
        broken = broken_tests(log)
        for test in broken:
            print(f"broke: {test}")
        summary = re.findall(r"^=+ (.*(?:passed|failed|error).*) =+$", log, flags=re.M)
        print(json.dumps({"moved": changes, "broken": broken, "pytest": summary[-1] if summary else None}))
        return 1 if broken or not summary else 0
    print(json.dumps({"moved": changes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
