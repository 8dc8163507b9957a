"""Start-up time: `import editflow_hf` and every `editflow-* --help` against a bare `import transformers`.

    python benchmarks/startup.py                      # this checkout (PYTHONPATH is set to it)
    python benchmarks/startup.py --source /some/checkout --runs 7

Each command runs `--runs` times in a fresh interpreter; the figure is the fastest run (the least disturbed by
other load on the machine). `--help` is timed as `python -m editflow_hf.apps.<command> --help`, the body of the
`editflow-<command>` console script; `help_vs_transformers` is the slowest of them over `import transformers`
(the bar: at most 0.1), and `help_vs_transformers_beyond_startup` the same with a bare interpreter's start
(`python -c pass`) taken from both. Also reports whether `--help` and `import editflow_hf` imported torch, and the
cumulative `python -X importtime` figure of `editflow_hf`. The last line printed is JSON.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# `python -c` puts the working directory first on sys.path: run where no editflow_hf can shadow --source.
NEUTRAL_CWD = "/"

COMMANDS = {
    "python_startup": ["-c", "pass"],
    "import_transformers": ["-c", "import transformers"],
    "import_editflow_hf": ["-c", "import editflow_hf"],
    **{f"editflow_{command}_help": ["-m", f"editflow_hf.apps.{command}", "--help"] for command in ("sample", "chat", "convert", "push", "eval")},
    "editflow_lm_eval_help": ["-m", "editflow_hf.apps.lm_eval_cli", "--help"],
}
TORCH_PROBE = "import sys, runpy; sys.argv = ['editflow-sample', '--help']\ntry:\n    runpy.run_module('editflow_hf.apps.sample', run_name='__main__')\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"


def best_wall_time(args: list[str], env: dict, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, cwd=NEUTRAL_CWD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def loads_torch(code: str, env: dict) -> bool:
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=NEUTRAL_CWD, capture_output=True, text=True, check=True)
    return proc.stderr.strip().splitlines()[-1] == "True"


def importtime_us(module: str, env: dict) -> int:
    """Cumulative import time of `module` as `python -X importtime` reports it (microseconds)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env, cwd=NEUTRAL_CWD, capture_output=True, text=True, check=True
    )
    for line in proc.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"{module} not in the importtime report")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(REPO_ROOT), help="Checkout whose editflow_hf is timed (default: this one).")
    parser.add_argument("--runs", type=int, default=5, help="Fresh interpreters per command (default 5).")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": args.source, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    seconds = {name: round(best_wall_time(command, env, args.runs), 3) for name, command in COMMANDS.items()}
    result = {
        **{f"{name}_s": value for name, value in seconds.items()},
        "help_vs_transformers": round(max(v for k, v in seconds.items() if k.endswith("_help")) / seconds["import_transformers"], 2),
        # The same ratio less the interpreter's own start, which no command can save: what each command adds.
        "help_vs_transformers_beyond_startup": round(
            (max(v for k, v in seconds.items() if k.endswith("_help")) - seconds["python_startup"])
            / (seconds["import_transformers"] - seconds["python_startup"]), 2),
        "help_imports_torch": loads_torch(TORCH_PROBE, env),
        "import_editflow_hf_imports_torch": loads_torch("import sys, editflow_hf; print('torch' in sys.modules, file=sys.stderr)", env),
        "editflow_hf_importtime_us": importtime_us("editflow_hf", env),
        "config": {"source": args.source, "runs": args.runs, "python": platform.python_version(), "machine": platform.machine()},
    }
    print(json.dumps({**result, "provenance": provenance()}))
    return result


if __name__ == "__main__":
    main()
