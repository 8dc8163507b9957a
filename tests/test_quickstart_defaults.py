"""The quickstart's defaults are the ones benchmarks/quickstart_defaults.py chose from its recorded run, the choice
rule does what its docstring says, and the benchmark runs end to end (tiny backbone, tiny judge)."""

import importlib.util
import json

import pytest

from conftest import REPO_ROOT
from tiny_decoders import build_tiny_causal_lm

spec = importlib.util.spec_from_file_location("quickstart_defaults", REPO_ROOT / "benchmarks" / "quickstart_defaults.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


def test_quickstart_defaults_are_the_recorded_choice():
    recorded = json.loads(benchmark.RECORDED.read_text())
    chosen = benchmark.choose(recorded["results"], recorded["current"], recorded["budget"])
    assert chosen["config"] == recorded["chosen"]["config"]
    assert benchmark.quickstart_defaults() == chosen["config"], "training/quickstart.sh's defaults are not the measured choice"


def row(backbone="minilm", steps=300, lr=3e-4, masks=32, *, cpu=100.0, perplexity=1000.0, se=0.05, length=40.0, distinct_2=0.9):
    config = {"backbone": backbone, "steps": steps, "lr": lr, "masks": masks}
    judged = {"generative_perplexity": perplexity, "log_perplexity_se": se,
              "generation": {"length": length, "distinct_2": distinct_2}}  # fmt: skip
    return {"config": config, "cpu_seconds": cpu, "judged": judged}


def test_choose_keeps_defaults_unless_clearly_beaten_within_budget():
    current = row()["config"]
    clear_win = row(lr=1e-3, perplexity=500.0)
    over_budget = row(steps=1200, cpu=300.0, perplexity=100.0)
    degenerate = row(masks=16, perplexity=50.0, distinct_2=0.2)
    chosen = benchmark.choose([row(), clear_win, over_budget, degenerate], current, budget=2.0)
    assert chosen["config"] == clear_win["config"]
    assert "over budget" in chosen["rejected"]["minilm-s1200-lr0.0003-m32"]
    assert "degenerate" in chosen["rejected"]["minilm-s300-lr0.0003-m16"]
    # within two standard errors: the defaults stay
    close = row(lr=1e-3, perplexity=950.0, se=0.1)
    assert benchmark.choose([row(se=0.1), close], current, budget=2.0)["config"] == current
    # the defaults themselves degenerate: the best eligible wins even by a hair
    assert benchmark.choose([row(distinct_2=0.1), close], current, budget=2.0)["config"] == close["config"]


def test_quickstart_defaults_parse_the_script(tmp_path):
    script = tmp_path / "quickstart.sh"
    script.write_text("STEPS=${STEPS:-600}\nLR=${LR:-1e-3}\nMASKS=${MASKS:-16}\nBATCH=${BATCH:-16}\n")
    assert benchmark.quickstart_defaults(script) == {"backbone": "minilm", "steps": 600, "lr": 1e-3, "masks": 16}
    script.write_text("STEPS=${STEPS:-600}\n")
    with pytest.raises(SystemExit, match="no default for LR, MASKS"):
        benchmark.quickstart_defaults(script)


@pytest.mark.slow
def test_benchmark_smoke_two_configs_tiny_judge(tmp_path, capsys):
    judge = build_tiny_causal_lm("llama", tmp_path / "judge")
    data = tmp_path / "text.txt"
    data.write_text("\n".join(f"to be or not to be, that is the question number {i} of many" for i in range(400)))
    benchmark.main(["--work_dir", str(tmp_path / "work"), "--data", str(data), "--ref_model", str(judge),
                    "--current", "tiny:2:3e-3:8", "--configs", "tiny:2:3e-3:8,tiny:3:1e-3:4"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["config"]["masks"] for r in summary["results"]] == [8, 4]
    for result in summary["results"]:
        trained = json.loads((tmp_path / "work" / "runs" / benchmark.config_name(result["config"]) / "MiniLM" /
                              "tiny-shakespeare" / "checkpoint-final" / "config.json").read_text())  # fmt: skip
        assert trained["x0_sampler"] == f"masks[length:{result['config']['masks']}]"  # MASKS reaches the training
        assert result["cpu_seconds"] > 0 and result["wall_seconds"] > 0
        judged = result["judged"]
        assert judged["generative_perplexity"] > 1 and judged["real_text"] > 1 and judged["shuffled_text"] > 1
        assert "place" in judged and judged["in_words"].startswith(f"samples {judged['generative_perplexity']:.0f}")
        assert judged["generation"]["num_samples"] == len(judged["generation"]["examples"]) == 16
    assert summary["chosen"]["config"] in [r["config"] for r in summary["results"]]

    # the quickstart's last step: the judged figure of one checkpoint
    checkpoint = summary["results"][0]["checkpoint"]
    benchmark.main(["--judge", checkpoint, "--data", str(data), "--mask_length", "8", "--ref_model", str(judge)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-2].startswith("quickstart: judged by judge: samples ") and "shuffled" in printed[-2]
    assert json.loads(printed[-1])["generative_perplexity"] == summary["results"][0]["judged"]["generative_perplexity"]
