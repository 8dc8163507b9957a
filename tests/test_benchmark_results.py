"""Benchmark figures are data: benchmarks/results/ holds one JSON file per recorded run (benchmarks/record.py), each
with its provenance, and benchmarks/SUMMARY.md is the table benchmarks/summary.py generates from them."""

import json
import re
import sys

import pytest

from conftest import REPO_ROOT, load_benchmark

BENCHMARKS = REPO_ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
summary = load_benchmark("summary")
record = load_benchmark("record")


def result_files():
    return sorted(RESULTS.glob("*.json"))


def test_results_hold_recorded_runs():
    assert result_files(), "benchmarks/results/ holds no recorded run"
    assert not [p.name for p in RESULTS.iterdir() if p.suffix != ".json"], "benchmarks/results/ holds only *.json"


@pytest.mark.parametrize("path", result_files(), ids=lambda p: p.name)
def test_every_result_parses_and_carries_its_provenance(path):
    name = summary.NAME.fullmatch(path.stem)
    assert name, f"{path.name}: not {{benchmark}}-{{YYYY-MM-DD}}-{{short commit}}[-N].json"
    data = json.loads(path.read_text())
    provenance = data["provenance"]
    for key in ("date", "machine", "commit", "command", "versions"):
        assert provenance.get(key), f"{path.name}: provenance lacks {key}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", provenance["date"])
    assert name["date"] == provenance["date"][:10], f"{path.name}: the name's date is not the run's"
    assert name["commit"] == provenance["commit"][:7], f"{path.name}: the name's commit is not the run's"
    assert provenance["command"].startswith("python "), path.name
    assert provenance["versions"].get("torch") and provenance["versions"].get("transformers"), path.name


def test_summary_md_is_what_summary_py_generates():
    assert (BENCHMARKS / "SUMMARY.md").read_text() == summary.generate(), "run python benchmarks/summary.py"


def test_summary_rows_are_newest_first_with_headline_figures(tmp_path):
    run = {"ratio": 0.6, "ours_s": 0.33, "device": "cpu", "provenance": {
        "date": "2026-01-02 03:04 UTC", "machine": {"cpu": "X", "cores": 2}, "commit": "abcdef012345-dirty",
        "command": "python benchmarks/train_step.py", "versions": {"torch": "2", "transformers": "5"}}}  # fmt: skip
    later = {**run, "provenance": {**run["provenance"], "date": "2026-02-01 00:00 UTC", "machine": {"cpu": "X", "cores": 2, "gpu": "H100"}}}
    (tmp_path / "train_step-2026-01-02-abcdef0.json").write_text(json.dumps(run))
    (tmp_path / "other-2026-02-01-abcdef0.json").write_text(json.dumps({"a_s": 1.5, "flag": True, **later}))
    first, second = summary.rows(tmp_path)
    assert first.startswith("| [other](results/other-2026-02-01-abcdef0.json) | 2026-02-01") and "H100 (X, 2 cores)" in first
    assert "`a_s` 1.5" in first and "flag" not in first  # fallback: top-level numbers only
    assert "`ratio` 0.6, `ours_s` 0.33 |" in second and "device" not in second


def test_record_writes_the_closing_line_and_never_overwrites(tmp_path, capsys):
    script = tmp_path / "fake.py"
    script.write_text(
        "import json, sys\nsys.path.insert(0, %r)\nfrom provenance import provenance\n"
        "print('progress')\nprint(json.dumps({'x_s': 1.0, 'provenance': provenance()}))\n" % str(BENCHMARKS)
    )
    command = ["--results", str(tmp_path / "out"), "--", sys.executable, str(script)]
    first, second = record.main(command), record.main(command)
    assert first.parent == second.parent == tmp_path / "out"
    assert summary.NAME.fullmatch(first.stem)["benchmark"] == "fake" and second.stem == first.stem + "-2"
    assert json.loads(first.read_text())["x_s"] == 1.0
    with pytest.raises(FileExistsError):
        record.write({"provenance": {}}, first)
    bad = tmp_path / "bad.py"
    bad.write_text("print('{\"x\": 1}')\n")
    with pytest.raises(SystemExit, match="provenance"):
        record.main(["--results", str(tmp_path / "out"), "--", sys.executable, str(bad)])
