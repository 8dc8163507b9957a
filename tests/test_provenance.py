"""Every benchmark's closing JSON line records where its figures came from (benchmarks/provenance.py), and CI
installs the releases the suite was last checked with (.ci/constraints.txt)."""

import ast
import re
from importlib import metadata

from conftest import REPO_ROOT, load_benchmark

BENCHMARKS = REPO_ROOT / "benchmarks"


def closing_prints(path):
    """The `print(json.dumps(...))` calls of a benchmark's main function, last one last."""
    tree = ast.parse(path.read_text())
    calls = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" and node.args
        and isinstance(node.args[0], ast.Call) and ast.unparse(node.args[0].func) == "json.dumps"
    ]  # fmt: skip
    return sorted(calls, key=lambda node: node.lineno)


def test_every_benchmarks_closing_line_carries_its_provenance():
    tools = ("provenance", "scaleout_smoke", "record", "summary")  # not benchmarks: no closing JSON line of figures
    scripts = [p for p in BENCHMARKS.glob("*.py") if p.stem not in tools]
    assert len(scripts) >= 10
    for script in scripts:
        calls = closing_prints(script)
        assert calls, script.name
        assert "provenance()" in ast.unparse(calls[-1]), f"{script.name}: its closing JSON line lacks provenance()"


def test_provenance_names_date_machine_commit_command_and_versions():
    record = load_benchmark("provenance").provenance(["benchmarks/sample.py", "--tau", "0.1"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", record["date"])
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert record["command"] == "python benchmarks/sample.py --tau 0.1"
    assert record["versions"]["transformers"] == metadata.version("transformers")
    assert record["versions"]["torch"] == metadata.version("torch")
    assert record["commit"] is None or re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", record["commit"])


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_ci_installs_with_the_constraints_and_they_pin_the_libraries_figures_depend_on():
    run = (REPO_ROOT / ".ci" / "run").read_text()
    assert "-c .ci/constraints.txt" in run
    pins = constraints()
    for name in ("torch", "transformers", "tokenizers", "accelerate", "datasets", "huggingface-hub", "peft", "kernels"):
        assert name in pins, f"{name} is not pinned in .ci/constraints.txt"
    # torch is installed first by its own line: the two must name the same release
    assert f"torch=={pins['torch']}" in run
