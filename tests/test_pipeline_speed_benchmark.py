"""benchmarks/pipeline_speed.py: it times this checkout's pipeline at batch 1 beside the sampler's own steps, and a
batch of 16 beside 16 single calls, each in a fresh interpreter. No speed is asserted (figures in benchmarks/)."""

import json

from conftest import load_benchmark


def test_pipeline_speed_reports_each_figure_for_this_checkout(capsys):
    benchmark = load_benchmark("pipeline_speed")
    result = benchmark.main(["--runs", "1", "--modes", "eager", "--baseline", "none"])
    figures = result["current"]["eager"]
    for name in ("batch1_s", "batch1_cpu_s", "sampler1_s", "sampler1_cpu_s", "batch16_s", "singles16_s"):
        assert figures[name] > 0, name
    assert abs(figures["pipeline_overhead"] - (figures["batch1_cpu_s"] / figures["sampler1_cpu_s"] - 1)) < 2e-3
    assert figures["batching_gain"] > 1  # one batch of 16 beats 16 calls on any machine
    closing = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert closing["current"]["eager"] == figures and "provenance" in closing
